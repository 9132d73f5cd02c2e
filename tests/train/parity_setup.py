"""What the PaddleDetection training-step reference (references/train_*.npz) was made from, rebuilt here.

Shared by the reference script (references/make_train_reference.py) and the parity tests: the
initial weights of each run, the fixed batches (the recipe's augmentation applied once, a function of
(index, seed) only), and the sampled elements stored per tensor.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from tinypose.data.coco import gt_instances, validate_coco
from tinypose.data.dataset import TopDownTrainDataset
from tinypose.data.transforms import AugmentConfig
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
