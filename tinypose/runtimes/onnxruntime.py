"""The ``onnxruntime`` runtime (our ONNX in an ONNX Runtime session) and the ``onnx`` export format."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from ..export.onnx import DEFAULT_OPSET, INPUT_NAME, export_onnx, onnx_for
from ..models.tinypose import TinyPose
from .base import ArrayRunner, CpuMicroBatchRuntime, Fastest, RuntimeUnavailable

__all__ = ["OrtRuntime", "write_onnx"]


class OrtRuntime(CpuMicroBatchRuntime):
    """ONNX Runtime on our ONNX.

    Options: ``providers`` (default: the CUDA EP for a CUDA device when installed, else CPU),
    ``num_threads`` (default all cores), ``streams`` and ``micro_batch`` (CPU batches: see
    :class:`~tinypose.runtimes.base.CpuMicroBatchRuntime`; a large ``micro_batch`` runs a batch in
    one call), ``allow_spinning`` (whether the ``num_threads`` session's workers keep spinning
    between calls; default off: idle spinning takes the cores from everything else, other sessions
    and processes included. Within a call they spin either way, and stop when it returns
    (``session.force_spinning_stop``): a single crop passes ~600 layers between the threads, and
    waking sleeping workers at each made the pair slower than one thread, 74 vs 92 crops/s at
    256x192 against 113 spinning within the call, docs/export.md),
    ``precision`` (``fp32``, ``fp16``), ``opset``, ``cache_dir``, ``path`` (run this ONNX file, e.g.
    one written by ``export.py``, instead of exporting ``model``; it must be ``model``'s size). A
    single crop on the CPU runs on one thread or on ``num_threads`` threads, whichever measures
    faster (:class:`~tinypose.runtimes.base.Fastest`, re-checked every 200 calls).
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: TinyPose,
        device: torch.device,
        *,
        providers: list[str | tuple[str, dict[str, Any]]] | None = None,
        num_threads: int | None = None,
        streams: int | None = None,
        micro_batch: int | None = None,
        allow_spinning: bool = False,
        precision: str = "fp32",
        opset: int = DEFAULT_OPSET,
        cache_dir: str | Path | None = None,
        path: str | Path | None = None,
    ) -> None:
        super().__init__(model.spec, device, num_threads, streams, micro_batch)
        try:
            import onnxruntime as ort  # optional extra ([onnx])
        except ImportError as error:
            raise RuntimeUnavailable("the onnxruntime backend needs `pip install onnxruntime onnx`") from error
        self._ort = ort
        if providers is None:
            providers = ["CPUExecutionProvider"]
            if device.type == "cuda":
                if "CUDAExecutionProvider" not in ort.get_available_providers():
                    raise RuntimeUnavailable(
                        f"onnxruntime {ort.__version__} has no CUDAExecutionProvider; install onnxruntime-gpu "
                        "or use device='cpu'"
                    )
                providers = [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
                self.streams, self.micro_batch = 1, 1 << 30  # the GPU takes the whole batch
        self.providers = providers
        self.precision = precision
        if path is not None:
            self.path = Path(path)
            if not self.path.is_file():
                raise FileNotFoundError(f"onnxruntime backend: {self.path}: no such ONNX file")
        else:
            self.path = onnx_for(
                model, "onnxruntime", ort.__version__, cache_dir=cache_dir, opset=opset, precision=precision
            )
        if device.type == "cuda" or self.num_threads == 1:
            self.session = self._session(self.num_threads)
            self.single_thread = self.session
            self._latency = Fastest({"session": self._run(self.session)})
        else:
            # One thread: also the session that the batch workers run concurrently (with one
            # intra-op thread, each run computes on its caller's thread).
            self.session = self._session(self.num_threads, spin_in_run=True, spin_between=allow_spinning)
            self.single_thread = self._session(1)
            self._latency = Fastest(
                {"all threads": self._run(self.session), "one thread": self._run(self.single_thread)}
            )
        self._pool: ThreadPoolExecutor | None = None

    def _session(self, threads: int | None, spin_in_run: bool = False, spin_between: bool = False) -> Any:
        """A session of ``threads`` intra-op threads; ``spin_in_run``: its workers spin while a call
        runs, ``spin_between``: also after it returns (else they stop and sleep)."""
        ort = self._ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_in_run else "0")
        options.add_session_config_entry("session.force_spinning_stop", "0" if spin_between else "1")
        return ort.InferenceSession(str(self.path), options, providers=self.providers)

    @staticmethod
    def _run(session: Any) -> ArrayRunner:
        return lambda batch: session.run(None, {INPUT_NAME: batch})[0]

    def run_latency(self, batch: np.ndarray) -> np.ndarray:
        return self._latency(batch)

    def run_chunks(self, chunks: list[np.ndarray]) -> list[np.ndarray]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="tinypose-ort")
        session = self.single_thread
        results: list[np.ndarray | None] = [None] * len(chunks)
        pending = iter(range(len(chunks)))
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    index = next(pending, None)
                if index is None:
                    return
                results[index] = session.run(None, {INPUT_NAME: chunks[index]})[0]

        for future in [self._pool.submit(worker) for _ in range(min(self.streams, len(chunks)))]:
            future.result()
        return cast("list[np.ndarray]", results)  # every slot is set: result() re-raised any worker's error


def write_onnx(
    model: TinyPose,
    output: Path,
    *,
    precision: str,
    opset: int,
    exporter: str,
    check_batch: Tensor | None,
    report: Callable[[str], None],
) -> None:
    """``export.py --format onnx``: write the ONNX file; with ``check_batch``, compare ONNX Runtime's
    heatmaps on it with PyTorch's."""
    start = time.perf_counter()
    export_onnx(model, output, opset=opset, precision=precision, exporter=exporter)
    report(
        f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB, opset {opset}, {precision}) "
        f"in {time.perf_counter() - start:.1f} s"
    )
    if check_batch is None:
        return
    import onnxruntime as ort  # optional extra ([onnx]): only the check runs the file

    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    ours = session.run(None, {INPUT_NAME: check_batch.numpy()})[0]
    with torch.inference_mode():
        reference = model(check_batch).numpy()
    report(
        f"onnxruntime vs torch on a random batch of {len(check_batch)}: "
        f"max |diff| = {float(np.abs(ours - reference).max()):.2e}"
    )
