"""Multi-person pipeline: person detector + PP-TinyPose, tracking and One-Euro smoothing for video."""

from .pipeline import PIPELINES, Detector, KeypointPipeline, PipelineResult, clip_boxes, create_pipeline
from .smoothing import OneEuroConfig, OneEuroFilter
from .tracking import PoseTracker, Track, box_iou_matrix, oks_matrix

__all__ = [
    "PIPELINES",
    "Detector",
    "KeypointPipeline",
    "OneEuroConfig",
    "OneEuroFilter",
    "PipelineResult",
    "PoseTracker",
    "Track",
    "box_iou_matrix",
    "clip_boxes",
    "create_pipeline",
    "oks_matrix",
]
