"""The ``tensorrt`` runtime and export format: TensorRT 10 or 11 engines from our ONNX, cached, run on
torch CUDA tensors with ``execute_async_v3`` on the runtime's own CUDA stream.

Precision lives in the ONNX: for ``fp16`` the exporter writes float16 weights and activations
(float32 input/output behind a Cast) and the network is built *strongly typed*. Which flags that
takes is decided by TensorRT's major version (:func:`network_flags`): 10 sets
``NetworkDefinitionCreationFlag.STRONGLY_TYPED``; 11 is strongly typed always (the flag, where it
still exists, is ignored) and has no ``BuilderFlag.FP16``. Nothing here sets a precision flag.
Other majors are refused with a clear message (the extra is ``tensorrt>=10,<12``).

One optimization profile covers batch 1..64 (optimised for 8); larger batches run in chunks.
Engines are cached next to the ONNX exports, keyed on the ONNX file's sha256, the TensorRT version,
the CUDA major version, the build recipe (:data:`ENGINE_RECIPE`), the GPU name and compute
capability, the precision, the profile and the workspace limit; an engine that no longer
deserializes (driver or TensorRT change behind our back) is rebuilt once.

What has run on real TensorRT and what has not: see docs/export.md ("TensorRT").
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from ..export.cache import cached_artifact, export_cache_dir
from ..export.onnx import DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME, export_onnx, onnx_for
from ..files import atomic_write
from ..models.tinypose import TinyPose
from ..weights.loader import sha256_of
from .base import Runtime, RuntimeUnavailable, require_cuda

__all__ = [
    "DEFAULT_PROFILE",
    "ENGINE_RECIPE",
    "SUPPORTED_MAJORS",
    "TensorRTRuntime",
    "bind_address",
    "build_engine",
    "check_cuda_match",
    "create_context",
    "cuda_major",
    "enqueue_on_own_stream",
    "import_tensorrt",
    "network_flags",
    "tensorrt_cuda_major",
    "tensorrt_logger",
    "tensorrt_major",
    "write_tensorrt_engine",
]

logger = logging.getLogger("tinypose")
DEFAULT_PROFILE = (1, 8, 64)
"""(min, opt, max) batch of the optimization profile."""
DEFAULT_WORKSPACE = 1 << 30
SUPPORTED_MAJORS = (10, 11)
"""TensorRT major versions this code is written for (the ``[tensorrt]`` extra: ``tensorrt>=10,<12``)."""
ENGINE_RECIPE = 2
"""Version of :func:`build_engine`'s recipe, part of the engine cache key: bump it whenever the builder
settings change in code, so that engines built by the old recipe are not reused. 2: flags by major."""


def tensorrt_major(trt: ModuleType) -> int:
    """TensorRT's major version, from ``trt.__version__`` (``"10.13.0.35"`` -> 10)."""
    return int(str(trt.__version__).split(".")[0])


def import_tensorrt() -> ModuleType:
    """``import tensorrt`` or a :class:`RuntimeUnavailable` that says what to install."""
    try:
        import tensorrt as trt  # optional extra ([tensorrt])
    except ImportError as error:
        raise RuntimeUnavailable(
            "the tensorrt backend needs NVIDIA TensorRT 10 or 11 for Python (`pip install tensorrt-cu12` or "
            "`tensorrt-cu13`, matching torch's CUDA, or `pip install tinypose[tensorrt]`) and a CUDA GPU; "
            "without it use backend='torch' with precision='fp16' on the GPU, or 'openvino' / 'onnxruntime' "
            "on the CPU"
        ) from error
    if tensorrt_major(trt) not in SUPPORTED_MAJORS:
        raise RuntimeUnavailable(
            f"the tensorrt backend supports TensorRT {' and '.join(map(str, SUPPORTED_MAJORS))}, "
            f"found {trt.__version__}"
        )
    return trt


def cuda_major(version: str | None) -> int | None:
    """The major of a CUDA version string (``"12.8"`` -> 12); ``None`` for ``None`` (a CPU-only torch)."""
    return int(version.split(".")[0]) if version else None


def tensorrt_cuda_major() -> int | None:
    """The CUDA major the installed TensorRT wheels were built for, from their distribution names
    (``tensorrt-cu12``, ``tensorrt_cu13_libs``...): the cu12 and cu13 packages report the same
    ``tensorrt.__version__``. ``None`` when no such distribution says it (or they disagree)."""
    majors = set()
    for distribution in importlib.metadata.distributions():
        match = re.fullmatch(r"tensorrt[-_]cu(\d+)(?:[-_].*)?", str(distribution.metadata["Name"] or "").lower())
        if match:
            majors.add(int(match.group(1)))
    return majors.pop() if len(majors) == 1 else None


