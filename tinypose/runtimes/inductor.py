"""The ``inductor`` runtime: the fused model compiled ahead of time by TorchInductor (AOTInductor,
``torch._inductor.aoti_compile_and_package``) into a ``.pt2`` package, cached on disk, so that only
the first start compiles and every later start loads the package.

On the CPU the package is C++ (Inductor's C++ backend, compiled by the system's C++ compiler); on
CUDA it is Triton/CUDA kernels, and each batch bucket (powers of two up to :attr:`MAX_GRAPH_BATCH`)
replays one captured CUDA graph of it, as the ``torch`` runtime's ``cuda_graphs`` does. The batch
dimension of the package is dynamic (1..:attr:`MAX_GRAPH_BATCH`; larger batches run in chunks).

The cache key holds everything the compiled code depends on: the weights (sha256 of the state dict),
the model, the tinypose and torch versions (and torch's CUDA), the device (GPU name and compute
capability, or the CPU's model name and architecture), the precision, the memory format, the batch
range and buckets, and :data:`RECIPE` (bumped when the compile settings below change).
"""

from __future__ import annotations

import importlib
import logging
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..export.cache import cached_artifact, export_cache_dir, state_dict_sha256
from ..models.fuse import fuse_model
from ..models.tinypose import TinyPose
from .base import Runtime, RuntimeUnavailable, require_cuda
from .torch import TorchRuntime

__all__ = ["RECIPE", "InductorRuntime", "cpu_name", "inductor_available"]

logger = logging.getLogger("tinypose")

RECIPE = 1
"""Version of the compile recipe (export options, Inductor settings), part of the cache key."""


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``) and architecture: Inductor's C++ is built for this ISA."""
    name = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} ({platform.machine()})"


def inductor_available(device: torch.device) -> bool:
    """CPU: a C++ compiler on PATH (Inductor's C++ backend); CUDA: triton installed (and a GPU, checked later)."""
    from .registry import get_runtime

    return get_runtime("inductor").is_available(device)


class InductorRuntime(TorchRuntime):
    """The fused model as an AOTInductor package, compiled once per cache key and loaded afterwards.

    Options: ``precision`` (``fp32``; ``fp16``/``bf16`` on CUDA), ``channels_last`` (default on),
    ``cuda_graphs`` (CUDA only, default on: one graph per power-of-two batch bucket up to
    :attr:`MAX_GRAPH_BATCH`), ``num_threads``, ``cache_dir``. :attr:`compile_seconds` says how long
    the start took to compile (0 when the package was loaded from the cache) and
    :attr:`load_seconds` how long loading it took.
    """

    name = "inductor"
    MAX_GRAPH_BATCH = 256

    def __init__(
        self,
        model: TinyPose,
        device: torch.device,
        *,
        precision: str = "fp32",
        channels_last: bool = True,
        cuda_graphs: bool | None = None,
        num_threads: int | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        Runtime.__init__(self, model.spec, device)
        if precision not in self._DTYPES:
            raise ValueError(f"precision must be one of {', '.join(self._DTYPES)}, not {precision!r}")
        if device.type == "cuda":
            require_cuda(device, "inductor")
            torch.backends.cudnn.benchmark = True
        elif device.type != "cpu":
            raise RuntimeUnavailable(f"the inductor backend runs on the CPU or a CUDA GPU, not {device}")
        elif precision != "fp32" or cuda_graphs:
            raise ValueError("precision fp16/bf16 and cuda_graphs are for device='cuda'; the CPU runs fp32")
        if not inductor_available(device):
            raise RuntimeUnavailable(
                "the inductor backend needs a C++ compiler on PATH (g++ or clang++) on the CPU, and triton on CUDA"
            )
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.dtype = self._DTYPES[precision]
        self.channels_last = channels_last
        self.cuda_graphs = device.type == "cuda" if cuda_graphs is None else bool(cuda_graphs)
        self.max_batch = self.MAX_GRAPH_BATCH
        self._graphs = {}
        self._lock = threading.Lock()
        buckets = [1 << k for k in range(self.MAX_GRAPH_BATCH.bit_length())] if self.cuda_graphs else []
        if device.type == "cuda":
            properties = torch.cuda.get_device_properties(device)
            device_name = f"{properties.name} (sm {properties.major}.{properties.minor})"
        else:
            device_name = cpu_name()
        fields: dict[str, Any] = {
            "model_name": model.spec.name,
            "weights_sha256": state_dict_sha256(model),
            "tinypose": __version__,
            "torch": torch.__version__,
            "torch_cuda": torch.version.cuda,
            "device_type": device.type,
            "device_name": device_name,
            "precision": precision,
            "channels_last": channels_last,
            "batch_range": [1, self.MAX_GRAPH_BATCH],
            "cuda_graph_buckets": buckets,
            "recipe": RECIPE,
        }
        self.cache_fields = fields
        self.compile_seconds = 0.0

        def build(path: Path) -> None:
            logger.info(
                "compiling %s with AOTInductor for %s (%s); minutes on a small CPU, cached for the next start",
                model.spec.name,
                device_name,
                precision,
            )
            start = time.perf_counter()
            self._compile(model, path)
            self.compile_seconds = time.perf_counter() - start

        folder = export_cache_dir(cache_dir) / "inductor"
        self.package_path = cached_artifact(
            folder, f"{model.spec.name}-{device.type}-{precision}", ".pt2", fields, build
        )
        aoti = importlib.import_module("torch._inductor")  # imported on use: it takes a while

        start = time.perf_counter()
        device_index = device.index if device.type == "cuda" and device.index is not None else -1
        self._package = aoti.aoti_load_package(str(self.package_path), device_index=device_index)
        self.load_seconds = time.perf_counter() - start
        self.network = self._package

    def _compile(self, model: TinyPose, path: Path) -> None:
        """Export the fused model with a dynamic batch and write the AOTInductor package to ``path``."""
        aoti = importlib.import_module("torch._inductor")

        network = fuse_model(model).to(device=self.device, dtype=self.dtype).eval()
        if self.channels_last:
            network = network.to(memory_format=torch.channels_last)
        example = self._prepare(torch.zeros(2, *self.input_shape))
        batch = torch.export.Dim("batch", min=1, max=self.MAX_GRAPH_BATCH)
        with torch.inference_mode():
            exported = torch.export.export(network, (example,), dynamic_shapes=({0: batch},))
        with tempfile.TemporaryDirectory(prefix="tinypose-aoti-") as tmp:
            # aoti_compile_and_package wants a name ending in .pt2; the cache renames the result into place
            package = aoti.aoti_compile_and_package(exported, package_path=str(Path(tmp) / "model.pt2"))
            shutil.copyfile(package, path)
