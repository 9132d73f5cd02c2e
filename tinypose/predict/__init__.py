"""Prediction with PaddleX's keypoint module surface: ``create_model(...).predict(...)``, inputs, results, drawing."""

from .draw import DEFAULT_DRAW_THRESHOLD, draw_keypoints
from .inputs import IMAGE_SUFFIXES, VIDEO_SUFFIXES, InputError, count_inputs, iter_inputs
from .predictor import KeypointPredictor, create_model, resolve_device
from .result import KeypointResult

__all__ = [
    "DEFAULT_DRAW_THRESHOLD",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "InputError",
    "KeypointPredictor",
    "KeypointResult",
    "count_inputs",
    "create_model",
    "draw_keypoints",
    "iter_inputs",
    "resolve_device",
]