def check_cuda_match(trt: ModuleType, torch_cuda: str | None) -> int | None:
    """Refuse a TensorRT built for another CUDA major than torch's; return torch's CUDA major."""
    torch_major = cuda_major(torch_cuda)
    trt_major = tensorrt_cuda_major()
    if torch_major is not None and trt_major is not None and torch_major != trt_major:
        raise RuntimeUnavailable(
            f"TensorRT {trt.__version__} is the CUDA {trt_major} build but torch {torch.__version__} uses CUDA "
            f"{torch_cuda}; install tensorrt-cu{torch_major} instead"
        )
    return torch_major


_LOGGER_LOCK = threading.Lock()
_LOGGERS: dict[int, Any] = {}


def tensorrt_logger(trt: ModuleType) -> Any:
    """The process's one ``trt.Logger`` (TensorRT warns about a logger mismatch when a second one is made)."""
    with _LOGGER_LOCK:
        if id(trt) not in _LOGGERS:
            _LOGGERS[id(trt)] = trt.Logger(trt.Logger.WARNING)
        return _LOGGERS[id(trt)]


def network_flags(trt: ModuleType) -> int:
    """``create_network`` flags for a strongly typed network, decided by the major version: TensorRT 10
    needs ``STRONGLY_TYPED``; 11 is always strongly typed (the flag is passed only while it exists)."""
    major = tensorrt_major(trt)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if major == 10:
        if flag is None:
            raise RuntimeUnavailable(f"TensorRT {trt.__version__} has no STRONGLY_TYPED network flag")
        return 1 << int(flag)
    if major == 11:
        return 0 if flag is None else 1 << int(flag)
    raise RuntimeUnavailable(f"TensorRT {trt.__version__}: unsupported major version {major}")


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    input_shape: tuple[int, int, int],
    precision: str = "fp16",
    profile: tuple[int, int, int] = DEFAULT_PROFILE,
    workspace: int = DEFAULT_WORKSPACE,
) -> Path:
    """Parse ``onnx_path`` and write a serialized engine to ``engine_path`` (its folder is created; the
    file appears complete or not at all).

    ``precision`` describes the ONNX (``fp16``: float16 inside, ``fp32``): the network is strongly
    typed, so TensorRT takes each layer's precision from the ONNX and no precision flag is set.
    """
    del precision  # read from the ONNX by the strongly typed network
    trt = import_tensorrt()
    trt_logger = tensorrt_logger(trt)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT {trt.__version__} could not parse the ONNX: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
    optimization_profile = builder.create_optimization_profile()
    low, opt, high = profile
    optimization_profile.set_shape(INPUT_NAME, (low, *input_shape), (opt, *input_shape), (high, *input_shape))
    config.add_optimization_profile(optimization_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT {trt.__version__} failed to build an engine (see its log above)")
    engine_path = Path(engine_path)
    with atomic_write(engine_path) as temporary, temporary.open("wb") as file:
        file.write(serialized)  # IHostMemory exposes the buffer protocol
    return engine_path


def create_context(engine: Any, engine_path: Path) -> Any:
    """``engine.create_execution_context()``, which returns ``None`` when it fails (out of GPU memory)."""
    context = engine.create_execution_context()
    if context is None:
        raise RuntimeError(
            f"{engine_path}: TensorRT could not create an execution context (out of GPU memory? see its log)"
        )
    return context


def bind_address(context: Any, name: str, tensor: Tensor) -> None:
    """``context.set_tensor_address`` with its result checked (``False``: wrong name or misaligned memory)."""
    if not context.set_tensor_address(name, tensor.data_ptr()):
        raise RuntimeError(
            f"TensorRT refused the address of tensor {name!r} ({tuple(tensor.shape)}, {tensor.dtype}, "
            f"{tensor.device}); see its log"
        )


def enqueue_on_own_stream(launch: Callable[[int], bool], own: Any, caller: Any) -> bool:
    """Run ``launch(stream_handle)`` on the runtime's ``own`` stream, ordered after the ``caller``'s
    pending work (the input was written there) and before its later work (it reads the output):
    TensorRT never sees the legacy default stream, which it would synchronize on every call."""
    own.wait_stream(caller)
    launched = launch(own.cuda_stream)
    caller.wait_stream(own)
    return launched


_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "INT32": torch.int32, "BF16": torch.bfloat16}


