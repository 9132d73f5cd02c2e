"""The runtime registry: the example runtime of docs/export.md, registered as written there, runs through
``create_backend`` and ``create_model(..., backend=...)`` with PaddleDetection's heatmaps; names,
aliases, availability, ``auto`` and ``export.py``'s formats all come from the registry."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tinypose.export.cli import main as export_main
from tinypose.export.cli import parse_args
from tinypose.predict import create_model
from tinypose.runtimes import (
    ExportFormat,
    Runtime,
    auto_runtime,
    available_backends,
    create_backend,
    export_formats,
    get_runtime,
    register_runtime,
    runtime_names,
    unregister_runtime,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "export.md"
PADDLE_TOLERANCE = {"128x96": 1e-4, "256x192": 3e-4}
"""As tests/runtimes/test_runtimes.py: the float32 model against PaddleDetection's fixture heatmaps."""


def _docs_example() -> str:
    section = DOCS.read_text().split("## Adding a runtime", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "docs/export.md has no python block under 'Adding a runtime'"
    return blocks[0]


@pytest.fixture
def eager_runtime() -> Iterator[type[Runtime]]:
    """The docs' example runtime, registered by running the docs' code block as written."""
    namespace: dict[str, Any] = {}
    exec(compile(_docs_example(), str(DOCS), "exec"), namespace)
    try:
        yield namespace["EagerRuntime"]
    finally:
        unregister_runtime("eager")
    assert "eager" not in runtime_names()


@pytest.fixture
def registered() -> Iterator[Callable[..., Any]]:
    """``register(name, ...)``: register_runtime, undone after the test."""
    names: list[str] = []

    def register(name: str, *args: Any, **kwargs: Any) -> Any:
        entry = register_runtime(name, *args, **kwargs)
        names.append(name)
        return entry

    yield register
    for name in names:
        unregister_runtime(name)


def test_docs_example_runs_through_create_backend(eager_runtime, fixture_models, paddle_batches) -> None:
    assert "eager" in runtime_names() and "eager" in available_backends("cpu")
    for size, model in fixture_models.items():
        for name in ("eager", "Reference"):  # the name and an alias, any case
            runtime = create_backend(name, model)
            assert isinstance(runtime, eager_runtime) and runtime.name == "eager"
            x, paddle_heatmaps = paddle_batches[size][7]
            heatmaps = runtime(torch.from_numpy(x))
            assert heatmaps.dtype == torch.float32 and heatmaps.device.type == "cpu"
            assert np.abs(heatmaps.numpy() - paddle_heatmaps).max() <= PADDLE_TOLERANCE[size]
    # Not ranked for auto, so auto still picks a built-in runtime.
    assert auto_runtime("cpu")[0].name != "eager"


def test_docs_example_runs_through_create_model(eager_runtime, fixture_models, data_dir) -> None:
    model = fixture_models["128x96"]
    photo = str(data_dir / "photos" / "demo_2.jpg")
    keypoints = {}
    for backend in ("eager", "torch"):
        predictor = create_model(model.spec.name, model=model, backend=backend, flip=True, device="cpu")
        assert isinstance(predictor.backend, eager_runtime) == (backend == "eager")
        (result,) = predictor.predict(photo)
        keypoints[backend] = np.array([person["keypoints"] for person in result.json["res"]["kpts"]])
    # The torch runtime folds BatchNorm and the shuffles: same keypoints to well under a pixel.
    assert keypoints["eager"].shape == keypoints["torch"].shape
    assert np.abs(keypoints["eager"] - keypoints["torch"]).max() <= 0.01


def test_names_aliases_and_errors() -> None:
    assert runtime_names()[:4] == ("torch", "onnxruntime", "openvino", "tensorrt")
    for alias, name in {
        "pytorch": "torch",
        "ORT": "onnxruntime",
        "onnx-runtime": "onnxruntime",
        "ov": "openvino",
    }.items():
        assert get_runtime(alias).name == name
    with pytest.raises(ValueError, match=r"unknown backend 'tflite'; choose one of torch, onnxruntime, .*auto"):
        get_runtime("tflite")
    with pytest.raises(ValueError, match="already registered"):
        register_runtime("ort", "tinypose.runtimes.torch:TorchRuntime")
    with pytest.raises(ValueError, match="reserved"):
        register_runtime("auto", "tinypose.runtimes.torch:TorchRuntime")


def test_availability_auto_rank_and_options_come_from_the_registry(registered, fixture_models) -> None:
    calls: list[torch.device] = []

    def available(device: torch.device) -> bool:
        calls.append(device)
        return device.type == "cpu"

    # A runtime ranked first on the CPU, built by the torch runtime's class with its own auto options.
    registered(
        "first", "tinypose.runtimes.torch:TorchRuntime", available=available, auto_rank={"cpu": -1},
        auto_options={"cpu": {"channels_last": False}},
    )  # fmt: skip
    assert "first" in available_backends("cpu") and calls == [torch.device("cpu")]
    entry, options = auto_runtime("cpu")
    assert entry.name == "first" and options == {"channels_last": False}
    runtime = create_backend("auto", fixture_models["128x96"])
    assert runtime.name == "torch" and runtime.channels_last is False
    # Unavailable: auto falls back to the next in rank.
    registered("never", "tinypose.runtimes.torch:TorchRuntime", available=lambda device: False, auto_rank={"cpu": -2})
    assert "never" not in available_backends("cpu") and auto_runtime("cpu")[0].name == "first"


def test_export_formats_come_from_the_registry(registered, fixture_models, fixtures_dir, tmp_path, capsys) -> None:
    assert {name: f.suffix for name, f in export_formats().items()} == {
        "onnx": ".onnx",
        "openvino": ".xml",
        "tensorrt": ".engine",
        "executorch": ".pte",
    }
    assert export_formats()["tensorrt"].default_precision == "fp16"
    written: list[tuple[Path, str]] = []

    def write(model, output: Path, *, precision, opset, exporter, check_batch, report) -> None:
        output.write_text(model.spec.name)
        written.append((output, precision))
        report(f"wrote {output} (check batch {None if check_batch is None else tuple(check_batch.shape)})")

    registered(
        "toy",
        "tinypose.runtimes.torch:TorchRuntime",
        export=ExportFormat("toy", ".toy", write, default_precision="fp16"),
    )
    assert parse_args(["--format", "toy"]).format == "toy"
    weights = fixtures_dir / "tinypose_128x96_random.pdparams"
    assert (
        export_main(["--model", "128x96", "--weights", str(weights), "--format", "toy", "-o", str(tmp_path / "m")]) == 0
    )
    assert written == [(tmp_path / "m", "fp16")]
    assert "check batch (3, 3, 128, 96)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="already written"):
        register_runtime("toy2", "tinypose.runtimes.torch:TorchRuntime", export=ExportFormat("toy", ".t", write))
