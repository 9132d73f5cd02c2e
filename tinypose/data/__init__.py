"""COCO keypoint data: layout, validation, dataset check and split, augmentation, torch datasets."""

from .check import check_dataset
from .coco import PersonInstance, detection_instances, gt_instances, load_coco_json, load_detections, validate_coco
from .dataset import EpochSampler, ShardedSampler, TopDownEvalDataset, TopDownTrainDataset
from .layout import DatasetError, DatasetLayout, resolve_layout
from .split import split_dataset
from .transforms import AugmentConfig, augment, read_image, udp_crop

__all__ = [
    "AugmentConfig",
    "DatasetError",
    "DatasetLayout",
    "EpochSampler",
    "PersonInstance",
    "ShardedSampler",
    "TopDownEvalDataset",
    "TopDownTrainDataset",
    "augment",
    "check_dataset",
    "detection_instances",
    "gt_instances",
    "load_coco_json",
    "load_detections",
    "read_image",
    "resolve_layout",
    "split_dataset",
    "udp_crop",
    "validate_coco",
]
