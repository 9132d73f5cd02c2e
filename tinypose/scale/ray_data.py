"""Batch inference on Ray Data: work units -> ``map_batches`` over a pool of :class:`PoseWorker` actors
-> Parquet shards (:mod:`tinypose.scale.shards`).

``run_batch(inputs, output, ...)`` plans the units (:func:`~tinypose.scale.units.plan_units`), drops
those a shard in ``output`` already records (a re-run resumes), and runs the rest on ``num_actors``
actors, each holding one model with ``cpus_per_actor`` CPUs, ``gpus_per_actor`` GPUs and ``threads``
torch threads. Each actor call handles ``units_per_shard`` units and writes their shard itself, so the
driver never holds results. An actor that dies is restarted by Ray and its batch retried; the shard of
a batch is named by its units, so a retry cannot add a copy. Ray is the optional ``ray`` extra.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .shards import completed_units
from .units import plan_units
from .worker import PoseWorker, check_settings

__all__ = ["BatchSummary", "run_batch"]

BatchSummary = dict[str, Any]
"""What :func:`run_batch` returns: ``units`` planned, ``skipped`` (done by an earlier run), ``processed``,
``rows`` written, ``errors`` (units reported in an error row), ``seconds`` and ``output``."""


def _ray() -> Any:
    try:
        import ray  # optional: the ``ray`` extra
        import ray.data
    except ImportError as error:
        raise ImportError(f'engine=ray needs Ray Data: pip install -e ".[ray]" ({error})') from None
    return ray


def run_batch(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    output: str | os.PathLike,
    settings: Mapping[str, Any] | None = None,
    *,
    num_actors: int = 1,
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float = 0.0,
    threads: int | None = 1,
    units_per_shard: int = 16,
    frames_per_unit: int = 256,
    address: str | None = None,
) -> BatchSummary:
    """Keypoints of every image and video frame of ``inputs`` into Parquet shards in ``output``.

    ``settings``: the model (see :func:`tinypose.scale.worker.build_runner`: ``model``, ``model_dir``,
    ``detector``, ``det_threshold``, ``flip``, ``batch_size``...). ``address``: a running cluster
    (``"auto"``, ``"ray://host:10001"``); ``None`` joins the Ray instance of this process or starts a
    local one. An actor that dies is restarted and its batch retried (Ray Data's defaults for actor
    pools); an exception inside a batch fails the job (the worker turns unreadable inputs into error rows).
    """
    for name, value in (("num_actors", num_actors), ("units_per_shard", units_per_shard)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if float(cpus_per_actor) <= 0 or float(gpus_per_actor) < 0:
        raise ValueError(f"cpus_per_actor must be > 0 and gpus_per_actor >= 0, got {cpus_per_actor}, {gpus_per_actor}")
    started = time.perf_counter()
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output={folder} is an existing file; it names a folder for the Parquet shards")
    check_settings(settings or {})
    units = plan_units(inputs, frames_per_unit)
    done = completed_units(folder) if folder.is_dir() else {}
    todo = [unit for unit in units if unit.key not in done]
    summary: BatchSummary = {
        "units": len(units),
        "skipped": len(units) - len(todo),
        "processed": 0,
        "rows": 0,
        "errors": 0,
        "output": str(folder),
    }
    if todo:
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False)
        dataset = ray.data.from_items(
            [unit.as_row() for unit in todo], override_num_blocks=math.ceil(len(todo) / units_per_shard)
        )
        results = dataset.map_batches(
            PoseWorker,
            fn_constructor_kwargs={"settings": dict(settings or {}), "output": str(folder), "threads": threads},
            batch_size=int(units_per_shard),
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=int(num_actors)),
            num_cpus=float(cpus_per_actor),
            num_gpus=float(gpus_per_actor),
        )
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            summary["processed"] += len(batch["key"])
            summary["rows"] += int(batch["rows"].sum())
            summary["errors"] += int(batch["error"].sum())
    summary["seconds"] = time.perf_counter() - started
    return summary
