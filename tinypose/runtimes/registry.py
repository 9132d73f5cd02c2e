"""The runtime registry: one :func:`register_runtime` call per runtime, read by everything that lists,
chooses or creates a runtime (:func:`create_backend`, :func:`available_backends`, ``auto``,
``export.py``, ``benchmarks/bench_backends.py``).

An entry holds the runtime's name and aliases, an availability check that imports nothing heavy
(``importlib.util.find_spec``, not the runtime's package), its rank for ``auto`` per device type,
the export format it loads (for ``export.py --format``) and a factory. Factories and export writers
may be given as ``"module:attribute"`` strings, imported on first use, so that registering a runtime
costs nothing until it is created. Adding a runtime is one new file with its :class:`Runtime`
subclass plus one :func:`register_runtime` line (at the bottom of this file for built-in runtimes,
or anywhere in user code).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from torch import Tensor

from ..models.tinypose import TinyPose, build_model
from .base import Runtime, RuntimeUnavailable, require_cuda, runtime_device

__all__ = [
    "ArtifactWriter",
    "CalibratedArtifactWriter",
    "ExportFormat",
    "RuntimeEntry",
    "RuntimeFactory",
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

logger = logging.getLogger("tinypose")

AUTO = "auto"
"""The name that picks the best available runtime for the device; not a registered runtime."""

RuntimeFactory = Callable[..., Runtime]
"""``factory(model: TinyPose, device: torch.device, **options) -> Runtime`` (usually the class)."""


class ArtifactWriter(Protocol):
    """Writes ``model`` to ``output`` in one export format, reporting progress lines through ``report``;
    with ``check_batch``, also runs the written artifact on it and reports the difference to PyTorch."""

    def __call__(
        self,
        model: TinyPose,
        output: Path,
        *,
        precision: str,
        opset: int,
        exporter: str,
        check_batch: Tensor | None,
        report: Callable[[str], None],
    ) -> None: ...


class CalibratedArtifactWriter(Protocol):
    """An :class:`ArtifactWriter` that also writes ``int8``, calibrated on person crops of the images of
    ``calib_images`` (boxes from the person detector ``calib_detector``: its weights, ``None`` the
    default, ``False`` whole images)."""

    def __call__(
        self,
        model: TinyPose,
        output: Path,
        *,
        precision: str,
        opset: int,
        exporter: str,
        check_batch: Tensor | None,
        report: Callable[[str], None],
        calib_images: Path | None = None,
        calib_detector: str | Path | bool | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class ExportFormat:
    """An artifact a runtime loads, written by ``export.py --format NAME``."""

    name: str
    suffix: str
    """Default file suffix of the output (``.onnx``, ``.xml``, ``.engine``)."""
    writer: str | ArtifactWriter
    """The writer, or ``"module:function"`` imported on first use."""
    default_precision: str = "fp32"
    precisions: tuple[str, ...] = ("fp32", "fp16")
    """What ``--precision`` may be; a writer listing ``int8`` takes ``calib_images`` (:class:`CalibratedArtifactWriter`)."""
    companions: tuple[str, ...] = ()
    """Suffixes of the other files written beside the output (an IR's ``.bin``), never overwritten silently."""

    def outputs(self, output: Path) -> list[Path]:
        """Every file an export to ``output`` writes."""
        return [output, *(output.with_suffix(suffix) for suffix in self.companions)]

    def load_writer(self) -> ArtifactWriter:
        """The writer function (imported now when given as a string)."""
        return cast(ArtifactWriter, _resolve(self.writer))


@dataclass(frozen=True)
class RuntimeEntry:
    """One registered runtime; see :func:`register_runtime` for the fields."""

    name: str
    factory: str | RuntimeFactory
    aliases: tuple[str, ...] = ()
    available: Callable[[torch.device], bool] | None = None
    auto_rank: Mapping[str, int] = field(default_factory=dict)
    auto_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    export: ExportFormat | None = None

    def is_available(self, device: torch.device) -> bool:
        """Whether the runtime's package is installed and it can run on ``device`` (nothing heavy imported)."""
        return self.available is None or self.available(device)

    def create(self, model: TinyPose, device: torch.device, **options: Any) -> Runtime:
        """Build the runtime for ``model`` on ``device`` (the factory is imported now when given as a string)."""
        factory = cast(RuntimeFactory, _resolve(self.factory))
        return factory(model, device, **options)


_REGISTRY: dict[str, RuntimeEntry] = {}
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    """Names compare case-, dash- and underscore-insensitively (``ONNX-Runtime`` = ``onnxruntime``)."""
    return name.lower().replace("-", "").replace("_", "")


def _resolve(target: str | Callable[..., Any]) -> Callable[..., Any]:
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    return cast(Callable[..., Any], getattr(importlib.import_module(module), attribute))


def register_runtime(
    name: str,
    factory: str | RuntimeFactory,
    *,
    aliases: tuple[str, ...] = (),
    available: Callable[[torch.device], bool] | None = None,
    auto_rank: Mapping[str, int] | None = None,
    auto_options: Mapping[str, Mapping[str, Any]] | None = None,
    export: ExportFormat | None = None,
) -> RuntimeEntry:
    """Register a runtime so that ``create_backend(name, ...)`` and ``backend=name`` everywhere find it.

    ``factory``: ``factory(model, device, **options) -> Runtime`` (a :class:`Runtime` subclass), or
    ``"module:attribute"`` imported on first use. ``aliases``: other names accepted for it.
    ``available(device) -> bool``: whether it can run on ``device`` here; must not import the
    runtime's package (``module_available`` does it with ``find_spec``); ``None``: everywhere.
    ``auto_rank``: per device type (``"cpu"``, ``"cuda"``) its place in ``auto``'s order, lowest
    first; a device type missing from it is never chosen by ``auto``. ``auto_options``: per device
    type, the options ``auto`` passes when it chooses this runtime. ``export``: the artifact
    ``export.py --format`` writes for it, if any. A name or alias already registered is an error
    (:func:`unregister_runtime` first to replace one).
    """
    entry = RuntimeEntry(
        name=name,
        factory=factory,
        aliases=tuple(aliases),
        available=available,
        auto_rank=dict(auto_rank or {}),
        auto_options={device: dict(options) for device, options in (auto_options or {}).items()},
        export=export,
    )
    keys = [_key(name), *(_key(alias) for alias in aliases)]
    for key in keys:
        if key == AUTO:
            raise ValueError(f"{key!r} is reserved: it picks the best available runtime")
        if key in _ALIASES:
            raise ValueError(f"runtime name {key!r} is already registered (by {_ALIASES[key]!r})")
    formats = export_formats()
    if export is not None and export.name in formats:
        raise ValueError(f"export format {export.name!r} is already written by another runtime")
    _REGISTRY[name] = entry
    _ALIASES.update(dict.fromkeys(keys, name))
    return entry


def unregister_runtime(name: str) -> None:
    """Remove a registered runtime (and its aliases); unknown names raise ``ValueError``."""
    entry = get_runtime(name)
    del _REGISTRY[entry.name]
    for key in [key for key, target in _ALIASES.items() if target == entry.name]:
        del _ALIASES[key]


def runtime_names() -> tuple[str, ...]:
    """Registered runtime names, in registration order (``auto`` is not one of them)."""
    return tuple(_REGISTRY)


def get_runtime(name: str) -> RuntimeEntry:
    """The entry registered as ``name`` or one of its aliases; ``ValueError`` listing the names otherwise."""
    target = _ALIASES.get(_key(name))
    if target is None:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join([*runtime_names(), AUTO])}")
    return _REGISTRY[target]


