"""Name maps between Paddle checkpoints and torch models built in Paddle's module order (PP-TinyPose).

Two Paddle namings exist. Training checkpoints (``.pdparams``) use *structured* names equal to
ours except for BatchNorm statistics (``_mean``/``_variance`` vs ``running_mean``/``running_var``).
Exported inference models use *static* names (``conv2d_K.w_0``, ``batch_norm2d_K.w_1``) numbered
per layer type in creation order; our modules are created in the same order, so the K-th
``nn.Conv2d`` / ``nn.BatchNorm2d`` of ``named_modules()`` is Paddle's ``conv2d_{K+offset}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from torch import nn

from .errors import WeightsError

__all__ = ["BN_EPS", "paddle_to_torch_name", "rename", "static_name_table", "torch_to_paddle_name"]

BN_EPS = 1e-5
"""Paddle's and torch's BatchNorm epsilon."""

_BN_RENAMES = {"_mean": "running_mean", "_variance": "running_var"}
_CONV_SUFFIX = {"w_0": "weight", "b_0": "bias"}
_BN_SUFFIX = {"w_0": "weight", "b_0": "bias", "w_1": "running_mean", "w_2": "running_var"}
_STATIC_NAME = re.compile(r"^(conv2d|batch_norm2d)_(\d+)\.([wb]_\d+)$")

T = TypeVar("T")


def paddle_to_torch_name(name: str) -> str:
    """``a.b.norm._mean`` -> ``a.b.norm.running_mean``; other names are unchanged."""
    prefix, _, last = name.rpartition(".")
    return f"{prefix}.{_BN_RENAMES[last]}" if last in _BN_RENAMES else name


def torch_to_paddle_name(name: str) -> str:
    """Inverse of :func:`paddle_to_torch_name`."""
    inverse = {v: k for k, v in _BN_RENAMES.items()}
    prefix, _, last = name.rpartition(".")
    return f"{prefix}.{inverse[last]}" if last in inverse else name


def static_name_table(model: nn.Module, static_names: list[str], source: str) -> dict[str, str]:
    """Map Paddle static parameter names to this model's state-dict names by creation order.

    ``static_names`` may start at any ``K`` (the counter is per process upstream) and may contain
    unrelated entries (raising on those is the caller's job via the strict load).
    """
    by_type: dict[str, dict[int, list[str]]] = {"conv2d": {}, "batch_norm2d": {}}
    for name in static_names:
        match = _STATIC_NAME.match(name)
        if match:
            by_type[match.group(1)].setdefault(int(match.group(2)), []).append(name)
    modules = {
        "conv2d": [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)],
        "batch_norm2d": [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)],
    }
    table: dict[str, str] = {}
    for kind, numbered in by_type.items():
        if not numbered:
            continue
        indices = sorted(numbered)
        if len(indices) != len(modules[kind]):
            raise WeightsError(
                f"{source}: found {len(indices)} {kind} layers, the model has {len(modules[kind])}; "
                f"this is not a {type(model).__name__} export"
            )
        suffixes = _CONV_SUFFIX if kind == "conv2d" else _BN_SUFFIX
        for module_name, index in zip(modules[kind], indices):
            for static in numbered[index]:
                suffix = static.rsplit(".", 1)[1]
                if suffix not in suffixes:
                    raise WeightsError(f"{source}: unexpected parameter {static!r}")
                table[static] = f"{module_name}.{suffixes[suffix]}"
    return table


def rename(state: Mapping[str, T], table: Mapping[str, str]) -> dict[str, T]:
    """Apply a name table, keeping names it does not mention (so a strict check reports them)."""
    return {table.get(name, name): value for name, value in state.items()}
