"""safetensors output and input, with provenance metadata (model name, source, its sha256)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..files import atomic_write
from .errors import WeightsError
from .raw import RawWeights

__all__ = ["read_safetensors", "save_safetensors"]


def save_safetensors(
    state: dict[str, torch.Tensor], path: str | Path, model_name: str, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + rename) with ``model_name`` in the header."""
    path = Path(path)
    header = {"format": "pt", "model_name": model_name, **(metadata or {})}
    with atomic_write(path) as temporary:
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(temporary), metadata=header)
    return path


def read_safetensors(path: str | Path) -> RawWeights:
    """Read a safetensors file written by tinypose (or any torch-named state dict)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="np") as file:
            metadata = file.metadata() or {}
            arrays = {name: np.asarray(file.get_tensor(name)) for name in file.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as error:
        raise WeightsError(f"{path}: not a readable safetensors file (truncated or corrupt?): {error}") from None
    return RawWeights(path, "safetensors", arrays, "torch", model_name=metadata.get("model_name"))
