"""tinypose: PP-TinyPose human keypoint detection in pure PyTorch."""

from .models import LiteHRNet, ModelSpec, TinyPose, build_model, get_spec, list_models
from .predict import create_model
from .pipeline import create_pipeline

__version__ = "0.1.0"

__all__ = [
    "LiteHRNet", "ModelSpec", "TinyPose", "build_model", "create_model", "create_pipeline", "get_spec", "list_models",
    "__version__",
]
