"""The model families whose weights tinypose reads: PP-TinyPose pose models and PP-PicoDet detectors.

The weights layer (:mod:`tinypose.weights`) reads, checks and converts weights for one
:class:`~tinypose.weights.WeightFamily` at a time; this module, above both families, decides which
family a file or a model name belongs to, for ``convert_weights.py``.
"""

from __future__ import annotations

from pathlib import Path

from .detect.picodet import DETECTOR_WEIGHTS
from .models.tinypose import POSE_WEIGHTS
from .weights import WeightFamily, WeightsError, convert

__all__ = ["FAMILIES", "convert_weights", "family_for", "model_names"]

FAMILIES: tuple[WeightFamily, ...] = (POSE_WEIGHTS, DETECTOR_WEIGHTS)


def model_names() -> list[str]:
    """Every registered model name of every family."""
    return [name for family in FAMILIES for name in sorted(family.specs)]


def family_for(source: str | Path, model_name: str | None = None) -> WeightFamily:
    """The family of ``model_name`` when given, else of ``source``: a path naming ``picodet`` is a
    detector, anything else a pose model."""
    if model_name is not None:
        for family in FAMILIES:
            try:
                family.lookup(model_name)
            except ValueError:
                continue
            return family
        raise WeightsError(f"unknown model {model_name!r}; choose one of {', '.join(model_names())}")
    return DETECTOR_WEIGHTS if "picodet" in Path(source).as_posix().lower() else POSE_WEIGHTS


def convert_weights(source: str | Path, output: str | Path, model_name: str | None = None, force: bool = False) -> Path:
    """Convert ``source`` (any supported format, pose model or detector) to ``output`` (safetensors).

    ``model_name`` picks the family and variant when the file does not say (a bare ``.pdparams``);
    see :func:`tinypose.weights.convert`.
    """
    return convert(source, output, family_for(source, model_name), model_name=model_name, force=force)
