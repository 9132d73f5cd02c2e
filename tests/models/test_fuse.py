"""Inference-time folding: BatchNorm into convs, channel shuffles into conv weights and concat order.

References: PaddleDetection's heatmaps on the random-weight fixtures (the same tolerances as the
model parity tests) and the unfused model; with the real weights (OpenVINO IR), identical argmax.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tinypose
from tinypose.models.fuse import FoldedShuffleUnit, FusedTinyPose, fuse_batchnorm, fuse_model
from tinypose.models.litehrnet import ShuffleUnit

SIZES = ["128x96", "256x192"]
PADDLE_TOLERANCE = {"128x96": 1e-4, "256x192": 3e-4}
FUSION_TOLERANCE = 1e-5
"""Issue 2: folding must change heatmaps by less than 1e-5 (float32 rounding gives ~1e-6)."""


@pytest.fixture(scope="module")
def fixture_models(fixtures_dir) -> dict[str, tinypose.TinyPose]:
    return {
        size: tinypose.build_model(size, pretrained=fixtures_dir / f"tinypose_{size}_random.pdparams") for size in SIZES
    }


@pytest.fixture(scope="module")
def references(fixtures_dir) -> dict[str, dict[str, np.ndarray]]:
    return {size: dict(np.load(fixtures_dir / f"forward_{size}.npz")) for size in SIZES}


def _run(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("fold", [fuse_batchnorm, fuse_model], ids=["batchnorm", "batchnorm+shuffles"])
def test_folding_keeps_paddle_heatmaps(fixture_models, references, size: str, fold) -> None:
    model = fixture_models[size]
    folded = fold(model)
    for key in ("input0", "input1", "input2"):
        x = references[size][key]
        ours, original = _run(folded, x), _run(model, x)
        assert np.abs(ours - original).max() < FUSION_TOLERANCE
        assert np.abs(ours - references[size][f"{key}_heatmap"]).max() <= PADDLE_TOLERANCE[size]


@pytest.mark.parametrize("size", SIZES)
def test_fused_real_weights_same_heatmaps_and_argmax(openvino_dir, size: str) -> None:
    model = tinypose.build_model(size, pretrained=openvino_dir / f"tinypose_{size}" / "model.xml")
    spec = model.spec
    x = torch.randn(4, 3, spec.input_height, spec.input_width, generator=torch.Generator().manual_seed(1)).numpy()
    original, fused = _run(model, x), _run(fuse_model(model), x)
    assert np.abs(fused - original).max() < FUSION_TOLERANCE
    flat = (original.reshape(4, spec.num_joints, -1), fused.reshape(4, spec.num_joints, -1))
    assert np.array_equal(flat[0].argmax(-1), flat[1].argmax(-1))


def test_fused_graph_has_no_batchnorm_and_no_shuffle(fixture_models) -> None:
    model = fixture_models["128x96"]
    fused = fuse_model(model)
    assert isinstance(fused, FusedTinyPose)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert not any(
        isinstance(m, nn.BatchNorm2d) for m in fuse_batchnorm(model).modules() if not isinstance(m, nn.Identity)
    )
    units = [m for m in model.modules() if isinstance(m, ShuffleUnit)]
    folded = [m for m in fused.modules() if isinstance(m, FoldedShuffleUnit)]
    assert len(folded) == len(units) == 48
    # Each unit's branch input is a contiguous tail (no gather) and its concat uses every other run once.
    for unit in folded:
        channels = sum(unit.input_sizes)
        assert unit.split == channels // 2 and unit.input_sizes[-1] == channels // 2
        runs = len(unit.input_sizes) + len(unit.branch_sizes)
        assert sorted(unit.concat_order) == [k for k in range(runs) if k != len(unit.input_sizes) - 1]
    # The ops that actually run: the original transposes (shuffles) and normalizes, the fused one neither.
    assert {"aten::transpose", "aten::native_batch_norm"} <= _aten_ops(model)
    assert not {"aten::transpose", "aten::permute", "aten::native_batch_norm"} & _aten_ops(fused)


def _aten_ops(model: nn.Module) -> set[str]:
    with torch.inference_mode(), torch.profiler.profile() as profile:
        model(torch.zeros(1, 3, 64, 32))  # any multiple of 32 runs
    return {event.key for event in profile.key_averages()}


def test_fuse_leaves_the_model_untouched(fixture_models) -> None:
    model = fixture_models["128x96"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    fuse_model(model)
    fuse_batchnorm(model)
    assert model.training
    model.eval()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fuse_model_rejects_other_modules() -> None:
    with pytest.raises(TypeError, match="TinyPose"):
        fuse_model(nn.Conv2d(3, 3, 1))  # type: ignore[arg-type]
