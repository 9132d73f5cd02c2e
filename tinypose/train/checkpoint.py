"""Read Lightning checkpoints safely and export their model weights to safetensors.

A checkpoint is opened with ``torch.load(weights_only=True)``: only tensors and plain containers
are unpickled, never arbitrary objects or code. The TinyPose weights are the ``model.*`` entries
of ``state_dict``; the variant comes from the saved hyper-parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..weights.errors import WeightsError

if TYPE_CHECKING:
    from ..weights.loader import RawWeights

__all__ = ["export_checkpoint", "load_lightning_checkpoint", "read_lightning_checkpoint"]

PREFIX = "model."


def load_lightning_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, loaded with ``weights_only=True`` (clear error if it is not a checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (unpickling errors come in many types)
        raise WeightsError(
            f"{path}: not a loadable Lightning checkpoint with weights_only=True ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise WeightsError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    return checkpoint


def read_lightning_checkpoint(path: str | Path, checkpoint: dict[str, Any] | None = None) -> RawWeights:
    """TinyPose weights of a tinypose training checkpoint as :class:`~tinypose.weights.RawWeights`."""
    from ..weights.loader import RawWeights

    path = Path(path)
    checkpoint = checkpoint if checkpoint is not None else load_lightning_checkpoint(path)
    arrays = {
        name[len(PREFIX) :]: value.detach().cpu().float().numpy()
        for name, value in checkpoint["state_dict"].items()
        if name.startswith(PREFIX) and isinstance(value, torch.Tensor) and value.is_floating_point()
    }
    if not arrays:
        raise WeightsError(f"{path}: the checkpoint holds no 'model.*' weights (not a tinypose training checkpoint?)")
    hyper = checkpoint.get("hyper_parameters") or {}
    model_name = hyper.get("model_name") if isinstance(hyper, dict) else None
    return RawWeights(path, "lightning", arrays, "torch", model_name=model_name)


def export_checkpoint(
    checkpoint_path: str | Path, output_path: str | Path, extra: dict[str, str] | None = None
) -> Path:
    """Write the model weights of a training checkpoint to ``output_path`` (safetensors, checked strictly)."""
    from ..models.tinypose import TinyPose, get_spec
    from ..weights.loader import to_torch_state
    from ..weights.safetensors_io import save_safetensors

    checkpoint = load_lightning_checkpoint(checkpoint_path)
    raw = read_lightning_checkpoint(checkpoint_path, checkpoint)
    if raw.model_name is None:
        raise WeightsError(f"{checkpoint_path}: no model_name in the checkpoint's hyper-parameters")
    spec = get_spec(raw.model_name)
    state = to_torch_state(raw, TinyPose(spec))
    metadata = {
        "source": Path(checkpoint_path).name,
        "epoch": str(checkpoint.get("epoch")),
        "global_step": str(checkpoint.get("global_step")),
        **(extra or {}),
    }
    return save_safetensors(state, output_path, spec.name, metadata)
