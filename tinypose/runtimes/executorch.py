"""The ``executorch`` runtime and export format: the fused model lowered to an ExecuTorch program
(``.pte``) with the XNNPACK delegate, run here by ExecuTorch's Python runtime.

ExecuTorch is PyTorch's path to Android, iOS and embedded devices (PaddleX's counterpart is
Paddle-Lite); the ``.pte`` written by ``export.py --format executorch`` is the file an app loads.
The program takes one crop (a static shape, what mobile apps run; a dynamic batch dimension
exported but failed to resize at run time here: ``Error resizing tensor at input 0``); batches
run crop by crop. The optional extra ``executorch`` installs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._version import __version__
from ..export.cache import cached_artifact, export_cache_dir, state_dict_sha256
from ..models.fuse import fuse_model
from ..models.tinypose import TinyPose
from .base import Runtime, RuntimeUnavailable

__all__ = ["MAX_BATCH", "ExecuTorchRuntime", "export_executorch", "write_executorch"]

MAX_BATCH = 1
"""The program's (static) batch size."""


def _import_executorch() -> tuple[Any, Any]:
    """ExecuTorch's exporter entry point and its Python runtime, or :class:`RuntimeUnavailable`."""
    try:
        import executorch  # optional extra ([executorch])
        from executorch import runtime
    except ImportError as error:
        raise RuntimeUnavailable(
            "the executorch backend needs ExecuTorch (`pip install executorch` or `pip install tinypose[executorch]`)"
        ) from error
    return executorch, runtime


def export_executorch(model: TinyPose, path: str | Path, max_batch: int = MAX_BATCH) -> Path:
    """Write ``model`` (fused) as an ExecuTorch program with every supported op delegated to XNNPACK."""
    _import_executorch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    spec = model.spec
    network = fuse_model(model).eval()
    example = (torch.randn(max_batch, 3, spec.input_height, spec.input_width),)
    exported = torch.export.export(network, example)
    program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(program.buffer)
    return path


class ExecuTorchRuntime(Runtime):
    """The ``.pte`` (XNNPACK) in ExecuTorch's Python runtime, on the CPU.

    Options: ``cache_dir`` (the program is exported on first use and cached, keyed by the weights
    and the tinypose, torch and executorch versions), ``path`` (run this ``.pte`` instead, e.g. one
    written by ``export.py --format executorch``), ``num_threads`` (accepted for a common interface;
    XNNPACK sizes its own thread pool).
    """

    name = "executorch"
    max_batch = MAX_BATCH

    def __init__(
        self,
        model: TinyPose,
        device: torch.device,
        *,
        cache_dir: str | Path | None = None,
        path: str | Path | None = None,
        num_threads: int | None = None,
    ) -> None:
        del num_threads
        if device.type != "cpu":
            raise RuntimeUnavailable("the executorch backend runs on the CPU here; pass device='cpu'")
        super().__init__(model.spec, device)
        executorch, runtime = _import_executorch()
        if path is None:
            fields = {
                "model_name": model.spec.name,
                "weights_sha256": state_dict_sha256(model),
                "tinypose": __version__,
                "torch": torch.__version__,
                "executorch": getattr(executorch, "__version__", "unknown"),
                "max_batch": MAX_BATCH,
                "delegate": "xnnpack",
            }

            def build(temporary: Path) -> None:
                export_executorch(model, temporary)

            path = cached_artifact(export_cache_dir(cache_dir), f"{model.spec.name}-executorch", ".pte", fields, build)
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"executorch backend: {self.path}: no such .pte file")
        program = runtime.Runtime.get().load_program(self.path)
        self.method = program.load_method("forward")

    def forward(self, batch: Tensor) -> Tensor:
        out = self.method.execute([batch.detach().cpu().contiguous()])[0]
        return out if isinstance(out, Tensor) else torch.as_tensor(np.asarray(out))


def write_executorch(
    model: TinyPose,
    output: Path,
    *,
    precision: str,
    opset: int,
    exporter: str,
    check_batch: Tensor | None,
    report: Callable[[str], None],
) -> None:
    """``export.py --format executorch``: the ``.pte`` (fp32, XNNPACK); with ``check_batch``, compare
    ExecuTorch's heatmaps on it with PyTorch's."""
    del opset, exporter
    if precision != "fp32":
        raise ValueError(f"--format executorch writes fp32, not {precision}")
    start = time.perf_counter()
    export_executorch(model, output)
    report(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB, XNNPACK) in {time.perf_counter() - start:.1f} s")
    if check_batch is None:
        return
    runtime = ExecuTorchRuntime(model, torch.device("cpu"), path=output)
    with torch.inference_mode():
        diff = float((runtime(check_batch) - model(check_batch)).abs().max())
    report(f"executorch vs torch on a random batch of {len(check_batch)}: max |diff| = {diff:.2e}")
