"""Runtimes: one callable interface ``runtime(batch [N,3,H,W] float32) -> heatmaps [N,K,H/4,W/4]`` over
PyTorch, ONNX Runtime, OpenVINO and TensorRT, one file each, behind a registry.

``create_backend(name, model, device=None, **options)`` builds one (``name`` a registered runtime or
``"auto"``); ``available_backends(device)`` lists those installed; ``register_runtime(...)`` adds one
(see docs/export.md, "Adding a runtime"). Names are imported on first use.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .base import CpuMicroBatchRuntime, Runtime, RuntimeUnavailable
    from .registry import (
        ExportFormat,
        RuntimeEntry,
        auto_runtime,
        available_backends,
        create_backend,
        default_backend,
        export_formats,
        get_runtime,
        module_available,
        register_runtime,
        runtime_names,
        thread_options,
        unregister_runtime,
    )

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".base": ["CpuMicroBatchRuntime", "Runtime", "RuntimeUnavailable"],
        ".registry": [
            "ExportFormat",
            "RuntimeEntry",
            "auto_runtime",
            "available_backends",
            "create_backend",
            "default_backend",
            "export_formats",
            "get_runtime",
            "module_available",
            "register_runtime",
            "runtime_names",
            "thread_options",
            "unregister_runtime",
        ],
    },
)

__all__ = [
    "CpuMicroBatchRuntime",
    "ExportFormat",
    "Runtime",
    "RuntimeEntry",
    "RuntimeUnavailable",
    "auto_runtime",
    "available_backends",
    "create_backend",
    "default_backend",
    "export_formats",
    "get_runtime",
    "module_available",
    "register_runtime",
    "runtime_names",
    "thread_options",
    "unregister_runtime",
]
