"""Export of PP-TinyPose: the ONNX graph (``export_onnx``) and the on-disk cache of exported artifacts.

The runtimes that consume these artifacts live in :mod:`tinypose.runtimes`; ``create_backend`` and
``available_backends`` are re-exported here for convenience. See docs/export.md. Names are imported
on first use.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ..runtimes import available_backends, create_backend
    from .cache import export_cache_dir, state_dict_sha256
    from .onnx import DEFAULT_OPSET, build_onnx, check_onnx, export_onnx, onnx_for

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "..runtimes": ["available_backends", "create_backend"],
        ".cache": ["export_cache_dir", "state_dict_sha256"],
        ".onnx": ["DEFAULT_OPSET", "build_onnx", "check_onnx", "export_onnx", "onnx_for"],
    },
)

__all__ = [
    "DEFAULT_OPSET",
    "available_backends",
    "build_onnx",
    "check_onnx",
    "create_backend",
    "export_cache_dir",
    "export_onnx",
    "onnx_for",
    "state_dict_sha256",
]
