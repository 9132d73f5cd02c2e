"""Device names as users write them (PaddleX's ``gpu:0`` included) -> ``torch.device``."""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "usable_device"]


def resolve_device(device: str | torch.device | None, prefer_cuda: bool = True) -> torch.device:
    """``None`` -> CUDA when available and ``prefer_cuda``, else CPU; PaddleX's ``gpu`` / ``gpu:N`` ->
    ``cuda`` / ``cuda:N``; anything else as ``torch.device`` reads it."""
    if device is None:
        return torch.device("cuda" if prefer_cuda and torch.cuda.is_available() else "cpu")
    if isinstance(device, str) and device.lower().startswith("gpu"):
        device = "cuda" + device[3:]
    return torch.device(device)


def usable_device(device: str | torch.device | None, prefer_cuda: bool = True) -> torch.device:
    """:func:`resolve_device`, then a one-line ``ValueError`` when a CUDA device is asked for and torch sees none.

    The message says to pass ``device=cpu``: the CPU runs every backend, so changing the backend is
    not what helps.
    """
    try:
        resolved = resolve_device(device, prefer_cuda)
    except RuntimeError:  # torch.device's own error lists every device type torch knows
        raise ValueError(f"device={device} is not a device; use cpu, cuda, cuda:N or gpu:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device}: torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False); "
            "use device=cpu"
        )
    return resolved
