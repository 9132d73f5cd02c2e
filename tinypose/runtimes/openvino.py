"""The ``openvino`` runtime (our ONNX compiled by OpenVINO for the CPU) and the ``openvino`` (IR)
export format."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from ..export.onnx import DEFAULT_OPSET, INPUT_NAME, export_onnx, onnx_for
from ..models.tinypose import TinyPose
from .base import CpuMicroBatchRuntime, RuntimeUnavailable

__all__ = ["OpenVinoRuntime", "write_openvino_ir"]


class OpenVinoRuntime(CpuMicroBatchRuntime):
    """OpenVINO (the PyPI package) on the CPU, compiled from our ONNX.

    Options: ``num_threads`` (threads for a single crop, default all cores), ``streams`` and
    ``micro_batch`` (batches go through an ``AsyncInferQueue`` on a THROUGHPUT-compiled model with
    that many single-threaded streams; see :class:`~tinypose.runtimes.base.CpuMicroBatchRuntime`),
    ``precision`` (inference precision hint, default ``"f32"`` so results match torch;
    ``"bf16"``/``"f16"`` where the CPU has them), ``cache_dir``. Single crops run on a model
    compiled for batch 1.
    """

    name = "openvino"

    def __init__(
        self,
        model: TinyPose,
        device: torch.device,
        *,
        num_threads: int | None = None,
        streams: int | None = None,
        micro_batch: int | None = None,
        precision: str = "f32",
        opset: int = DEFAULT_OPSET,
        cache_dir: str | Path | None = None,
    ) -> None:
        if device.type != "cpu":
            raise RuntimeUnavailable("the openvino backend runs on the CPU here; pass device='cpu'")
        super().__init__(model.spec, device, num_threads, streams, micro_batch)
        try:
            import openvino as ov  # optional extra ([openvino])
        except ImportError as error:
            raise RuntimeUnavailable("the openvino backend needs `pip install openvino`") from error
        self._ov = ov
        self.path = onnx_for(model, "openvino", ov.__version__, cache_dir=cache_dir, opset=opset)
        self.core = ov.Core()
        self.model = self.core.read_model(str(self.path))
        self.precision = precision
        single = self.model.clone()
        single.reshape({INPUT_NAME: [1, *self.input_shape]})
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if self.num_threads:
            config["INFERENCE_NUM_THREADS"] = self.num_threads
        self.request = self.core.compile_model(single, "CPU", config).create_infer_request()
        self._queue: Any = None

    def run_latency(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: batch}, share_inputs=True)
        return self.request.get_output_tensor(0).data.copy()

    def run_chunks(self, chunks: list[np.ndarray]) -> list[np.ndarray]:
        if self._queue is None:
            config = {
                "INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "THROUGHPUT",
                "NUM_STREAMS": self.streams, "INFERENCE_NUM_THREADS": self.streams,
            }  # fmt: skip
            compiled = self.core.compile_model(self.model, "CPU", config)
            self._queue = self._ov.AsyncInferQueue(compiled, self.streams)
        results: list[np.ndarray | None] = [None] * len(chunks)

        def done(request: Any, index: int) -> None:
            results[index] = request.get_output_tensor(0).data.copy()

        self._queue.set_callback(done)
        for index, chunk in enumerate(chunks):
            self._queue.start_async({0: chunk}, index)
        self._queue.wait_all()
        return cast("list[np.ndarray]", results)  # wait_all() returns after every callback ran


def write_openvino_ir(
    model: TinyPose,
    output: Path,
    *,
    precision: str,
    opset: int,
    exporter: str,
    check_batch: Tensor | None,
    report: Callable[[str], None],
) -> None:
    """``export.py --format openvino``: our ONNX converted to an OpenVINO IR (``.xml`` + ``.bin``;
    ``fp16`` compresses the weights); with ``check_batch``, compare OpenVINO's heatmaps with PyTorch's."""
    try:
        import openvino as ov  # optional extra ([openvino])
    except ImportError as error:
        raise RuntimeUnavailable("writing an OpenVINO IR needs `pip install openvino`") from error
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, onnx_path, opset=opset, precision="fp32", exporter=exporter)
        ir = ov.convert_model(str(onnx_path))
        output.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(ir, str(output), compress_to_fp16=precision == "fp16")
    report(
        f"wrote {output} and {output.with_suffix('.bin')} ({precision} weights) in {time.perf_counter() - start:.1f} s"
    )
    if check_batch is None:
        return
    compiled = ov.Core().compile_model(str(output), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ours = compiled(check_batch.numpy())[0]
    with torch.inference_mode():
        diff = float(np.abs(ours - model(check_batch).numpy()).max())
    report(f"openvino vs torch on a random batch of {len(check_batch)}: max |diff| = {diff:.2e}")
