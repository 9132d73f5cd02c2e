"""The default runtime (issue 12): what ``create_model()``, ``create_pipeline()``, ``infer.py`` and the
service run when no backend is named: ONNX Runtime on the CPU, whose threads do not spin, with the
eager model's keypoints to 0.01 px; torch float32 on CUDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch

import tinypose
from tinypose.predict import create_model
from tinypose.runtimes import default_backend, thread_options

REPO = Path(__file__).resolve().parents[2]
PHOTOS = ["demo_2.jpg", "demo_5.jpg", "demo_7.jpg"]


def test_default_is_auto_on_the_cpu_and_torch_on_cuda() -> None:
    assert default_backend("cpu") == "auto"
    assert default_backend(None) == "auto"  # runtimes default to the CPU
    assert default_backend(torch.device("cuda", 0)) == "torch"


def test_onnxruntime_is_installed_with_tinypose() -> None:
    """The default must install with the README's ``pip install -e ".[dev]"``, and with a plain install."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {requirement.split(">")[0].split("=")[0].split("<")[0].strip() for requirement in project["dependencies"]}
    assert {"onnx", "onnxruntime"} <= names


def test_thread_options_go_to_cpu_runtimes_only() -> None:
    assert thread_options(2, "cpu") == {"num_threads": 2}
    assert thread_options(None, "cpu") == {} and thread_options(0, "cpu") == {}
    assert thread_options(2, torch.device("cuda", 0)) == {}


@pytest.mark.parametrize("size", ["128x96", "256x192"])
def test_default_predictor_runs_onnxruntime_with_eager_keypoints(
    openvino_dir: Path, data_dir: Path, export_cache: Path, size: str
) -> None:
    model = tinypose.build_model(size, pretrained=openvino_dir / f"tinypose_{size}" / "model.xml")
    photos = [str(data_dir / "photos" / name) for name in PHOTOS]
    eager = create_model(
        model.spec.name, model=model, flip=True, device="cpu", backend_options={"fuse": False}, backend="torch"
    )
    default = create_model(
        model.spec.name, model=model, flip=True, device="cpu", backend_options={"cache_dir": export_cache}
    )
    assert default.backend_name == "auto" and default.backend.name == "onnxruntime"  # type: ignore[attr-defined]
    session = default.backend.session  # type: ignore[attr-defined]
    config = session.get_session_options().get_session_config_entry
    assert config("session.force_spinning_stop") == "1"  # its threads sleep between calls
    for batch in (1, 3):
        ours = [r.json["res"]["kpts"] for r in default.predict(photos, batch_size=batch)]
        reference = [r.json["res"]["kpts"] for r in eager.predict(photos, batch_size=batch)]
        for mine, theirs in zip(ours, reference):
            a = np.array([person["keypoints"] for person in mine])
            b = np.array([person["keypoints"] for person in theirs])
            assert np.abs(a[..., :2] - b[..., :2]).max() <= 0.01


def test_infer_and_serve_configs_default_to_the_default_runtime() -> None:
    import yaml

    for name in ("infer", "serve"):
        config = yaml.safe_load((REPO / "conf" / f"{name}.yaml").read_text())
        assert config["backend"] is None, name
