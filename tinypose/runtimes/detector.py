"""Runtimes of the PP-PicoDet person detector: ``torch`` (eager) and ``onnxruntime`` (an ONNX export).

A detector runtime is a callable ``runtime(batch [N,3,S,S] float32) -> (boxes [N,A,4], scores [N,C,A])``
on numpy arrays: what :class:`~tinypose.detect.PersonDetector` runs between its pre-processing and
NMS (:attr:`PersonDetector.forward`). Two reasons to have more than eager torch:

* **batch invariance**: eager torch's float32 convolutions pick kernels by batch size, so the boxes of
  an image depend (by up to ~7e-4 px) on the images it was batched with, and an ambiguous joint
  then moves by pixels. ONNX Runtime's CPU kernels compute each image the same whatever the batch
  (0.0 difference, ``tests/runtimes/test_detector_runtime.py``), so a service can put every
  request of a batch through ONE detector forward and still answer each exactly as alone;
* **speed**: ~7x faster than eager torch at batch 1 on the CPU (measured on the 320 detector).

``auto`` (the default of :func:`~tinypose.pipeline.create_pipeline` and ``serve.py``) picks
``onnxruntime`` on the CPU when it is installed (the ``[onnx]`` extra), ``torch`` otherwise. The
ONNX file is exported once per weights and versions and cached on disk (``cache_dir``, default
``$TINYPOSE_HOME/exports``), as the pose model's exports (:mod:`tinypose.export.cache`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .._version import __version__
from ..detect import PersonDetector, PicoDet
from ..export.cache import cached_artifact, export_cache_dir, state_dict_sha256
from .base import RuntimeUnavailable, runtime_device
from .registry import AUTO, get_runtime, module_available

__all__ = [
    "DETECTOR_BACKENDS",
    "DetectorRuntime",
    "OrtDetectorRuntime",
    "TorchDetectorRuntime",
    "create_detector_runtime",
    "detector_onnx_for",
    "resolve_detector_backend",
    "with_detector_backend",
]

logger = logging.getLogger("tinypose")

DETECTOR_OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAMES = ("boxes", "scores")


class DetectorRuntime:
    """Base class: ``runtime(batch) -> (boxes, scores)`` as float32 numpy arrays.

    ``batch_invariant``: whether an image's outputs are bit-identical whatever else is in its batch
    (then a service may batch the detector across requests).
    """

    name: ClassVar[str] = "base"
    batch_invariant: ClassVar[bool] = False

    def __init__(self, model: PicoDet, device: torch.device) -> None:
        self.spec = model.spec
        self.device = device

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name}, device={self.device})"


class TorchDetectorRuntime(DetectorRuntime):
    """The eager PyTorch model (what :class:`PersonDetector` runs by default); not batch invariant."""

    name = "torch"

    def __init__(self, model: PicoDet, device: torch.device) -> None:
        super().__init__(model, device)
        self.model = model.to(device).eval()

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self.model(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        return boxes.float().cpu().numpy(), scores.float().cpu().numpy()


def _export(model: PicoDet, output: Path, opset: int) -> None:
    """``torch.onnx.export`` of the network (no NMS), batch dynamic, input size static."""
    size = model.spec.input_size
    example = torch.zeros(1, 3, size, size)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # torch's TorchScript-based exporter (deprecated, not removed in the torch versions tinypose
        # supports): ~20 s here against minutes for the torch.export one, once per weights and versions
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model.cpu().eval(),
            (example,),
            str(output),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            dynamic_axes={INPUT_NAME: {0: "batch"}, "boxes": {0: "batch"}, "scores": {0: "batch"}},
            dynamo=False,
        )


def detector_onnx_for(
    model: PicoDet, runtime_version: str, cache_dir: str | Path | None = None, opset: int = DETECTOR_OPSET
) -> Path:
    """The cached ONNX export of ``model``, keyed by its weights and the tinypose, torch and runtime
    versions (a change of any exports again)."""
    fields = {
        "model": model.spec.name,
        "weights_sha256": state_dict_sha256(model),
        "tinypose": __version__,
        "torch": torch.__version__,
        "runtime": runtime_version,
        "opset": opset,
        "kind": "detector",
    }
    return cached_artifact(
        export_cache_dir(cache_dir), f"{model.spec.name}-onnx", ".onnx", fields, lambda out: _export(model, out, opset)
    )


class OrtDetectorRuntime(DetectorRuntime):
    """ONNX Runtime on the cached ONNX export; batch invariant on the CPU.

    One image runs on a session of ``num_threads`` intra-op threads (default: all cores). Several
    images run one per call on a single-threaded session, ``streams`` calls at a time (default
    ``num_threads``): no barrier between threads after every layer, which on shared cores costs more
    than the whole batch saves (as the pose runtimes' micro-batches, :mod:`tinypose.runtimes.base`).
    ONNX Runtime's CPU kernels give the same bits for an image whatever the batch and the thread
    count (checked in ``tests/runtimes/test_detector_runtime.py``), so either path answers alike.
    Options also ``cache_dir`` and ``opset``. Workers spin only while a call runs, never when idle.
    """

    name = "onnxruntime"
    batch_invariant = True

    def __init__(
        self,
        model: PicoDet,
        device: torch.device,
        *,
        num_threads: int | None = None,
        streams: int | None = None,
        cache_dir: str | Path | None = None,
        opset: int = DETECTOR_OPSET,
    ) -> None:
        super().__init__(model, device)
        if device.type != "cpu":
            raise RuntimeUnavailable(f"the onnxruntime detector runs on the CPU here; use the torch one on {device}")
        try:
            import onnxruntime as ort  # optional extra ([onnx])
        except ImportError as error:
            raise RuntimeUnavailable("the onnxruntime detector needs `pip install onnxruntime onnx`") from error
        self._ort = ort
        self.path = detector_onnx_for(model, ort.__version__, cache_dir, opset)
        self.num_threads = int(num_threads or os.cpu_count() or 1)
        self.streams = max(1, int(streams or self.num_threads))
        self.session = self._session(self.num_threads)
        self.single_thread = self.session if self.num_threads == 1 else self._session(1)
        self._pool: ThreadPoolExecutor | None = None

    def _session(self, threads: int) -> Any:
        ort = self._ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # several threads spin while a call runs (an image passes ~100 layers between them: 7.7 ms
        # against 8.9 ms waking sleeping workers at each) and sleep once it returns (idle spinning
        # would take the cores from the pose model and the HTTP process)
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if threads > 1 else "0")
        options.add_session_config_entry("session.force_spinning_stop", "1")
        return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def run_one(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One image ``[1,3,S,S]`` on the single-threaded session, as a batch runs each of its images;
        safe to call from several threads at once (what :meth:`PersonDetector.detect` does)."""
        boxes, scores = self.single_thread.run(None, {INPUT_NAME: np.ascontiguousarray(image, dtype=np.float32)})
        return boxes, scores

    def _one(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self.run_one(image[None])
        return boxes[0], scores[0]

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if len(batch) == 1 or self.streams == 1:
            boxes, scores = self.session.run(None, {INPUT_NAME: batch})
            return boxes, scores
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="tinypose-det")
        outputs = list(self._pool.map(self._one, batch))
        return np.stack([b for b, _ in outputs]), np.stack([s for _, s in outputs])


DETECTOR_BACKENDS: dict[str, Callable[..., DetectorRuntime]] = {
    "torch": TorchDetectorRuntime,
    "onnxruntime": OrtDetectorRuntime,
}
"""Detector runtimes by their name in the runtime registry (its aliases are accepted: ``ort``, ``pytorch``)."""


def resolve_detector_backend(name: str, device: str | torch.device | None = None) -> str:
    """The detector runtime ``name`` stands for on ``device``: ``auto`` is ``onnxruntime`` on the CPU
    when installed, else ``torch``; aliases give their runtime's name; others raise ``ValueError``."""
    device = runtime_device(device)
    if name.lower() == AUTO:
        return "onnxruntime" if device.type == "cpu" and module_available("onnxruntime") else "torch"
    try:
        resolved = get_runtime(name).name
    except ValueError:
        resolved = name
    if resolved not in DETECTOR_BACKENDS:
        raise ValueError(f"unknown detector backend {name!r}; choose one of {', '.join([*DETECTOR_BACKENDS, AUTO])}")
    return resolved


def create_detector_runtime(
    name: str, model: PicoDet, device: str | torch.device | None = None, **options: Any
) -> DetectorRuntime:
    """The detector runtime ``name`` (``torch``, ``onnxruntime`` or ``auto``) running ``model`` on ``device``."""
    device = runtime_device(device)
    resolved = resolve_detector_backend(name, device)
    if resolved == "torch":
        options = {}  # eager torch takes no options (its threads are torch's)
    return DETECTOR_BACKENDS[resolved](model, device, **options)


def with_detector_backend(detector: PersonDetector, backend: str = AUTO, **options: Any) -> PersonDetector:
    """``detector`` running its network on ``backend`` (same pre-processing, NMS and threshold)."""
    runtime = create_detector_runtime(backend, detector.model, detector.device, **options)
    if runtime.name != "torch":
        logger.info(
            "detector %s runs on %s (%s)", detector.spec.name, runtime.name, os.fspath(getattr(runtime, "path", ""))
        )
    detector.set_forward(runtime, runtime.name, runtime.batch_invariant)
    return detector
