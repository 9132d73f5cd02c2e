"""Device names as users write them (PaddleX's ``gpu:0`` included) -> ``torch.device``."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None, prefer_cuda: bool = True) -> torch.device:
    """``None`` -> CUDA when available and ``prefer_cuda``, else CPU; PaddleX's ``gpu`` / ``gpu:N`` ->
    ``cuda`` / ``cuda:N``; anything else as ``torch.device`` reads it."""
    if device is None:
        return torch.device("cuda" if prefer_cuda and torch.cuda.is_available() else "cpu")
    if isinstance(device, str) and device.lower().startswith("gpu"):
        device = "cuda" + device[3:]
    return torch.device(device)
