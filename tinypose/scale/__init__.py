"""Keypoints at scale: batch inference over many images and videos on Ray Data.

:func:`run_batch` (:mod:`.ray_data`) runs the pose model or the pipeline in a pool of Ray actors and
writes one Parquet row per person (:mod:`.shards`); a re-run skips what is written. :mod:`.units` plans
the work and :mod:`.worker` does it; neither needs Ray. A layer above the pipeline, below the CLIs. The
service on Ray Serve is :mod:`tinypose.serve.ray_app`. See docs/scale.md.
"""

from .ray_data import BatchSummary, run_batch
from .shards import completed_units, read_results, shard_schema
from .units import WorkUnit, expand_inputs, plan_units

__all__ = [
    "BatchSummary",
    "WorkUnit",
    "completed_units",
    "expand_inputs",
    "plan_units",
    "read_results",
    "run_batch",
    "shard_schema",
]
