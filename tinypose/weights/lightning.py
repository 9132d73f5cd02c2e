"""Read tinypose's Lightning training checkpoints (``.ckpt``) as weights, never executing code from them.

A checkpoint is opened with ``torch.load(weights_only=True)``: only tensors and plain containers
are unpickled, never arbitrary objects or code. Reading the file format needs no Lightning. The
model weights are the ``model.*`` entries of ``state_dict``; the variant comes from the saved
hyper-parameters (``model_name``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from .errors import WeightsError
from .raw import RawWeights

__all__ = ["MODEL_PREFIX", "load_lightning_checkpoint", "read_lightning_checkpoint"]

MODEL_PREFIX = "model."
"""The LightningModule attribute holding the network (``TinyPoseLitModule.model``)."""


def load_lightning_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, loaded with ``weights_only=True`` (clear error if it is not a checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint does not exist")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols and asks to "file an issue"
            warnings.simplefilter("ignore", UserWarning)
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (unpickling errors come in many types)
        # torch's own message is not passed on: it advises loading the file with code execution allowed
        if "unsupported global" in str(error).lower():
            raise WeightsError(
                f"{path}: refused: the checkpoint holds pickled Python objects besides tensors and plain "
                "containers, and loading those could run code; only tinypose training checkpoints are read"
            ) from None
        raise WeightsError(f"{path}: not a PyTorch checkpoint file (torch.load cannot read it)") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise WeightsError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    return checkpoint


def read_lightning_checkpoint(path: str | Path, checkpoint: dict[str, Any] | None = None) -> RawWeights:
    """The model weights of a tinypose training checkpoint as torch-named :class:`RawWeights`."""
    path = Path(path)
    checkpoint = checkpoint if checkpoint is not None else load_lightning_checkpoint(path)
    arrays = {
        name[len(MODEL_PREFIX) :]: value.detach().cpu().float().numpy()
        for name, value in checkpoint["state_dict"].items()
        if name.startswith(MODEL_PREFIX) and isinstance(value, torch.Tensor) and value.is_floating_point()
    }
    if not arrays:
        raise WeightsError(f"{path}: the checkpoint holds no 'model.*' weights (not a tinypose training checkpoint?)")
    hyper = checkpoint.get("hyper_parameters") or {}
    model_name = hyper.get("model_name") if isinstance(hyper, dict) else None
    return RawWeights(path, "lightning", arrays, "torch", model_name=model_name)
