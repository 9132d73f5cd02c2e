"""Multi-person pipeline: person detector + PP-TinyPose, tracking and One-Euro smoothing for video."""

from .smoothing import OneEuroConfig, OneEuroFilter
from .tracking import PoseTracker, Track, box_iou_matrix, oks_matrix

__all__ = ["OneEuroConfig", "OneEuroFilter", "PoseTracker", "Track", "box_iou_matrix", "oks_matrix"]
