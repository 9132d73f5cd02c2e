"""PP-PicoDet pedestrian detector in PyTorch, with PaddleDetection's pre/post-processing and NMS."""

from .nms import box_iou_paddle, multiclass_nms
from .picodet import (
    DETECTOR_SPECS,
    DETECTOR_WEIGHTS,
    DetectorSpec,
    NMSConfig,
    PicoDet,
    build_detector,
    get_detector_spec,
    list_detectors,
)
from .predictor import PersonDetector, create_detector, preprocess_image

__all__ = [
    "DETECTOR_SPECS",
    "DETECTOR_WEIGHTS",
    "DetectorSpec",
    "NMSConfig",
    "PersonDetector",
    "PicoDet",
    "box_iou_paddle",
    "build_detector",
    "create_detector",
    "get_detector_spec",
    "list_detectors",
    "multiclass_nms",
    "preprocess_image",
]