def export_formats() -> dict[str, ExportFormat]:
    """``export.py``'s formats by name, from the registered runtimes that load an artifact."""
    return {entry.export.name: entry.export for entry in _REGISTRY.values() if entry.export is not None}


def module_available(module: str) -> bool:
    """Whether ``module`` is installed, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package, or a module without a spec
        return False


def available_backends(device: str | torch.device | None = None) -> list[str]:
    """Runtimes installed here that can run on ``device`` (default CPU), in registration order.

    No model is built and no runtime package is imported (except onnxruntime when asked about a
    CUDA device: only the package itself knows whether it has the CUDA execution provider). A CUDA
    device that torch does not see has none.
    """
    device = runtime_device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        return []
    return [entry.name for entry in _REGISTRY.values() if entry.is_available(device)]


def auto_runtime(device: str | torch.device | None = None) -> tuple[RuntimeEntry, dict[str, Any]]:
    """What ``auto`` runs on ``device``: the available runtime ranked first for its device type, and
    the options it is given (order measured in benchmarks/bench_backends.py)."""
    device = runtime_device(device)
    if device.type == "cuda":
        require_cuda(device, AUTO)
    ranked = sorted(
        (entry for entry in _REGISTRY.values() if device.type in entry.auto_rank),
        key=lambda entry: entry.auto_rank[device.type],
    )
    for entry in ranked:
        if entry.is_available(device):
            return entry, dict(entry.auto_options.get(device.type, {}))
    raise RuntimeUnavailable(
        f"no runtime for device {device} is installed (auto tries {', '.join(e.name for e in ranked) or 'none'})"
    )


def default_backend(device: str | torch.device | None = None) -> str:
    """The runtime that ``create_model()``, ``create_pipeline()``, ``infer.py`` and ``serve.py`` use when
    the user names none (``backend=None``).

    CPU: ``auto`` (onnxruntime first: measured 1.2-6x torch eager here, and its threads do not spin,
    so it keeps most of its speed next to other processes where torch's OpenMP threads collapse;
    see benchmarks/bench_backends.py ``--load``). CUDA: ``torch`` in float32, whose keypoints are
    the reference; ``backend="auto"`` picks the faster half-precision paths there.
    """
    return AUTO if runtime_device(device).type == "cpu" else "torch"


def thread_options(threads: int | None, device: str | torch.device | None = None) -> dict[str, Any]:
    """The option a ``threads=N`` setting gives the runtime: ``num_threads`` on the CPU (the torch,
    onnxruntime and openvino runtimes take it); nothing on a GPU or when ``threads`` is not given."""
    return {"num_threads": int(threads)} if threads and runtime_device(device).type == "cpu" else {}


def create_backend(
    name: str, model: TinyPose | str, device: str | torch.device | None = None, **options: Any
) -> Runtime:
    """A callable ``runtime(batch) -> heatmaps`` running ``model`` with the runtime called ``name``.

    ``name``: a registered runtime or alias (:func:`runtime_names`), or ``"auto"``. ``model`` is a
    :class:`TinyPose` (any weights) or a model name (then built with the default pretrained
    weights). ``device`` defaults to the CPU. Exports happen on first use and are cached
    (``cache_dir`` option, default ``$TINYPOSE_HOME/exports``); options are listed per runtime class.
    """
    entry = None if _key(name) == AUTO else get_runtime(name)  # an unknown name fails before a model is built
    if isinstance(model, str):
        model = build_model(model, pretrained=True)
    if not isinstance(model, TinyPose):
        raise TypeError(f"create_backend takes a TinyPose model or a model name, got {type(model).__name__}")
    model = model.eval()
    device = runtime_device(device)
    if entry is None:
        entry, defaults = auto_runtime(device)
        options = {**defaults, **options}
        logger.info("backend 'auto' chose %s%s on %s", entry.name, f" {defaults}" if defaults else "", device)
    return entry.create(model, device, **options)


def _ort_available(device: torch.device) -> bool:
    if not module_available("onnxruntime"):
        return False
    if device.type == "cpu":
        return True
    if device.type != "cuda":
        return False
    import onnxruntime as ort  # optional extra ([onnx]); only it knows whether it has the CUDA EP

    return "CUDAExecutionProvider" in ort.get_available_providers()


def _inductor_available(device: torch.device) -> bool:
    """Inductor's C++ backend needs a C++ compiler on PATH; its CUDA backend needs triton."""
    if device.type == "cpu":
        return any(shutil.which(compiler) for compiler in ("g++", "c++", "clang++"))
    return device.type == "cuda" and module_available("triton")


