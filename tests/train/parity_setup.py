"""What the PaddleDetection training-step reference (references/train_*.npz) was made from, rebuilt here.

Shared by the reference script (references/make_train_reference.py) and the parity tests: the
initial weights of each run, the fixed batches (the recipe's augmentation applied once, a function of
(index, seed) only), and the sampled elements stored per tensor.
"""

from __future__ import annotations

import contextlib
import hashlib
import types
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

from tinypose.data.coco import gt_instances, validate_coco
from tinypose.data.dataset import TopDownTrainDataset
from tinypose.data.transforms import AugmentConfig
from tinypose.models import litehrnet
from tinypose.models.tinypose import TinyPose, build_model, get_spec
from tinypose.train.evaluation import normalize_batch

SIZES = {"128x96": "PP-TinyPose_128x96", "256x192": "PP-TinyPose_256x192"}
BATCH_SIZE = 8
STEPS = 24
"""Optimizer steps of the trajectory; the schedule below makes them span the warmup and a decay."""
SCHEDULE = {"warmup_steps": 10, "warmup_start_factor": 0.001, "milestones": [2, 3], "gamma": 0.1}
"""The stock LearningRate with warmup shortened to 10 steps and milestones at epochs 2 and 3 (of 9 steps:
coco_dev's 65 persons in batches of 8), so that 24 steps see the warmup, the plateau and the x0.1."""
STEPS_PER_EPOCH = 9
SNAPSHOTS = (1, 5, 10, 20, 24)
"""Steps after which parameters (sampled) are stored."""
SAMPLES = 16
"""Elements sampled per parameter tensor (seeded), where full tensors would make the fixture large."""


def initial_model(size: str, init: str, shared: Path) -> TinyPose:
    """The run's starting weights: ``random`` (fixtures/paddle, real BN statistics) or ``released`` (IR, BN folded)."""
    name = SIZES[size]
    if init == "random":
        return build_model(name, pretrained=str(shared / "fixtures" / "paddle" / f"tinypose_{size}_random.pdparams"))
    return build_model(name, pretrained=str(shared / "weights" / "openvino" / f"tinypose_{size}" / "model.xml"))


def parity_batches(size: str, coco_dev: Path, steps: int = STEPS) -> list[dict[str, torch.Tensor]]:
    """The fixed batches: step s holds persons (s*B + j) mod 65 augmented with seed 1000*s + j."""
    spec = get_spec(SIZES[size])
    data, _ = validate_coco(coco_dev / "annotations" / "person_keypoints.json", coco_dev / "images", spec.num_joints)
    instances = gt_instances(data, coco_dev / "images", spec.input_size, spec.num_joints)
    dataset = TopDownTrainDataset(instances, spec, AugmentConfig.from_options(None))
    batches = []
    for step in range(steps):
        items = [dataset[((step * BATCH_SIZE + j) % len(instances), 1000 * step + j)] for j in range(BATCH_SIZE)]
        batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
        batch["image"] = normalize_batch(batch["image"], spec.mean, spec.std)
        batches.append(batch)
    return batches


def sample_indices(numel: int, position: int) -> np.ndarray:
    """The sampled flat element indices of the ``position``-th parameter tensor (all when small)."""
    if numel <= SAMPLES:
        return np.arange(numel)
    return np.sort(np.random.default_rng(position).choice(numel, SAMPLES, replace=False))


def batch_digest(batches: list[dict[str, torch.Tensor]]) -> str:
    """sha256 of the fixed batches' bytes (the fixture records it; the tests check their rebuild)."""
    digest = hashlib.sha256()
    for batch in batches:
        for key in ("image", "target", "target_weight"):
            digest.update(batch[key].numpy().astype(np.float32).tobytes())
    return digest.hexdigest()


def _paddle_linear_axis(size_in: int, size_out: int) -> tuple[torch.Tensor, ...]:
    """One axis of Paddle's CPU bilinear interpolation with ``align_corners=True``: source indices and
    weights as its kernel computes them, in float32 whatever the tensor's dtype (``float ratio``)."""
    ratio = np.float32(size_in - 1) / np.float32(size_out - 1) if size_out > 1 else np.float32(0)
    position = ratio * np.arange(size_out, dtype=np.float32)
    low = np.maximum(position.astype(np.int64), 0)
    high = np.minimum(low + 1, size_in - 1)
    near = (position - low.astype(np.float32)).astype(np.float32)
    far = (np.float32(1) - near).astype(np.float32)
    return torch.from_numpy(low), torch.from_numpy(high), torch.from_numpy(near), torch.from_numpy(far)


def _paddle_bilinear(x: torch.Tensor, size: tuple[int, int], mode: str, align_corners: bool) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=True)`` with Paddle's float32 weights."""
    assert mode == "bilinear" and align_corners, (mode, align_corners)
    north, south, dn, ds = _paddle_linear_axis(x.shape[2], size[0])
    west, east, dw, de = _paddle_linear_axis(x.shape[3], size[1])
    dn, ds = dn.to(x.dtype)[:, None], ds.to(x.dtype)[:, None]
    dw, de = dw.to(x.dtype)[None, :], de.to(x.dtype)[None, :]
    top, bottom = x[:, :, north], x[:, :, south]
    return (
        top[..., west] * ds * de + bottom[..., west] * dn * de + top[..., east] * ds * dw + bottom[..., east] * dn * dw
    )


@contextlib.contextmanager
def paddle_float64_semantics(model: torch.nn.Module) -> Iterator[None]:
    """Run a float64 ``model`` as Paddle's float64 run computes, for the deterministic loop check.

    ``paddle.set_default_dtype('float64')`` leaves two things in float32: op attributes (BatchNorm's
    epsilon is float32(1e-5) = 9.99999975e-6) and the CPU bilinear kernel's ratios and weights (the
    head's upsampling, ``align_corners=True``: e.g. 7/15 rounded to float32). Each is a ~1e-8..1e-13
    relative change, far below float32 noise, but a float64 comparison sees it; with both emulated
    tinypose float64 matches Paddle float64 to float64 rounding (tests/train/test_parity.py).
    """
    saved = {}
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            saved[module] = module.eps
            module.eps = float(np.float32(module.eps))
    functional = types.SimpleNamespace(**{name: getattr(F, name) for name in dir(F) if not name.startswith("__")})
    functional.interpolate = _paddle_bilinear
    try:
        with mock.patch.object(litehrnet, "F", functional):
            yield
    finally:
        for module, eps in saved.items():
            module.eps = eps
