"""Torch datasets and samplers for top-down training and evaluation on COCO keypoints.

Crops travel as uint8 (4x less inter-process traffic than float); normalization happens on the
model's device. Training randomness is a function of ``(seed, epoch, index)`` only, handed out by
:class:`EpochSampler`, so an epoch is reproducible in any worker layout and a resumed run sees
exactly the samples (and augmentations) the interrupted run would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..codec import HeatmapCodec
from ..models.tinypose import ModelSpec
from .coco import PersonInstance
from .transforms import AugmentConfig, augment, read_image, udp_crop

__all__ = ["EpochSampler", "ShardedSampler", "TopDownEvalDataset", "TopDownTrainDataset"]


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class TopDownTrainDataset(Dataset):
    """Augmented crops with Gaussian targets: items are ``(index, seed)`` pairs from :class:`EpochSampler`."""

    def __init__(self, instances: Sequence[PersonInstance], spec: ModelSpec, augment_config: AugmentConfig) -> None:
        self.instances = list(instances)
        self.spec = spec
        self.codec = HeatmapCodec.from_spec(spec)
        self.augment_config = augment_config

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, item: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        index, seed = item if isinstance(item, tuple) else (item, item)
        instance = self.instances[index]
        rng = np.random.RandomState(seed)
        sample = augment(
            read_image(instance.image_file),
            instance.keypoints,
            instance.visibility,
            instance.center,
            instance.scale,
            self.spec.input_size,
            self.spec.flip_pairs,
            self.augment_config,
            rng,
        )
        target, target_weight = self.codec.encode(sample.keypoints, sample.visibility)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1))),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(target_weight),
        }


class TopDownEvalDataset(Dataset):
    """Un-augmented UDP crops of each person box, with what evaluation needs to map keypoints back."""

    def __init__(self, instances: Sequence[PersonInstance], spec: ModelSpec) -> None:
        self.instances = list(instances)
        self.spec = spec

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        instance = self.instances[index]
        crop = udp_crop(read_image(instance.image_file), instance.center, instance.scale, self.spec.input_size)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))),
            "index": torch.tensor(index, dtype=torch.long),
        }


class EpochSampler(Sampler):
    """Shuffled order and per-sample seeds derived from ``(seed, epoch)``, sharded over DDP ranks.

    Yields ``(index, sample_seed)``. ``skip_batches`` drops the first batches of the current epoch
    (used when resuming in the middle of an epoch). Lightning calls :meth:`set_epoch`; use it with
    ``use_distributed_sampler=False``, as sharding is done here.
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True, batch_size: int = 1) -> None:
        self.size = size
        self.seed = int(seed)
        self.shuffle = shuffle
        self.batch_size = batch_size
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def skip_batches(self, batches: int) -> None:
        """Start the next iteration after ``batches`` batches of this epoch (mid-epoch resume)."""
        self.skip = max(0, int(batches)) * self.batch_size

    def _shard(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.size) if self.shuffle else np.arange(self.size)
        seeds = rng.integers(0, 2**31 - 1, size=self.size)[order]
        rank, world = _distributed()
        total = math.ceil(self.size / world) * world
        if total > self.size:  # pad by repeating, as DistributedSampler does
            order = np.concatenate([order, order[: total - self.size]])
            seeds = np.concatenate([seeds, seeds[: total - self.size]])
        return order[rank::world], seeds[rank::world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order, seeds = self._shard()
        skip, self.skip = self.skip, 0
        for index, seed in zip(order[skip:], seeds[skip:]):
            yield int(index), int(seed)

    def __len__(self) -> int:
        _, world = _distributed()
        return math.ceil(self.size / world)


class ShardedSampler(Sampler):
    """In-order indices sharded over DDP ranks (padded to equal length; duplicates are dropped later by index)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __iter__(self) -> Iterator[int]:
        rank, world = _distributed()
        total = math.ceil(self.size / world) * world
        indices = [i % self.size for i in range(total)] if self.size else []
        return iter(indices[rank::world])

    def __len__(self) -> int:
        _, world = _distributed()
        return math.ceil(self.size / world) if self.size else 0
