"""Export the model weights of a tinypose Lightning checkpoint to safetensors.

Reading the checkpoint (``torch.load(weights_only=True)``, never executing code from it) is the
weights layer's job (:mod:`tinypose.weights.lightning`); this module adds the training-side
provenance (epoch, global step) and writes the checked PP-TinyPose state dict.
"""

from __future__ import annotations

from pathlib import Path

from ..models.tinypose import POSE_WEIGHTS
from ..weights.errors import WeightsError
from ..weights.lightning import load_lightning_checkpoint, read_lightning_checkpoint
from ..weights.loader import state_for
from ..weights.safetensors_io import save_safetensors

__all__ = ["export_checkpoint", "load_lightning_checkpoint", "read_lightning_checkpoint"]


def export_checkpoint(
    checkpoint_path: str | Path, output_path: str | Path, extra: dict[str, str] | None = None
) -> Path:
    """Write the model weights of a training checkpoint to ``output_path`` (safetensors, checked strictly)."""
    checkpoint = load_lightning_checkpoint(checkpoint_path)
    raw = read_lightning_checkpoint(checkpoint_path, checkpoint)
    if raw.model_name is None:
        raise WeightsError(f"{checkpoint_path}: no model_name in the checkpoint's hyper-parameters")
    spec = POSE_WEIGHTS.spec(raw.model_name)
    state = state_for(raw, POSE_WEIGHTS, spec)
    metadata = {
        "source": Path(checkpoint_path).name,
        "epoch": str(checkpoint.get("epoch")),
        "global_step": str(checkpoint.get("global_step")),
        **(extra or {}),
    }
    return save_safetensors(state, output_path, spec.name, metadata)
