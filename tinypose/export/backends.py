"""Runtime backends behind one interface: ``backend(batch [N,3,H,W] float32) -> heatmaps [N,K,H/4,W/4]``.

``create_backend(name, model, device=None, **options)`` with ``name`` in :data:`BACKENDS`:

* ``torch``: the fused model (BatchNorm and shuffles folded) in ``inference_mode``; on CUDA with
  ``precision="fp16"``, ``channels_last``, ``cuda_graphs=True`` or ``compile=True`` as options.
* ``onnxruntime``: our ONNX (exported on first use, cached) in an ONNX Runtime session (CPU, or
  the CUDA execution provider when ``device`` is CUDA and the installed package has it).
* ``openvino``: the same ONNX compiled by OpenVINO for the CPU.
* ``tensorrt``: an FP16 engine built from the ONNX (see :mod:`tinypose.export.tensorrt`).
* ``auto``: the fastest available for the device (measured in ``benchmarks/bench_backends.py``):
  on CUDA TensorRT, else torch FP16 with CUDA graphs; on the CPU ONNX Runtime, else OpenVINO,
  else torch.

Heatmaps come back as float32 on the device of the input batch (so a CPU batch gives CPU
heatmaps whatever the backend runs on). Batches of any size are accepted; a backend with a
maximum batch (TensorRT's profile) runs larger ones in chunks.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..device import resolve_device
from ..models.fuse import fuse_model
from ..models.tinypose import ModelSpec, TinyPose, build_model
from .cache import cached_artifact, export_cache_dir, state_dict_sha256
from .onnx import DEFAULT_OPSET, INPUT_NAME, export_onnx

__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "available_backends", "create_backend", "onnx_for"]

BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt", "auto")
logger = logging.getLogger("tinypose")


class BackendUnavailable(RuntimeError):
    """A backend's runtime (package or device) is missing; the message says what to install."""


def _resolve_device(device: str | torch.device | None) -> torch.device:
    """CPU by default; ``cuda`` pinned to the current GPU's index so that cache keys name one GPU."""
    device = resolve_device(device, prefer_cuda=False)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
    return device


def _require_cuda(device: torch.device, backend: str) -> None:
    if device.type != "cuda":
        raise BackendUnavailable(f"the {backend} backend runs on a CUDA GPU; pass device='cuda'")
    if not torch.cuda.is_available():
        raise BackendUnavailable(
            f"the {backend} backend needs a CUDA GPU, but torch {torch.__version__} sees none "
            f"(torch.cuda.is_available() is False); use backend='openvino' or 'onnxruntime' on the CPU"
        )


class Backend:
    """Base class: checks the batch, runs :meth:`forward`, returns float32 on the input's device."""

    name = "base"
    max_batch: int | None = None

    def __init__(self, spec: ModelSpec, device: torch.device) -> None:
        self.spec = spec
        self.device = device
        self.input_shape = (3, spec.input_height, spec.input_width)

    def forward(self, batch: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, batch: Tensor) -> Tensor:
        if not isinstance(batch, Tensor):
            batch = torch.as_tensor(np.asarray(batch))
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.spec.name} ({self.name} backend) takes a batch [N, {', '.join(map(str, self.input_shape))}], "
                f"got {list(batch.shape)}"
            )
        heatmap_w, heatmap_h = self.spec.heatmap_size
        if batch.shape[0] == 0:
            return torch.zeros(0, self.spec.num_joints, heatmap_h, heatmap_w, device=batch.device)
        batch = batch.float()
        if self.max_batch is None or batch.shape[0] <= self.max_batch:
            out = self.forward(batch)
        else:
            out = torch.cat([self.forward(chunk) for chunk in batch.split(self.max_batch)])
        return out.float().to(batch.device).contiguous()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name}, device={self.device})"


