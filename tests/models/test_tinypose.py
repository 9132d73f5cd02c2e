"""PP-TinyPose model: structure, registry, and parity with PaddleDetection's forward pass."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tinypose
from tinypose.models import MODEL_SPECS, get_spec
from tinypose.weights.mapping import paddle_to_torch_name

TOLERANCE = {"PP-TinyPose_128x96": 1e-4, "PP-TinyPose_256x192": 3e-4}


def _relative_error(ours: torch.Tensor, reference: np.ndarray) -> float:
    """Max abs difference over the reference's max magnitude: random-weight features reach ~1e3,
    so float32 rounding alone gives ~1e-6 relative, a wrong layer gives ~1."""
    return float(np.abs(ours.numpy() - reference).max() / np.abs(reference).max())


@pytest.mark.parametrize("name", sorted(MODEL_SPECS))
def test_forward_shape_and_parameter_count(name: str) -> None:
    spec = get_spec(name)
    model = tinypose.build_model(name)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 1_318_625
    x = torch.randn(3, 3, spec.input_height, spec.input_width)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, 17, spec.input_height // 4, spec.input_width // 4)
    assert spec.heatmap_size == (spec.input_width // 4, spec.input_height // 4)


@pytest.mark.parametrize("name", sorted(MODEL_SPECS))
def test_backward_reaches_every_parameter(name: str) -> None:
    spec = get_spec(name)
    model = tinypose.build_model(name).train()
    model(torch.randn(2, 3, spec.input_height, spec.input_width)).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_backbone_alone_gives_multiresolution_features() -> None:
    backbone = tinypose.LiteHRNet()
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, 256, 192))
    assert [f.shape[1] for f in features] == list(backbone.out_channels) == [40, 40, 80, 160]
    assert [256 // f.shape[2] for f in features] == list(backbone.out_strides) == [4, 8, 16, 32]


@pytest.mark.parametrize("alias", ["PP-TinyPose_128x96", "tinypose_128x96", "128x96", "pp-tinypose_128x96"])
def test_registry_aliases(alias: str) -> None:
    assert get_spec(alias).name == "PP-TinyPose_128x96"


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(ValueError, match="PP-TinyPose_256x192"):
        get_spec("PP-TinyPose_64x48")


def test_state_dict_names_are_paddle_names(fixtures_dir) -> None:
    """Every PaddleDetection state entry maps to exactly one of ours, with the same shape."""
    keys = json.loads((fixtures_dir / "keys_128x96.json").read_text())
    ours = {k: v for k, v in tinypose.build_model("128x96").state_dict().items() if "num_batches" not in k}
    theirs = {paddle_to_torch_name(name): tuple(shape) for name, shape, _ in keys}
    assert theirs == {k: tuple(v.shape) for k, v in ours.items()}


@pytest.mark.parametrize("size", ["128x96", "256x192"])
def test_heatmaps_match_paddle(fixtures_dir, size: str) -> None:
    """Random-weight checkpoint through PaddleDetection vs us, on every stored input."""
    name = f"PP-TinyPose_{size}"
    model = tinypose.build_model(name, pretrained=fixtures_dir / f"tinypose_{size}_random.pdparams")
    reference = np.load(fixtures_dir / f"forward_{size}.npz")
    for key in ("input0", "input1", "input2"):
        with torch.no_grad():
            feats = model.backbone(torch.from_numpy(reference[key]))
            heatmaps = model.final_conv(feats[0]).numpy()
        assert _relative_error(feats[0], reference[f"{key}_backbone_feat0"]) <= 1e-5
        assert np.abs(heatmaps - reference[f"{key}_heatmap"]).max() <= TOLERANCE[name], key
        argmax = heatmaps.reshape(*heatmaps.shape[:2], -1).argmax(-1)
        assert (argmax == reference[f"{key}_argmax"]).mean() >= 0.99


def test_intermediate_outputs_match_paddle(fixtures_dir) -> None:
    """Stem, every stage branch and every head level, so a regression points at its layer."""
    model = tinypose.build_model("128x96", pretrained=fixtures_dir / "tinypose_128x96_random.pdparams")
    reference = np.load(fixtures_dir / "forward_128x96.npz")
    with torch.no_grad():
        stem, stages, head = model.backbone.forward_stages(torch.from_numpy(reference["input0"]))
    checks = {"input0_stem": stem}
    for s, branches in enumerate(stages):
        checks.update({f"input0_stage{s}_{i}": b for i, b in enumerate(branches)})
    checks.update({f"input0_head_layer_{i}": h for i, h in enumerate(head)})
    assert set(checks) == {
        k for k in reference.files if k.startswith("input0_") and k[7:].startswith(("stem", "stage", "head"))
    }
    for key, ours in checks.items():
        assert _relative_error(ours, reference[key]) <= 1e-5, key
