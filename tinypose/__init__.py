"""tinypose: PP-TinyPose human keypoint detection in pure PyTorch.

The names here are the entry points: models and their registry (``build_model``, ``TinyPose``,
``LiteHRNet``, ``get_spec``), PaddleX-style prediction (``create_model``, ``create_pipeline``), the
person detector (``create_detector``, ``build_detector``), runtimes and export (``create_backend``,
``export_onnx``), the heatmap codec, dataset check and COCO evaluation. Subpackages hold the rest.

Each name is imported on first use (see :mod:`tinypose._lazy`): ``import tinypose`` imports neither
torch nor any optional runtime.
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

if TYPE_CHECKING:
    from .codec import HeatmapCodec
    from .data import check_dataset
    from .detect import build_detector, create_detector
    from .export import export_onnx
    from .models import LiteHRNet, ModelSpec, TinyPose, build_model, get_spec, list_models
    from .pipeline import create_pipeline
    from .predict import create_model
    from .runtimes import create_backend
    from .train import evaluate

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".codec": ["HeatmapCodec"],
        ".data": ["check_dataset"],
        ".detect": ["build_detector", "create_detector"],
        ".export": ["export_onnx"],
        ".models": ["LiteHRNet", "ModelSpec", "TinyPose", "build_model", "get_spec", "list_models"],
        ".pipeline": ["create_pipeline"],
        ".predict": ["create_model"],
        ".runtimes": ["create_backend"],
        ".train": ["evaluate"],
    },
)

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
