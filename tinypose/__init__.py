"""tinypose: PP-TinyPose human keypoint detection in pure PyTorch.

The names here are the entry points: models and their registry (``build_model``, ``TinyPose``,
``LiteHRNet``, ``get_spec``), PaddleX-style prediction (``create_model``, ``create_pipeline``), the
person detector (``create_detector``, ``build_detector``), runtimes and export (``create_backend``,
``export_onnx``), the heatmap codec, dataset check and COCO evaluation. Subpackages hold the rest.
"""

from .codec import HeatmapCodec
from .data import check_dataset
from .detect import build_detector, create_detector
from .export import create_backend, export_onnx
from .models import LiteHRNet, ModelSpec, TinyPose, build_model, get_spec, list_models
from .pipeline import create_pipeline
from .predict import create_model
from .train import evaluate

__version__ = "0.1.0"

__all__ = [
    "HeatmapCodec",
    "LiteHRNet",
    "ModelSpec",
    "TinyPose",
    "__version__",
    "build_detector",
    "build_model",
    "check_dataset",
    "create_backend",
    "create_detector",
    "create_model",
    "create_pipeline",
    "evaluate",
    "export_onnx",
    "get_spec",
    "list_models",
]
