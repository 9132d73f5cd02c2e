"""What every runtime shares: the :class:`Runtime` base class, :class:`RuntimeUnavailable`, and the CPU
micro-batch strategy of the ONNX Runtime and OpenVINO runtimes.

A runtime is a callable ``runtime(batch [N,3,H,W] float32) -> heatmaps [N,K,H/4,W/4] float32``.
Heatmaps come back as float32 on the device of the input batch (so a CPU batch gives CPU heatmaps
whatever the runtime runs on). Batches of any size are accepted; a runtime with a maximum batch
(TensorRT's profile, CUDA graphs) runs larger ones in chunks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from ..device import resolve_device
from ..models.tinypose import ModelSpec

__all__ = [
    "MICRO_BATCH_PIXELS",
    "CpuMicroBatchRuntime",
    "Fastest",
    "Runtime",
    "RuntimeUnavailable",
    "micro_batches",
    "require_cuda",
    "runtime_device",
]

ArrayRunner = Callable[[np.ndarray], np.ndarray]
"""One call of a runtime's own session on a contiguous float32 batch."""


class RuntimeUnavailable(RuntimeError):
    """A runtime's package or device is missing; the message says what to install or use instead."""


def runtime_device(device: str | torch.device | None) -> torch.device:
    """CPU by default; ``cuda`` pinned to the current GPU's index so that cache keys name one GPU."""
    device = resolve_device(device, prefer_cuda=False)
    index: int | None = device.index  # torch's stub says int; "cuda" has None
    if device.type == "cuda" and index is None:
        device = torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
    return device


def require_cuda(device: torch.device, runtime: str) -> None:
    """Raise :class:`RuntimeUnavailable` unless ``device`` is CUDA and torch sees a GPU."""
    if device.type != "cuda":
        raise RuntimeUnavailable(f"the {runtime} backend runs on a CUDA GPU; pass device='cuda'")
    if not torch.cuda.is_available():
        raise RuntimeUnavailable(
            f"the {runtime} backend needs a CUDA GPU, but torch {torch.__version__} sees none "
            f"(torch.cuda.is_available() is False); use backend='openvino' or 'onnxruntime' on the CPU"
        )


class Runtime:
    """Base class: checks the batch, runs :meth:`forward`, returns float32 on the input's device.

    A subclass sets :attr:`name` (its registry name), calls ``super().__init__(model.spec, device)``
    and implements :meth:`forward` on a float32 batch of at most :attr:`max_batch` crops.
    """

    name: ClassVar[str] = "base"
    max_batch: int | None = None

    def __init__(self, spec: ModelSpec, device: torch.device) -> None:
        self.spec = spec
        self.device = device
        self.input_shape = (3, spec.input_height, spec.input_width)

    def forward(self, batch: Tensor) -> Tensor:
        """Heatmaps of a non-empty float32 batch (any dtype and device; :meth:`__call__` converts)."""
        raise NotImplementedError

    def __call__(self, batch: Tensor | np.ndarray) -> Tensor:
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


MICRO_BATCH_PIXELS = 128 * 96 * 4
"""Crops per micro-batch on the CPU = this // (H * W): 4 at 128x96, 1 at 256x192. Activations of a
whole batch of 32 overflow the caches; measured (bench_backends.py) ~1.3-2x faster in chunks."""


def micro_batches(batch: np.ndarray, streams: int, micro_batch: int) -> list[np.ndarray]:
    """Split a batch into at least ``streams`` (when it has that many crops) micro-batches."""
    count = max(min(len(batch), streams), -(-len(batch) // micro_batch))
    return np.array_split(batch, count)


class CpuMicroBatchRuntime(Runtime):
    """Shared CPU strategy of the ONNX Runtime and OpenVINO runtimes.

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
        """Heatmaps of one crop, as fast as one crop can go."""
        raise NotImplementedError

    def run_chunks(self, chunks: list[np.ndarray]) -> list[np.ndarray]:
        """Heatmaps of each micro-batch, in order, run concurrently by ``streams`` workers."""
        raise NotImplementedError

    def forward(self, batch: Tensor) -> Tensor:
        array = np.ascontiguousarray(batch.detach().cpu().numpy())
        if len(array) == 1:
            return torch.from_numpy(self.run_latency(array))
        return torch.from_numpy(np.concatenate(self.run_chunks(micro_batches(array, self.streams, self.micro_batch))))


class Fastest:
    """Calls whichever of several interchangeable runners has lately been the fastest.

    A probe window (the first calls, then every ``every`` calls) runs each runner ``probes`` times
    in turn and keeps the one with the lowest median time. Which one wins depends on the load:
    when other processes share the cores, threads that meet at a barrier after every layer wait
    for each other and a single thread wins (measured here: 233 vs 174 crops/s at 128x96 on 2
    cores under moderate load); on idle cores more threads can win. The choice follows the load.
    """

    def __init__(self, runners: dict[str, ArrayRunner], every: int = 200, probes: int = 3) -> None:
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
