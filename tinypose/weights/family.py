"""What a model family hands the shared weights loader, and the checks every family gets.

The loader (:func:`tinypose.weights.loader.load_weights`) knows file formats, not models. A model
family (PP-TinyPose pose models, PP-PicoDet detectors) describes itself with a
:class:`WeightFamily`: its registry, how to build an untrained model, and ``filter_fn``, which maps
the :class:`~tinypose.weights.raw.RawWeights` of a file onto that model's state-dict names (timm's
``build_model_with_cfg(..., pretrained_filter_fn=...)`` pattern). The checks of what a file
declares (model name, architecture, input size, the size in its file name) are the same for every
family and live here; every size list they use is read from the family's registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch import nn

from ..vocab import WeightSource
from .errors import WeightsError
from .raw import FORMATS, RawWeights

__all__ = ["ENV_WEIGHTS", "PretrainedSpec", "WeightFamily", "check_declared", "identify", "size_named_by"]

ENV_WEIGHTS = "TINYPOSE_WEIGHTS"
"""Environment variable naming an explicit weights file for the pose model (step 1 of the default-weights search)."""


class PretrainedSpec(Protocol):
    """What the weights layer reads from a registry entry (``ModelSpec``, ``DetectorSpec``)."""

    @property
    def name(self) -> str: ...

    @property
    def weights(self) -> tuple[WeightSource, ...]: ...

    @property
    def input_hw(self) -> tuple[int, int]:
        """(height, width) of the network input."""
        ...

    @property
    def size_tag(self) -> str:
        """How release file names spell this variant's size (``128x96``, ``320``)."""
        ...


@dataclass(frozen=True)
class WeightFamily:
    """One model family as the weights layer sees it (see the module docstring)."""

    title: str
    """Family name for messages (``PP-TinyPose``)."""
    specs: Mapping[str, Any]
    """The family's registry: name -> spec (each a :class:`PretrainedSpec`)."""
    lookup: Callable[[str], Any]
    """Registry lookup accepting the family's aliases; raises ``ValueError`` for an unknown name."""
    build: Callable[[Any], nn.Module]
    """An untrained model of a spec (its state-dict names and shapes are what weights must match)."""
    filter_fn: Callable[[RawWeights, nn.Module, Any], dict[str, np.ndarray]]
    """``(raw, model, spec) -> arrays`` keyed by the model's state-dict names (before the strict check)."""
    check_fn: Callable[[RawWeights], None] | None = None
    """The family's own check of a file, run before the checks of what it declares (e.g. that an IR
    graph has the structure this family's mapping reads), so a file of another family gets the
    family's own error."""
    formats: tuple[str, ...] = FORMATS
    """Weight formats this family can be read from."""
    architecture: str | None = None
    """What a Paddle inference config's ``arch`` says for this family (``HRNet``); another is refused."""
    env_var: str = ENV_WEIGHTS
    """Environment variable naming an explicit weights file for :func:`~tinypose.weights.hub.resolve_pretrained`."""
    local_names: Callable[[Any], list[str]] = lambda spec: []
    """Extra relative paths looked for in ``$TINYPOSE_WEIGHTS_DIR`` (upstream file layouts), best first."""

    def spec(self, name: str) -> Any:
        """The registered spec called ``name``; a :class:`WeightsError` for a name of no spec of this family."""
        try:
            return self.lookup(name)
        except ValueError as error:
            raise WeightsError(str(error)) from None


def size_named_by(family: WeightFamily, path: Path) -> list[Any]:
    """Specs whose size tag appears in ``path`` as a whole ``_``/``/``/``.``-separated word."""
    text = path.as_posix()
    return [
        spec for spec in family.specs.values() if re.search(rf"(?:^|[_/.]){re.escape(spec.size_tag)}(?:$|[_/.])", text)
    ]


def check_declared(raw: RawWeights, family: WeightFamily, spec: Any) -> None:
    """Refuse weights that say (metadata, config, input shape or file name) they are for another model."""
    if family.check_fn is not None:
        family.check_fn(raw)
    where = raw.declared_in or raw.source
    if raw.architecture and family.architecture and raw.architecture != family.architecture:
        raise WeightsError(
            f"{where}: this export is a {raw.architecture} model, not {family.title} ({family.architecture})"
        )
    if raw.model_name:
        try:
            declared = family.lookup(raw.model_name)
        except ValueError:
            raise WeightsError(f"{where}: this export is a {raw.model_name} model, not {family.title}") from None
        if raw.input_hw and tuple(raw.input_hw) != declared.input_hw:
            h, w = raw.input_hw
            raise WeightsError(f"{where}: says {declared.name} but the program takes {h}x{w} inputs")
        if declared.name != spec.name:
            raise WeightsError(f"{raw.source}: these weights are for {declared.name}, not {spec.name}")
    if raw.input_hw and tuple(raw.input_hw) != spec.input_hw:
        (h, w), (height, width) = raw.input_hw, spec.input_hw
        raise WeightsError(
            f"{raw.source}: the model in this file takes {h}x{w} inputs, {spec.name} takes {height}x{width}"
        )
    if not raw.model_name and not raw.input_hw:
        other = [s for s in size_named_by(family, raw.source) if s.name != spec.name]
        if other:
            raise WeightsError(f"{raw.source}: the file name says {other[0].size_tag} but the model is {spec.name}")


def identify(raw: RawWeights, family: WeightFamily, model_name: str | None = None) -> Any:
    """The spec these weights are for: named by the caller, declared by the file, or read from its
    input size or file name. Variants with identical tensors need the name when the file says nothing."""
    if model_name is not None:
        return family.spec(model_name)
    if raw.model_name:
        return family.spec(raw.model_name)
    if raw.input_hw:
        for spec in family.specs.values():
            if tuple(raw.input_hw) == spec.input_hw:
                return spec
        h, w = raw.input_hw
        raise WeightsError(f"{raw.source}: no {family.title} variant takes {h}x{w} inputs")
    hints = size_named_by(family, raw.source)
    if len(hints) == 1:
        return hints[0]
    names = sorted(family.specs)
    tags = " and ".join(family.specs[name].size_tag for name in names)
    raise WeightsError(
        f"{raw.source}: cannot tell which model these weights are for ({tags} have the same tensors); "
        f"name it: --model {' or --model '.join(names)}"
    )