class TensorRTRuntime(Runtime):
    """A TensorRT engine on one CUDA GPU. Options: ``precision`` (``fp16`` default, ``fp32``),
    ``profile`` (min, opt, max batch), ``workspace`` (bytes), ``opset``, ``cache_dir``.

    Calls are serialized by a lock (one execution context and its bindings per runtime; contexts
    are not thread-safe) and enqueued on the runtime's own CUDA stream, with waits both ways on the
    caller's current stream."""

    name = "tensorrt"

    def __init__(
        self,
        model: TinyPose,
        device: torch.device,
        *,
        precision: str = "fp16",
        profile: tuple[int, int, int] = DEFAULT_PROFILE,
        workspace: int = DEFAULT_WORKSPACE,
        opset: int = DEFAULT_OPSET,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(model.spec, device)
        trt = import_tensorrt()
        require_cuda(device, "tensorrt")
        if precision not in ("fp16", "fp32"):
            raise ValueError(f"precision must be 'fp16' or 'fp32', not {precision!r}")
        low, opt, high = (int(v) for v in profile)
        if not 1 <= low <= opt <= high:
            raise ValueError(f"profile must be (min, opt, max) with 1 <= min <= opt <= max, got {profile}")
        self.max_batch = high
        torch_cuda_major = check_cuda_match(trt, torch.version.cuda)
        onnx_path = onnx_for(model, "tensorrt", trt.__version__, cache_dir=cache_dir, opset=opset, precision=precision)
        properties = torch.cuda.get_device_properties(device)
        fields = {
            "onnx_sha256": sha256_of(onnx_path),
            "tensorrt": trt.__version__,
            "cuda_major": torch_cuda_major,
            "recipe": ENGINE_RECIPE,
            "gpu": properties.name,
            "compute_capability": f"{properties.major}.{properties.minor}",
            "precision": precision,
            "profile": [low, opt, high],
            "workspace": int(workspace),
        }

        def build(path: Path) -> None:
            logger.info(
                "building a TensorRT %s engine for %s on %s (a minute or so)",
                precision,
                model.spec.name,
                properties.name,
            )
            with torch.cuda.device(device):
                build_engine(
                    onnx_path,
                    path,
                    input_shape=self.input_shape,
                    precision=precision,
                    profile=(low, opt, high),
                    workspace=workspace,
                )

        folder = export_cache_dir(cache_dir) / "tensorrt"
        stem = f"{model.spec.name}-{precision}"
        self.cache_fields = fields
        self.engine_path = cached_artifact(folder, stem, ".engine", fields, build)
        self._runtime = trt.Runtime(tensorrt_logger(trt))
        with torch.cuda.device(device):
            engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if engine is None:
                logger.warning("%s does not deserialize with this TensorRT/GPU; rebuilding it", self.engine_path)
                self.engine_path.unlink(missing_ok=True)
                self.engine_path = cached_artifact(folder, stem, ".engine", fields, build)
                engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if engine is None:
                raise RuntimeError(
                    f"{self.engine_path}: TensorRT {trt.__version__} cannot deserialize the engine it built"
                )
            self.engine = engine
            self.context = create_context(engine, self.engine_path)
            self._stream = torch.cuda.Stream(device)
        self._lock = threading.Lock()
        self.output_dtype = _TORCH_DTYPES[engine.get_tensor_dtype(OUTPUT_NAME).name]
        self.input_dtype = _TORCH_DTYPES[engine.get_tensor_dtype(INPUT_NAME).name]

    def _device_guard(self) -> contextlib.AbstractContextManager[Any]:
        return torch.cuda.device(self.device)

    def forward(self, batch: Tensor) -> Tensor:
        with self._lock, self._device_guard():
            batch = batch.to(self.device, self.input_dtype, non_blocking=True).contiguous()
            if not self.context.set_input_shape(INPUT_NAME, tuple(batch.shape)):
                raise ValueError(
                    f"batch shape {tuple(batch.shape)} is outside the engine's profile (max {self.max_batch})"
                )
            output = torch.empty(
                tuple(self.context.get_tensor_shape(OUTPUT_NAME)), dtype=self.output_dtype, device=self.device
            )
            if batch.is_cuda:  # read on our stream: the allocator must not hand its memory out before that
                batch.record_stream(self._stream)
            bind_address(self.context, INPUT_NAME, batch)
            bind_address(self.context, OUTPUT_NAME, output)
            caller = torch.cuda.current_stream(self.device)
            if not enqueue_on_own_stream(self.context.execute_async_v3, self._stream, caller):
                raise RuntimeError(f"TensorRT execution failed for a batch of {batch.shape[0]}")
        return output


def write_tensorrt_engine(
    model: TinyPose,
    output: Path,
    *,
    precision: str,
    opset: int,
    exporter: str,
    check_batch: Tensor | None,
    report: Callable[[str], None],
) -> None:
    """``export.py --format tensorrt``: a serialized engine with the default profile, built on this
    machine's GPU (engines are specific to a GPU and a TensorRT version), written atomically (its
    folder created). The ONNX inside is always our graph lowering (``exporter`` and ``check_batch``
    are not used)."""
    del exporter, check_batch
    trt = import_tensorrt()
    if not torch.cuda.is_available():
        raise RuntimeUnavailable("building a TensorRT engine needs a CUDA GPU; torch sees none")
    check_cuda_match(trt, torch.version.cuda)
    start = time.perf_counter()
    spec = model.spec
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, onnx_path, opset=opset, precision=precision)
        build_engine(onnx_path, output, input_shape=(3, spec.input_height, spec.input_width), precision=precision)
    report(
        f"wrote {output} (TensorRT {trt.__version__}, {precision}, batch profile {DEFAULT_PROFILE}) "
        f"in {time.perf_counter() - start:.1f} s"
    )
