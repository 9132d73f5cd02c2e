"""Runtimes: same heatmaps as PyTorch and PaddleDetection, export cache keyed on what matters,
clear errors where a runtime or a GPU is missing."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import tinypose
from tinypose.export.onnx import onnx_for
from tinypose.runtimes import RuntimeUnavailable, available_backends, create_backend

SIZES = ["128x96", "256x192"]
TORCH_TOLERANCE = 1e-4
PADDLE_TOLERANCE = {"128x96": 1e-4, "256x192": 3e-4}
CPU_BACKENDS = [
    "torch",
    pytest.param(
        "onnxruntime", marks=pytest.mark.skipif(not importlib.util.find_spec("onnxruntime"), reason="needs onnxruntime")
    ),
    pytest.param(
        "openvino", marks=pytest.mark.skipif(not importlib.util.find_spec("openvino"), reason="needs openvino")
    ),
]


@pytest.fixture(scope="module")
def cache(export_cache):
    return export_cache


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_cpu_backend_matches_torch_and_paddle(fixture_models, paddle_batches, cache, name: str, size: str) -> None:
    model = fixture_models[size]
    backend = create_backend(name, model, cache_dir=cache, num_threads=2)
    for batch in (1, 7):
        x, paddle_heatmaps = paddle_batches[size][batch]
        heatmaps = backend(torch.from_numpy(x))
        assert heatmaps.dtype == torch.float32 and heatmaps.device.type == "cpu"
        with torch.inference_mode():
            reference = model(torch.from_numpy(x)).numpy()
        assert np.abs(heatmaps.numpy() - reference).max() <= TORCH_TOLERANCE
        assert np.abs(heatmaps.numpy() - paddle_heatmaps).max() <= PADDLE_TOLERANCE[size]


def test_auto_picks_an_available_cpu_backend(fixture_models, cache) -> None:
    backend = create_backend("auto", fixture_models["128x96"], cache_dir=cache)
    assert backend.name in available_backends("cpu")
    preference = [name for name in ("onnxruntime", "openvino", "torch") if name in available_backends("cpu")]
    assert backend.name == preference[0]


def test_bad_names_and_batches_say_what_is_expected(fixture_models) -> None:
    with pytest.raises(ValueError, match="onnxruntime, openvino, tensorrt"):
        create_backend("tflite", fixture_models["128x96"])
    backend = create_backend("torch", fixture_models["128x96"])
    with pytest.raises(ValueError, match=r"\[N, 3, 128, 96\]"):
        backend(torch.zeros(2, 3, 256, 192))
    assert backend(torch.zeros(0, 3, 128, 96)).shape == (0, 17, 32, 24)


@pytest.mark.skipif(not importlib.util.find_spec("onnxruntime"), reason="needs onnxruntime")
def test_export_cache_reuses_and_rebuilds_on_change(fixture_models, tmp_path) -> None:
    model = fixture_models["128x96"]
    first = onnx_for(model, "onnxruntime", "1.0", cache_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert onnx_for(model, "onnxruntime", "1.0", cache_dir=tmp_path) == first
    assert first.stat().st_mtime_ns == stamp  # reused, not rewritten
    # A runtime upgrade, another opset or precision: a new entry, the old one untouched.
    assert onnx_for(model, "onnxruntime", "2.0", cache_dir=tmp_path) != first
    assert onnx_for(model, "onnxruntime", "1.0", cache_dir=tmp_path, opset=18) != first
    assert onnx_for(model, "onnxruntime", "1.0", cache_dir=tmp_path, precision="fp16") != first
    # Changed weights (one value of one tensor): rebuilt, and the backend runs the new weights.
    changed = tinypose.build_model("128x96")
    changed.load_state_dict(model.state_dict())
    with torch.no_grad():
        changed.final_conv.bias[0] += 1.0
    rebuilt = onnx_for(changed, "onnxruntime", "1.0", cache_dir=tmp_path)
    assert rebuilt != first
    x = torch.zeros(1, 3, 128, 96)
    before = create_backend("onnxruntime", model, cache_dir=tmp_path)(x)
    after = create_backend("onnxruntime", changed, cache_dir=tmp_path)(x)
    assert torch.allclose(after[:, 0] - before[:, 0], torch.ones_like(after[:, 0]), atol=1e-5)
    assert torch.allclose(after[:, 1:], before[:, 1:], atol=1e-6)
    # A truncated (empty) entry left by a crash is rebuilt rather than trusted.
    first.write_bytes(b"")
    assert onnx_for(model, "onnxruntime", "1.0", cache_dir=tmp_path).stat().st_size > 0


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_tensorrt_missing_is_a_clear_error(fixture_models) -> None:
    with pytest.raises(RuntimeUnavailable, match="pip install tensorrt"):
        create_backend("tensorrt", fixture_models["128x96"], device="cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_cuda_without_gpu_is_a_clear_error(fixture_models) -> None:
    with pytest.raises(RuntimeUnavailable, match="no|none"):
        create_backend("torch", fixture_models["128x96"], device="cuda")
    assert available_backends("cuda") == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    "name, options, tolerance",
    [
        ("torch", {}, 1e-3),
        ("torch", {"precision": "fp16", "cuda_graphs": True}, 3e-2),
        pytest.param(
            "tensorrt",
            {},
            3e-2,
            marks=pytest.mark.skipif(not importlib.util.find_spec("tensorrt"), reason="needs tensorrt"),
        ),
    ],
)
def test_gpu_backends_match_cpu(
    fixture_models, paddle_batches, cache, name: str, options: dict, tolerance: float
) -> None:
    x, paddle_heatmaps = paddle_batches["128x96"][7]
    heatmaps = create_backend(name, fixture_models["128x96"], device="cuda", cache_dir=cache, **options)(
        torch.from_numpy(x)
    )
    assert heatmaps.device.type == "cpu"
    assert np.abs(heatmaps.numpy() - paddle_heatmaps).max() <= tolerance
