"""The one exception type of weight reading and conversion."""

from __future__ import annotations

__all__ = ["WeightsError"]


class WeightsError(ValueError):
    """A weights file that cannot be used; the message names the file and, where known, the tensor."""
