"""On-disk cache of exported models (ONNX files, TensorRT engines), keyed so that a change rebuilds.

A cache entry is ``<folder>/<model>-<kind>-<key[:20]>.<ext>`` plus a ``.json`` sidecar with the
fields of the key, for people who look. The key is a sha256 over everything the artifact depends
on: the weights (hash of the state dict), the model name, the versions of tinypose, torch and the
runtime, the opset, the precision, and anything the caller adds (TensorRT adds the GPU and the
optimization profile). Writes go to a temp file first, so a crash never leaves a half file that a
later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_write

__all__ = ["ENV_EXPORT_CACHE", "cache_key", "cached_artifact", "export_cache_dir", "state_dict_sha256"]

ENV_EXPORT_CACHE = "TINYPOSE_EXPORT_CACHE"
CACHE_FORMAT = 1
"""Bump when the layout of cached files changes."""


def export_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir`` if given, else ``$TINYPOSE_EXPORT_CACHE``, else ``<tinypose cache>/exports``
    (``$TINYPOSE_HOME`` or ``~/.cache/tinypose``, see :func:`tinypose.weights.hub.cache_dir`)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(ENV_EXPORT_CACHE):
        return Path(os.environ[ENV_EXPORT_CACHE]).expanduser()
    from ..weights.hub import cache_dir as tinypose_cache_dir

    return tinypose_cache_dir() / "exports"


def state_dict_sha256(model: torch.nn.Module) -> str:
    """sha256 over names, dtypes, shapes and bytes of every tensor of ``model.state_dict()``."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_key(**fields: Any) -> str:
    """Stable hex sha256 of JSON-serialisable ``fields`` (order-independent)."""
    payload = json.dumps({"cache_format": CACHE_FORMAT, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def cached_artifact(
    folder: Path, stem: str, suffix: str, fields: dict[str, Any], build: Callable[[Path], None]
) -> Path:
    """Path of the artifact for ``fields``; calls ``build(tmp_path)`` only when it is not cached yet.

    ``build`` must write a complete file at the path it is given; it is renamed into place after.
    """
    key = cache_key(**fields)
    path = folder / f"{stem}-{key[:20]}{suffix}"
    if path.is_file() and path.stat().st_size > 0:
        return path
    with atomic_write(path) as temporary:
        build(temporary)
    sidecar = {"key": key, "cache_format": CACHE_FORMAT, **fields}
    path.with_suffix(path.suffix + ".json").write_text(json.dumps(sidecar, indent=2, sort_keys=True, default=str))
    return path
