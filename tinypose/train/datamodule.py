"""LightningDataModule for a COCO keypoint dataset in PaddleX's layout."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cv2
import lightning as L
import torch
from torch.utils.data import DataLoader

from ..data.coco import PersonInstance, gt_instances, validate_coco
from ..data.dataset import EpochSampler, ShardedSampler, TopDownEvalDataset, TopDownTrainDataset
from ..data.layout import DatasetLayout, resolve_layout
from ..data.transforms import AugmentConfig
from ..models.tinypose import get_spec
from .evaluation import person_instances

__all__ = ["CocoKeypointDataModule", "ResumableDataLoader", "single_threaded_worker"]


def single_threaded_worker(worker_id: int) -> None:
    """Loader workers decode and warp one sample at a time: one OpenCV / torch thread each, so that
    ``num_workers`` processes do not oversubscribe the cores the training step runs on."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class ResumableDataLoader(DataLoader):
    """A DataLoader over :class:`EpochSampler` that Lightning saves and restores with the checkpoint.

    ``state_dict`` records the epoch and how many batches of it were trained (read from the trainer
    through ``batches_done``); ``load_state_dict`` sets the sampler to continue right after them, so
    an interrupted epoch resumes without repeating or skipping a sample.
    """

    sampler: EpochSampler

    def __init__(self, *args: Any, batches_done: Callable[[], int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches_done = batches_done

    def state_dict(self) -> dict[str, int]:
        done = self.batches_done() if self.batches_done is not None else 0
        return {"epoch": self.sampler.epoch, "batches_done": int(done), "seed": self.sampler.seed}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        done = int(state.get("batches_done", 0))
        if done >= len(self):  # saved at the end of an epoch: continue with the next one
            self.sampler.set_epoch(int(state["epoch"]) + 1)
        else:
            self.sampler.set_epoch(int(state["epoch"]))
            self.sampler.skip_batches(done)


class CocoKeypointDataModule(L.LightningDataModule):
    """Train on ``annotations/person_keypoints_train2017.json`` (or ``instance_train.json``), validate on val.

    Training crops follow the PP-TinyPose recipe (:class:`AugmentConfig`); validation crops are the
    evaluation's ground-truth boxes, or detector boxes from ``val_boxes`` (a COCO detection-results
    JSON, boxes under ``image_thre`` dropped).
    """

    def __init__(
        self,
        dataset_dir: str,
        model_name: str,
        batch_size: int = 16,
        val_batch_size: int = 32,
        num_workers: int = 2,
        pin_memory: bool = False,
        seed: int = 0,
        train_annotations: str | None = None,
        val_annotations: str | None = None,
        images_dir: str = "images",
        augment: Mapping[str, Any] | None = None,
        val_boxes: str | None = None,
        image_thre: float = 0.5,
    ) -> None:
        super().__init__()
        self.dataset_dir = dataset_dir
        self.spec = get_spec(model_name)
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed
        self.train_annotations = train_annotations
        self.val_annotations = val_annotations
        self.images_dir = images_dir
        self.augment_config = AugmentConfig.from_options(augment)
        self.val_boxes = val_boxes
        self.image_thre = image_thre
        self.layout: DatasetLayout | None = None
        self.train_instances: list[PersonInstance] = []
        self.val_instances: list[PersonInstance] = []
        self.val_data: dict[str, Any] | None = None

    def setup(self, stage: str | None = None) -> None:
        """Validate the annotation files (clear errors on a broken dataset) and list the persons."""
        if self.layout is not None:
            return
        need_train = stage in (None, "fit")
        self.layout = resolve_layout(
            self.dataset_dir,
            self.train_annotations,
            self.val_annotations,
            self.images_dir,
            require=("train", "val") if need_train else ("val",),
        )
        if need_train:
            train_data, _ = validate_coco(
                self.layout.annotations("train"), self.layout.images_dir, self.spec.num_joints
            )
            self.train_instances = gt_instances(
                train_data, self.layout.images_dir, self.spec.input_size, self.spec.num_joints
            )
            if not self.train_instances:
                raise ValueError(f"{self.layout.annotations('train')}: no person with labelled keypoints to train on")
        self.val_data, _ = validate_coco(self.layout.annotations("val"), self.layout.images_dir, self.spec.num_joints)
        self.val_instances = person_instances(
            self.val_data, self.layout.images_dir, self.spec, self.val_boxes, self.image_thre, progress=False
        )

    def _batches_done(self) -> int:
        trainer = self.trainer
        if trainer is None:
            return 0
        # Lightning annotates .current as the base tracker; the batch progress's has .processed
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed  # type: ignore[attr-defined]

    def train_dataloader(self) -> DataLoader:
        dataset = TopDownTrainDataset(self.train_instances, self.spec, self.augment_config)
        sampler = EpochSampler(len(dataset), seed=self.seed, shuffle=True, batch_size=self.batch_size)
        if self.trainer is not None:
            sampler.set_epoch(self.trainer.current_epoch)
        return ResumableDataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=single_threaded_worker,
            drop_last=False,
            batches_done=self._batches_done,
        )

    def val_dataloader(self) -> DataLoader:
        dataset = TopDownEvalDataset(self.val_instances, self.spec)
        return DataLoader(
            dataset,
            batch_size=self.val_batch_size,
            sampler=ShardedSampler(len(dataset)),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=single_threaded_worker,
        )