# The built-in runtimes. auto: CUDA tensorrt > torch (fp16, CUDA graphs); CPU onnxruntime > openvino > torch.
register_runtime(
    "torch", "tinypose.runtimes.torch:TorchRuntime", aliases=("pytorch",), auto_rank={"cuda": 1, "cpu": 2},
    auto_options={"cuda": {"precision": "fp16", "cuda_graphs": True}},
)  # fmt: skip
register_runtime(
    "onnxruntime", "tinypose.runtimes.onnxruntime:OrtRuntime", aliases=("ort",), available=_ort_available,
    auto_rank={"cpu": 0}, export=ExportFormat("onnx", ".onnx", "tinypose.runtimes.onnxruntime:write_onnx"),
)  # fmt: skip
register_runtime(
    "openvino", "tinypose.runtimes.openvino:OpenVinoRuntime", aliases=("ov",),
    available=lambda device: device.type == "cpu" and module_available("openvino"), auto_rank={"cpu": 1},
    export=ExportFormat(
        "openvino", ".xml", "tinypose.runtimes.openvino:write_openvino_ir", precisions=("fp32", "fp16", "int8"),
        companions=(".bin",),
    ),
)  # fmt: skip
register_runtime(
    "tensorrt", "tinypose.runtimes.tensorrt:TensorRTRuntime", aliases=("trt",),
    available=lambda device: device.type == "cuda" and module_available("tensorrt"), auto_rank={"cuda": 0},
    export=ExportFormat("tensorrt", ".engine", "tinypose.runtimes.tensorrt:write_tensorrt_engine", "fp16"),
)  # fmt: skip
# inductor is not ranked by auto: on the CPU here onnxruntime is faster (docs/export.md, "Compiled").
register_runtime(
    "inductor", "tinypose.runtimes.inductor:InductorRuntime", aliases=("aoti",),
    available=lambda device: _inductor_available(device),
)  # fmt: skip
register_runtime(
    "executorch", "tinypose.runtimes.executorch:ExecuTorchRuntime", aliases=("et", "xnnpack"),
    available=lambda device: device.type == "cpu" and module_available("executorch"),
    export=ExportFormat("executorch", ".pte", "tinypose.runtimes.executorch:write_executorch", precisions=("fp32",)),
)  # fmt: skip
