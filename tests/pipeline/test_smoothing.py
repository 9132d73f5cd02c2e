"""One-Euro filter: less jitter on a still signal, bounded lag on a moving one."""

from __future__ import annotations

import numpy as np
import pytest

from tinypose.pipeline.smoothing import OneEuroConfig, OneEuroFilter


def _run(signal: np.ndarray, config: OneEuroConfig, fps: float = 30.0, scale: float = 1.0) -> np.ndarray:
    smoother = OneEuroFilter(config)
    return np.stack([smoother(value, i / fps, scale) for i, value in enumerate(signal)])


def test_first_sample_passes_through_and_reset_forgets() -> None:
    smoother = OneEuroFilter()
    assert smoother(np.array([3.0, 4.0]), 0.0).tolist() == [3.0, 4.0]
    smoother(np.array([5.0, 6.0]), 1 / 30)
    smoother.reset()
    assert smoother(np.array([9.0, 9.0]), 2 / 30).tolist() == [9.0, 9.0]


def test_still_noise_is_reduced() -> None:
    rng = np.random.default_rng(0)
    noisy = 100.0 + rng.normal(0, 2.0, (300, 17, 2))
    smoothed = _run(noisy, OneEuroConfig(min_cutoff=1.0, beta=0.0), scale=200.0)
    raw_jitter = np.abs(np.diff(noisy, axis=0)).mean()
    assert np.abs(np.diff(smoothed, axis=0)).mean() < 0.3 * raw_jitter


def test_beta_cuts_lag_on_fast_motion() -> None:
    t = np.arange(120) / 30.0
    moving = (400.0 * t)[:, None] * np.ones((1, 2))  # 2 person-heights per second for a 200 px person
    slow = _run(moving, OneEuroConfig(min_cutoff=1.0, beta=0.0), scale=200.0)
    fast = _run(moving, OneEuroConfig(min_cutoff=1.0, beta=1.0), scale=200.0)
    lag_slow = (moving - slow)[60:].mean() / (400.0 / 30)
    lag_fast = (moving - fast)[60:].mean() / (400.0 / 30)
    assert lag_fast < 0.5 * lag_slow
    assert lag_fast < 2.0  # frames


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="min_cutoff > 0"):
        OneEuroConfig(min_cutoff=0)