class TorchBackend(Backend):
    """The fused PyTorch model (``fuse=False`` keeps the original graph).

    Options: ``precision`` ``"fp32"`` | ``"fp16"`` | ``"bf16"`` (half types on CUDA),
    ``channels_last`` (default on: 1.4-1.8x faster than NCHW on the CPU here, measured at
    batch 1 and 32 for both sizes; tensor-core friendly on CUDA),
    ``cuda_graphs`` (CUDA only: batches are padded to the next power of two up to 64 and each
    size replays one captured graph, so at most 7 graphs exist; larger batches run in chunks of
    64), ``compile``
    (``torch.compile`` with a dynamic batch: the first call compiles, tens of seconds),
    ``num_threads`` (sets ``torch.set_num_threads`` for the process). On CUDA it also turns on
    ``torch.backends.cudnn.benchmark`` (process-wide), which picks the fastest conv kernels for
    the fixed input size.
    """

    name = "torch"
    MAX_GRAPH_BATCH = 64
    _DTYPES: ClassVar[dict[str, torch.dtype]] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

    def __init__(
        self,
        model: TinyPose,
        device: torch.device,
        *,
        fuse: bool = True,
        precision: str = "fp32",
        channels_last: bool = True,
        cuda_graphs: bool = False,
        compile: bool = False,
        num_threads: int | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(model.spec, device)
        del cache_dir  # nothing is exported; accepted so that every backend takes the same options
        if precision not in self._DTYPES:
            raise ValueError(f"precision must be one of {', '.join(self._DTYPES)}, not {precision!r}")
        if device.type == "cuda":
            _require_cuda(device, "torch CUDA")
            torch.backends.cudnn.benchmark = True
        elif precision != "fp32" or cuda_graphs:
            raise ValueError("precision fp16/bf16 and cuda_graphs are for device='cuda'; the CPU runs fp32")
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.dtype = self._DTYPES[precision]
        self.channels_last = channels_last
        network: nn.Module = fuse_model(model) if fuse else copy.deepcopy(model)  # never move the caller's model
        network = network.to(device=device, dtype=self.dtype).eval()
        if self.channels_last:
            network = network.to(memory_format=torch.channels_last)
        self.network = torch.compile(network, dynamic=True) if compile else network
        self.cuda_graphs = cuda_graphs
        if cuda_graphs:
            self.max_batch = self.MAX_GRAPH_BATCH
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, Tensor, Tensor]] = {}

    def _prepare(self, batch: Tensor) -> Tensor:
        batch = batch.to(self.device, self.dtype, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    def forward(self, batch: Tensor) -> Tensor:
        with torch.inference_mode():
            if not self.cuda_graphs:
                return self.network(self._prepare(batch))
            count = batch.shape[0]
            size = 1 << (count - 1).bit_length()  # the next power of two
            cuda_graph, static_in, static_out = self._graphs.get(size) or self._capture(size)
            static_in[:count].copy_(self._prepare(batch))
            cuda_graph.replay()
            return static_out[:count].clone()

    def _capture(self, size: int) -> tuple[torch.cuda.CUDAGraph, Tensor, Tensor]:
        """Capture the forward for one batch size (after warm-up on a side stream, as CUDA requires)."""
        static_in = self._prepare(torch.zeros(size, *self.input_shape))
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.network(static_in)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.network(static_in)
        self._graphs[size] = (graph, static_in, static_out)
        return self._graphs[size]


def onnx_for(
    model: TinyPose,
    runtime: str,
    runtime_version: str,
    *,
    cache_dir: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    precision: str = "fp32",
) -> Path:
    """The cached ONNX export of ``model`` for ``runtime`` (exported now when missing or stale)."""
    import onnx

    from .. import __version__

    spec = model.spec
    fields = {
        "model_name": spec.name,
        "weights_sha256": state_dict_sha256(model),
        "tinypose": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "runtime": runtime,
        "runtime_version": runtime_version,
        "opset": opset,
        "precision": precision,
        "exporter": "graph",
    }
    folder = export_cache_dir(cache_dir)

    def build(path: Path) -> None:
        logger.info("exporting %s to ONNX for %s (%s) in %s", spec.name, runtime, precision, folder)
        export_onnx(model, path, opset=opset, precision=precision)

    return cached_artifact(folder, f"{spec.name}-{precision}-{runtime}", ".onnx", fields, build)


MICRO_BATCH_PIXELS = 128 * 96 * 4
"""Crops per micro-batch on the CPU = this // (H * W): 4 at 128x96, 1 at 256x192. Activations of a
whole batch of 32 overflow the caches; measured (bench_backends.py) ~1.3-2x faster in chunks."""


def _chunks(batch: np.ndarray, streams: int, micro_batch: int) -> list[np.ndarray]:
    """Split a batch into at least ``streams`` (when it has that many crops) micro-batches."""
    count = max(min(len(batch), streams), -(-len(batch) // micro_batch))
    return np.array_split(batch, count)


class _CpuRuntimeBackend(Backend):
    """Shared CPU strategy of the ONNX Runtime and OpenVINO backends.

    One crop takes the latency path (:meth:`run_latency`). Several crops are cut into micro-batches
    of ``micro_batch`` crops that ``streams`` single-threaded workers take from a common queue: no
    barrier between threads after every layer, the activations of a micro-batch stay in cache, and
    a worker slowed down by another process on its core simply takes fewer chunks.
    """

    def __init__(
        self,
        spec: ModelSpec,
        device: torch.device,
        num_threads: int | None,
        streams: int | None,
        micro_batch: int | None,
    ) -> None:
        super().__init__(spec, device)
        self.num_threads = int(num_threads) if num_threads else None
        self.streams = int(streams or self.num_threads or os.cpu_count() or 1)
        self.micro_batch = int(micro_batch or max(1, MICRO_BATCH_PIXELS // (spec.input_height * spec.input_width)))

    def run_latency(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run_chunks(self, chunks: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def forward(self, batch: Tensor) -> Tensor:
        array = np.ascontiguousarray(batch.detach().cpu().numpy())
        if len(array) == 1:
            return torch.from_numpy(self.run_latency(array))
        return torch.from_numpy(np.concatenate(self.run_chunks(_chunks(array, self.streams, self.micro_batch))))


class _Fastest:
    """Calls whichever of several interchangeable runners has lately been the fastest.

    A probe window (the first calls, then every ``every`` calls) runs each runner ``probes`` times
    in turn and keeps the one with the lowest median time. Which one wins depends on the load:
    when other processes share the cores, threads that meet at a barrier after every layer wait
    for each other and a single thread wins (measured here: 233 vs 174 crops/s at 128x96 on 2
    cores under moderate load); on idle cores more threads can win. The choice follows the load.
    """

    def __init__(
        self, runners: dict[str, Callable[[np.ndarray], np.ndarray]], every: int = 200, probes: int = 3
    ) -> None:
        self.runners = runners
        self.names = list(runners)
        self.every = every
        self.probes = probes
        self.calls = 0
        self.times: dict[str, list[float]] = {name: [] for name in self.names}
        self.warm: set[str] = set()
        self.choice = self.names[0]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        phase = self.calls % self.every
        self.calls += 1
        window = len(self.names) * self.probes
        if len(self.names) == 1 or phase >= window:
            return self.runners[self.choice](batch)
        name = self.names[phase % len(self.names)]
        start = time.perf_counter()
        out = self.runners[name](batch)
        if name in self.warm:  # a runner's first call ever pays one-time setup
            self.times[name].append(time.perf_counter() - start)
        self.warm.add(name)
        if phase == window - 1 and all(self.times.values()):
            self.choice = min(self.names, key=lambda n: sorted(self.times[n])[len(self.times[n]) // 2])
            self.times = {n: [] for n in self.names}
        return out


class OnnxRuntimeBackend(_CpuRuntimeBackend):
    """ONNX Runtime on our ONNX.

    Options: ``providers`` (default: the CUDA EP for a CUDA device when installed, else CPU),
    ``num_threads`` (default all cores), ``streams`` and ``micro_batch`` (CPU batches: see
    :class:`_CpuRuntimeBackend`; a large ``micro_batch`` runs a batch in one call), ``allow_spinning``
    (whether the ``num_threads`` session's idle workers spin; default off: spinning workers take
    the cores from everything else, other sessions and processes included, and measured slower
    here), ``precision``, ``opset``, ``cache_dir``. A single crop on the CPU runs on one thread or
    on ``num_threads`` threads, whichever measures faster (:class:`_Fastest`, re-checked every
    200 calls).
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: TinyPose,
        device: torch.device,
        *,
        providers: list | None = None,
        num_threads: int | None = None,
        streams: int | None = None,
        micro_batch: int | None = None,
        allow_spinning: bool = False,
        precision: str = "fp32",
        opset: int = DEFAULT_OPSET,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(model.spec, device, num_threads, streams, micro_batch)
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise BackendUnavailable("the onnxruntime backend needs `pip install onnxruntime onnx`") from error
        self._ort = ort
        if providers is None:
            providers = ["CPUExecutionProvider"]
            if device.type == "cuda":
                if "CUDAExecutionProvider" not in ort.get_available_providers():
                    raise BackendUnavailable(
                        f"onnxruntime {ort.__version__} has no CUDAExecutionProvider; install onnxruntime-gpu "
                        "or use device='cpu'"
                    )
                providers = [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
                self.streams, self.micro_batch = 1, 1 << 30  # the GPU takes the whole batch
        self.providers = providers
        self.path = onnx_for(
            model, "onnxruntime", ort.__version__, cache_dir=cache_dir, opset=opset, precision=precision
        )
        if device.type == "cuda" or self.num_threads == 1:
            self.session = self._session(self.num_threads, spinning=False)
            self.single_thread = self.session
            self._latency = _Fastest({"session": self._run(self.session)})
        else:
            # One thread: also the session that the batch workers run concurrently (with one
            # intra-op thread, each run computes on its caller's thread).
            self.session = self._session(self.num_threads, spinning=allow_spinning)
            self.single_thread = self._session(1, spinning=False)
            self._latency = _Fastest(
                {"all threads": self._run(self.session), "one thread": self._run(self.single_thread)}
            )
        self._pool: ThreadPoolExecutor | None = None

    def _session(self, threads: int | None, spinning: bool):
        ort = self._ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        return ort.InferenceSession(str(self.path), options, providers=self.providers)

    @staticmethod
    def _run(session: Any) -> Callable[[np.ndarray], np.ndarray]:
        return lambda batch: session.run(None, {INPUT_NAME: batch})[0]

    def run_latency(self, batch: np.ndarray) -> np.ndarray:
        return self._latency(batch)

    def run_chunks(self, chunks: list[np.ndarray]) -> list[np.ndarray]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="tinypose-ort")
        session, results = self.single_thread, [None] * len(chunks)
        pending = iter(range(len(chunks)))
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    index = next(pending, None)
                if index is None:
                    return
                results[index] = session.run(None, {INPUT_NAME: chunks[index]})[0]

        assert self._pool is not None
        for future in [self._pool.submit(worker) for _ in range(min(self.streams, len(chunks)))]:
            future.result()
        return results  # type: ignore[return-value]


class OpenVinoBackend(_CpuRuntimeBackend):
    """OpenVINO (the PyPI package) on the CPU, compiled from our ONNX.

    Options: ``num_threads`` (threads for a single crop, default all cores), ``streams`` and
    ``micro_batch`` (batches go through an ``AsyncInferQueue`` on a THROUGHPUT-compiled model with
    that many single-threaded streams; see :class:`_CpuRuntimeBackend`), ``precision`` (inference
    precision hint, default ``"f32"`` so results match torch; ``"bf16"``/``"f16"`` where the CPU
    has them), ``cache_dir``. Single crops run on a model compiled for batch 1.
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
            raise BackendUnavailable("the openvino backend runs on the CPU here; pass device='cpu'")
        super().__init__(model.spec, device, num_threads, streams, micro_batch)
        try:
            import openvino as ov
        except ImportError as error:
            raise BackendUnavailable("the openvino backend needs `pip install openvino`") from error
        self._ov = ov
        self.path = onnx_for(model, "openvino", ov.__version__, cache_dir=cache_dir, opset=opset)
        self.core = ov.Core()
        self.model = self.core.read_model(str(self.path))
        self.precision = precision
        single = self.model.clone()
        single.reshape({INPUT_NAME: [1, *self.input_shape]})
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if self.num_threads:
            config["INFERENCE_NUM_THREADS"] = self.num_threads
        self.request = self.core.compile_model(single, "CPU", config).create_infer_request()
        self._queue = None

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
        return results  # type: ignore[return-value]


def _module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def available_backends(device: str | torch.device | None = None) -> list[str]:
    """Backends whose runtime is installed and can run on ``device`` (no model is built)."""
    device = _resolve_device(device)
    names = ["torch"]
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return []
        if _module_available("tensorrt"):
            names.append("tensorrt")
        if _module_available("onnxruntime"):
            import onnxruntime as ort

            if "CUDAExecutionProvider" in ort.get_available_providers():
                names.append("onnxruntime")
        return names
    if _module_available("onnxruntime"):
        names.append("onnxruntime")
    if _module_available("openvino"):
        names.append("openvino")
    return names


def _auto(device: torch.device) -> tuple[str, dict[str, Any]]:
    """Fastest available backend for ``device`` (order from benchmarks/bench_backends.py)."""
    available = available_backends(device)
    if device.type == "cuda":
        if "tensorrt" in available:
            return "tensorrt", {}
        return "torch", {"precision": "fp16", "cuda_graphs": True}
    for name in ("onnxruntime", "openvino", "torch"):
        if name in available:
            return name, {}
    return "torch", {}


def create_backend(
    name: str, model: TinyPose | str, device: str | torch.device | None = None, **options: Any
) -> Backend:
    """A callable ``backend(batch) -> heatmaps`` running ``model`` with runtime ``name``.

    ``model`` is a :class:`TinyPose` (any weights) or a model name (then built with the default
    pretrained weights). ``device`` defaults to the CPU. Exports happen on first use and are cached
    (``cache_dir`` option, default ``$TINYPOSE_HOME/exports``); options are listed per backend class.
    """
    if isinstance(model, str):
        model = build_model(model, pretrained=True)
    if not isinstance(model, TinyPose):
        raise TypeError(f"create_backend takes a TinyPose model or a model name, got {type(model).__name__}")
    model = model.eval()
    device = _resolve_device(device)
    key = name.lower().replace("-", "").replace("_", "")
    aliases = {"ort": "onnxruntime", "ov": "openvino", "trt": "tensorrt", "pytorch": "torch"}
    key = aliases.get(key, key)
    if key == "auto":
        key, defaults = _auto(device)
        options = {**defaults, **options}
        logger.info("backend 'auto' chose %s %s on %s", key, defaults or "", device)
    if key == "torch":
        return TorchBackend(model, device, **options)
    if key == "onnxruntime":
        return OnnxRuntimeBackend(model, device, **options)
    if key == "openvino":
        return OpenVinoBackend(model, device, **options)
    if key == "tensorrt":
        from .tensorrt import TensorRTBackend

        return TensorRTBackend(model, device, **options)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
