"""The output of a batch job: Parquet shards, one row per person, each shard naming the units it holds.

A shard is written whole or not at all (a temporary file renamed into place), and its schema metadata
lists the keys of the units it completed, people or not, errors included. The keys of every shard in
the folder are what a re-run skips, so an interrupted job resumes where it stopped. A shard's name is a
hash of its unit keys: a batch retried after its actor died rewrites the same file instead of adding
a second copy. pyarrow comes with the ``ray`` extra (``pip install -e ".[ray]"``).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["SHARD_GLOB", "UNITS_KEY", "completed_units", "read_results", "shard_schema", "write_shard"]

UNITS_KEY = b"tinypose.units"
"""Schema metadata key of a shard: the JSON list of the unit keys it completed."""
SHARD_GLOB = "part-*.parquet"


def _pyarrow() -> Any:
    try:
        import pyarrow  # optional: the ``ray`` extra brings it
        import pyarrow.parquet
    except ImportError as error:
        raise ImportError(f'batch jobs write Parquet with pyarrow: pip install -e ".[ray]" ({error})') from None
    return pyarrow


def shard_schema() -> Any:
    """The columns of the output: ``input_path``; ``frame_index`` (null for a picture); ``person_index``;
    ``box`` x1, y1, x2, y2 and ``det_score`` (null without a detector: the whole image is the person);
    ``keypoints`` 17 x (x, y, score); ``kpt_score``; ``error`` (set on an input's error row, the rest null)."""
    pa = _pyarrow()
    return pa.schema(
        [
            ("input_path", pa.string()),
            ("frame_index", pa.int64()),
            ("person_index", pa.int32()),
            ("box", pa.list_(pa.float64(), 4)),
            ("det_score", pa.float64()),
            ("keypoints", pa.list_(pa.list_(pa.float32(), 3))),
            ("kpt_score", pa.float64()),
            ("error", pa.string()),
        ]
    )


def write_shard(output: str | os.PathLike, unit_keys: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` as one shard recording ``unit_keys`` as done; atomic (rename of a finished file)."""
    pa = _pyarrow()
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1("\n".join(unit_keys).encode("utf-8")).hexdigest()[:20]
    path = folder / f"part-{digest}.parquet"
    schema = shard_schema().with_metadata({UNITS_KEY: json.dumps(list(unit_keys))})
    table = pa.Table.from_pylist(list(rows), schema=schema)
    temporary = folder / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        pa.parquet.write_table(table, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def completed_units(output: str | os.PathLike) -> dict[str, Path]:
    """Unit key -> the shard holding it, over every shard in ``output`` (empty when there is none)."""
    pa = _pyarrow()
    done: dict[str, Path] = {}
    for shard in sorted(Path(output).glob(SHARD_GLOB)):
        metadata = pa.parquet.read_schema(shard).metadata or {}
        for key in json.loads(metadata.get(UNITS_KEY, b"[]")):
            done.setdefault(key, shard)
    return done


def read_results(output: str | os.PathLike) -> Any:
    """Every row of every shard in ``output`` as one ``pyarrow.Table`` (:func:`shard_schema`)."""
    pa = _pyarrow()
    shards = sorted(Path(output).glob(SHARD_GLOB))
    if not shards:
        return shard_schema().empty_table()
    return pa.concat_tables([pa.parquet.read_table(shard, schema=shard_schema()) for shard in shards])
