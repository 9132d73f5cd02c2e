"""One-Euro filter for keypoint tracks (Casiez, Roussel, Vogel, CHI 2012).

A first-order low-pass filter whose cutoff rises with speed: still joints are smoothed strongly
(less jitter), moving joints lightly (little lag). Speeds are measured in units of the person's
size (``scale``, e.g. the box height, per second), so one ``beta`` works for people near and far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["OneEuroConfig", "OneEuroFilter"]


@dataclass(frozen=True)
class OneEuroConfig:
    """Filter parameters; ``min_cutoff`` and ``d_cutoff`` in Hz, ``beta`` in 1 / (person heights / s).

    Defaults measured with ``benchmarks/bench_jitter.py`` on the real clips: about a third less
    frame-to-frame jitter on a still-standing person, about half a frame of lag on a moving wrist
    (12 and 30 fps). Lower ``min_cutoff`` smooths still joints more; higher ``beta`` follows fast
    limbs more closely.
    """

    min_cutoff: float = 1.0
    beta: float = 4.0
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError(
                f"One-Euro filter needs min_cutoff > 0, d_cutoff > 0 and beta >= 0, got {self.min_cutoff}, "
                f"{self.d_cutoff}, {self.beta}"
            )


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters an array signal (e.g. ``[17, 2]`` keypoints) sample by sample; element-wise cutoffs."""

    def __init__(self, config: OneEuroConfig = OneEuroConfig()) -> None:
        self.config = config
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time: float | None = None

    def reset(self) -> None:
        """Forget the past (the next sample passes through unchanged)."""
        self._value = self._speed = self._time = None

    def __call__(self, value: np.ndarray, timestamp: float, scale: float = 1.0) -> np.ndarray:
        """Filter ``value`` observed at ``timestamp`` seconds; ``scale`` divides speeds (e.g. the
        person's height in the units of ``value``). Returns the smoothed value (float64)."""
        value = np.asarray(value, dtype=np.float64)
        if self._value is None or self._speed is None or self._time is None or timestamp <= self._time:
            self._value, self._speed, self._time = value.copy(), np.zeros_like(value), timestamp
            return value.copy()
        dt = timestamp - self._time
        speed = (value - self._value) / dt
        alpha_d = _alpha(self.config.d_cutoff, dt)
        self._speed = alpha_d * speed + (1.0 - alpha_d) * self._speed
        cutoff = self.config.min_cutoff + self.config.beta * np.abs(self._speed) / max(scale, 1e-9)
        alpha = _alpha(cutoff, dt)
        self._value = alpha * value + (1.0 - alpha) * self._value
        self._time = timestamp
        return self._value.copy()
