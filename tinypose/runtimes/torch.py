"""The ``torch`` runtime: the fused PyTorch model in ``inference_mode``; on CUDA optionally half
precision, CUDA graphs and ``torch.compile``."""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..models.fuse import fuse_model
from ..models.tinypose import TinyPose
from .base import Runtime, require_cuda

__all__ = ["TorchRuntime"]


class TorchRuntime(Runtime):
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
        del cache_dir  # nothing is exported; accepted so that every runtime takes the same options
        if precision not in self._DTYPES:
            raise ValueError(f"precision must be one of {', '.join(self._DTYPES)}, not {precision!r}")
        if device.type == "cuda":
            require_cuda(device, "torch CUDA")
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
        self.network: Callable[[Tensor], Tensor] = torch.compile(network, dynamic=True) if compile else network
        self.cuda_graphs = cuda_graphs
        if cuda_graphs:
            self.max_batch = self.MAX_GRAPH_BATCH
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, Tensor, Tensor]] = {}
        self._lock = threading.Lock()  # one set of graph buffers per runtime; the service calls from threads

    def _prepare(self, batch: Tensor) -> Tensor:
        batch = batch.to(self.device, self.dtype, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    def _device_guard(self) -> contextlib.AbstractContextManager[Any]:
        """Pin the runtime's GPU for capture and replay (``device="cuda:1"`` while cuda:0 is current)."""
        return torch.cuda.device(self.device)

    def forward(self, batch: Tensor) -> Tensor:
        with torch.inference_mode():
            if not self.cuda_graphs:
                return self.network(self._prepare(batch))
            count = batch.shape[0]
            size = 1 << (count - 1).bit_length()  # the next power of two
            with self._lock, self._device_guard():
                cuda_graph, static_in, static_out = self._graphs.get(size) or self._capture(size)
                static_in[:count].copy_(self._prepare(batch))
                cuda_graph.replay()
                return static_out[:count].clone()

    def _capture(self, size: int) -> tuple[torch.cuda.CUDAGraph, Tensor, Tensor]:
        """Capture the forward for one batch size on the runtime's device: warm-up on a side stream of
        that device, as CUDA requires, and the capture on that same stream (not PyTorch's shared
        capture stream, which belongs to whichever device was current when it was first made)."""
        static_in = self._prepare(torch.zeros(size, *self.input_shape))
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.network(static_in)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            static_out = self.network(static_in)
        self._graphs[size] = (graph, static_in, static_out)
        return self._graphs[size]
