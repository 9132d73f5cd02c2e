"""Training and evaluation: PaddleDetection's COCO keypoint evaluation (usable without Lightning),
the LightningModule/LightningDataModule of the PP-TinyPose recipe, callbacks and checkpoint export.

Lightning is imported only by the modules that need it (``module``, ``datamodule``, ``callbacks``).
"""

from .evaluation import STAT_NAMES, KeypointEvaluator, evaluate, rescore_and_nms

__all__ = ["STAT_NAMES", "KeypointEvaluator", "evaluate", "rescore_and_nms"]
