"""Export (ONNX, TensorRT) and runtime backends for PP-TinyPose.

``create_backend(name, model, device=None, **options)`` returns a callable
``backend(batch [N,3,H,W] float32) -> heatmaps [N,K,H/4,W/4] float32``; ``export_onnx`` writes
the ONNX file. See docs/export.md.
"""

from .backends import BACKENDS, Backend, BackendUnavailable, available_backends, create_backend
from .cache import export_cache_dir, state_dict_sha256
from .onnx import DEFAULT_OPSET, build_onnx, check_onnx, export_onnx

__all__ = [
    "BACKENDS",
    "DEFAULT_OPSET",
    "Backend",
    "BackendUnavailable",
    "available_backends",
    "build_onnx",
    "check_onnx",
    "create_backend",
    "export_cache_dir",
    "export_onnx",
    "state_dict_sha256",
]
