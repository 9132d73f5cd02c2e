"""The ``tensorrt`` runtime and export format: TensorRT 10 engines from our ONNX, cached, run on torch
CUDA tensors with ``execute_async_v3``.

Precision lives in the ONNX where the TensorRT version allows it: for ``fp16`` the exporter writes
float16 weights and activations (float32 input/output behind a Cast) and the network is built
*strongly typed* (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``, TensorRT >= 10; ignored and
always on in 11). Only a TensorRT without strong typing falls back to the float32 ONNX plus
``BuilderFlag.FP16`` (deprecated in 10.12, removed in 11).

One optimization profile covers batch 1..64 (optimised for 8); larger batches run in chunks.
Engines are cached next to the ONNX exports, keyed on the ONNX file's sha256, the TensorRT version,
the GPU name and compute capability, the precision, the profile and the workspace limit; an engine
that no longer deserializes (driver or TensorRT change behind our back) is rebuilt once.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from ..export.cache import cached_artifact, export_cache_dir
from ..export.onnx import DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME, export_onnx, onnx_for
from ..models.tinypose import TinyPose
from ..weights.loader import sha256_of
from .base import Runtime, RuntimeUnavailable, require_cuda

__all__ = [
    "DEFAULT_PROFILE",
    "TensorRTRuntime",
    "build_engine",
    "import_tensorrt",
    "strongly_typed",
    "write_tensorrt_engine",
]

logger = logging.getLogger("tinypose")
DEFAULT_PROFILE = (1, 8, 64)
"""(min, opt, max) batch of the optimization profile."""
DEFAULT_WORKSPACE = 1 << 30


def import_tensorrt() -> ModuleType:
    """``import tensorrt`` or a :class:`RuntimeUnavailable` that says what to install."""
    try:
        import tensorrt as trt  # optional extra ([tensorrt])
    except ImportError as error:
        raise RuntimeUnavailable(
            "the tensorrt backend needs NVIDIA TensorRT 10 for Python (`pip install tensorrt`, or "
            "`pip install tinypose[tensorrt]`) and a CUDA GPU; without it use backend='torch' with "
            "precision='fp16' on the GPU, or 'openvino' / 'onnxruntime' on the CPU"
        ) from error
    if int(trt.__version__.split(".")[0]) < 10:
        raise RuntimeUnavailable(f"the tensorrt backend needs TensorRT >= 10, found {trt.__version__}")
    return trt


def strongly_typed(trt: ModuleType) -> bool:
    """Whether this TensorRT builds strongly typed networks (precision read from the ONNX)."""
    return hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    input_shape: tuple[int, int, int],
    precision: str = "fp16",
    profile: tuple[int, int, int] = DEFAULT_PROFILE,
    workspace: int = DEFAULT_WORKSPACE,
) -> Path:
    """Parse ``onnx_path`` and write a serialized engine to ``engine_path``.

    ``precision`` describes the ONNX: ``fp16`` = a float16 ONNX built strongly typed (or, without
    strong typing, a float32 ONNX with the FP16 builder flag); ``fp32`` = float32 throughout.
    """
    trt = import_tensorrt()
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed(trt) else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT {trt.__version__} could not parse the ONNX: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
    if precision == "fp16" and not strongly_typed(trt):
        config.set_flag(trt.BuilderFlag.FP16)
    optimization_profile = builder.create_optimization_profile()
    low, opt, high = profile
    optimization_profile.set_shape(INPUT_NAME, (low, *input_shape), (opt, *input_shape), (high, *input_shape))
    config.add_optimization_profile(optimization_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT {trt.__version__} failed to build an engine (see its log above)")
    engine_path = Path(engine_path)
    with engine_path.open("wb") as file:
        file.write(serialized)  # IHostMemory exposes the buffer protocol
    return engine_path


_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "INT32": torch.int32, "BF16": torch.bfloat16}


class TensorRTRuntime(Runtime):
    """A TensorRT engine on one CUDA GPU. Options: ``precision`` (``fp16`` default, ``fp32``),
    ``profile`` (min, opt, max batch), ``workspace`` (bytes), ``opset``, ``cache_dir``."""

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
        onnx_precision = precision if strongly_typed(trt) else "fp32"
        onnx_path = onnx_for(
            model, "tensorrt", trt.__version__, cache_dir=cache_dir, opset=opset, precision=onnx_precision
        )
        properties = torch.cuda.get_device_properties(device)
        fields = {
            "onnx_sha256": sha256_of(onnx_path),
            "tensorrt": trt.__version__,
            "gpu": properties.name,
            "compute_capability": f"{properties.major}.{properties.minor}",
            "precision": precision,
            "strongly_typed": strongly_typed(trt),
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
        self.engine_path = cached_artifact(folder, stem, ".engine", fields, build)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
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
            self.context = engine.create_execution_context()
        self.output_dtype = _TORCH_DTYPES[engine.get_tensor_dtype(OUTPUT_NAME).name]
        self.input_dtype = _TORCH_DTYPES[engine.get_tensor_dtype(INPUT_NAME).name]

    def forward(self, batch: Tensor) -> Tensor:
        with torch.cuda.device(self.device):
            batch = batch.to(self.device, self.input_dtype, non_blocking=True).contiguous()
            if not self.context.set_input_shape(INPUT_NAME, tuple(batch.shape)):
                raise ValueError(
                    f"batch shape {tuple(batch.shape)} is outside the engine's profile (max {self.max_batch})"
                )
            output = torch.empty(
                tuple(self.context.get_tensor_shape(OUTPUT_NAME)), dtype=self.output_dtype, device=self.device
            )
            self.context.set_tensor_address(INPUT_NAME, batch.data_ptr())
            self.context.set_tensor_address(OUTPUT_NAME, output.data_ptr())
            stream = torch.cuda.current_stream(self.device)
            # Enqueued on torch's current stream, so later torch work on it (or .cpu()) is ordered after.
            if not self.context.execute_async_v3(stream.cuda_stream):
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
    machine's GPU (engines are specific to a GPU and a TensorRT version). The ONNX inside is always
    our graph lowering (``exporter`` and ``check_batch`` are not used)."""
    del exporter, check_batch
    trt = import_tensorrt()
    if not torch.cuda.is_available():
        raise RuntimeUnavailable("building a TensorRT engine needs a CUDA GPU; torch sees none")
    start = time.perf_counter()
    spec = model.spec
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        onnx_precision = precision if strongly_typed(trt) else "fp32"
        export_onnx(model, onnx_path, opset=opset, precision=onnx_precision)
        build_engine(onnx_path, output, input_shape=(3, spec.input_height, spec.input_width), precision=precision)
    report(
        f"wrote {output} (TensorRT {trt.__version__}, {precision}, batch profile {DEFAULT_PROFILE}) "
        f"in {time.perf_counter() - start:.1f} s"
    )
