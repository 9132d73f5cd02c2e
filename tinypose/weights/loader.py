"""The one weights loader: read any supported file, map it onto a model family, check it strictly.

Formats are recognised from the path (:func:`~tinypose.weights.raw.detect_format`):
``.safetensors``, Paddle ``.pdparams``, Paddle/PaddleX inference models (a folder, ``.pdmodel`` or
``.json`` with its ``.pdiparams``), OpenVINO IR (``.xml`` + ``.bin``, BatchNorm folded) and tinypose
Lightning checkpoints (``.ckpt``). Every reader returns :class:`~tinypose.weights.raw.RawWeights`
without knowing the model; :func:`load_weights` checks what the file declares, lets the model
family map names (:class:`~tinypose.weights.family.WeightFamily`), checks names, shapes and values
against the model, and only then hands back tensors, so a bad file never half-loads a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import WeightsError
from .family import WeightFamily, check_declared
from .lightning import read_lightning_checkpoint
from .mapping import BN_EPS, paddle_to_torch_name, rename, static_name_table
from .openvino_ir import paddle_static_arrays, read_openvino_graph
from .paddle_inference import read_paddle_inference
from .pdparams import read_pdparams
from .raw import FORMATS, RawWeights, detect_format, sha256_of, single_file
from .safetensors_io import read_safetensors

__all__ = [
    "FORMATS",
    "RawWeights",
    "check_state_dict",
    "detect_format",
    "load_weights",
    "paddle_arrays",
    "read_weights",
    "sha256_of",
    "shift_batchnorm_state",
    "single_file",
    "state_for",
    "to_torch_state",
    "unfold_batchnorm",
]


def read_weights(path: str | Path) -> RawWeights:
    """Read any supported weights file into :class:`RawWeights` (no model needed)."""
    path = Path(path)
    kind = detect_format(path)
    if kind == "pdparams":
        if path.is_dir():
            path = single_file(path, ".pdparams")
        return RawWeights(path, kind, read_pdparams(path), "structured")
    if kind == "safetensors":
        return read_safetensors(single_file(path, ".safetensors") if path.is_dir() else path)
    if kind == "paddle_inference":
        return read_paddle_inference(path)
    if kind == "lightning":
        return read_lightning_checkpoint(path)
    return read_openvino_graph(path)


def paddle_arrays(raw: RawWeights, model: torch.nn.Module, spec: object = None) -> dict[str, np.ndarray]:
    """``raw`` under ``model``'s state-dict names by Paddle's conventions: structured names differ only
    in BatchNorm statistics, static names follow module creation order, BatchNorm folded into convs
    (OpenVINO IR) comes back as ``x + shift``. The name mapping of models built in Paddle's module order."""
    arrays = raw.arrays
    naming = raw.naming
    shifts = raw.folded_shifts
    if naming == "ir_graph":
        if raw.graph is None:
            raise WeightsError(f"{raw.source}: an IR without its graph")
        arrays, shifts = paddle_static_arrays(raw.graph)
        naming = "static"
    if naming == "structured":
        arrays = {paddle_to_torch_name(k): v for k, v in arrays.items()}
    elif naming == "static":
        table = static_name_table(model, list(arrays), str(raw.source))
        arrays = rename(arrays, table)
        if shifts:
            arrays.update(unfold_batchnorm(model, rename(shifts, table), str(raw.source)))
    elif naming != "torch":
        raise WeightsError(f"{raw.source}: unknown naming {naming!r}")
    return arrays


def to_torch_state(raw: RawWeights, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Map ``raw`` onto ``model`` with :func:`paddle_arrays`, then check strictly (:func:`check_state_dict`)."""
    return check_state_dict(paddle_arrays(raw, model), model, raw.source)


def check_state_dict(
    arrays: dict[str, np.ndarray], model: torch.nn.Module, source: str | Path
) -> dict[str, torch.Tensor]:
    """``arrays`` as a complete float32 state dict for ``model``, or a :class:`WeightsError` naming ``source``.

    Strict: every tensor of ``model`` present, nothing extra, the same shapes, floating point and
    finite values; ``num_batches_tracked`` counters are zero. Shared by the pose and detector loaders
    so that a bad file is rejected the same way before anything is loaded.
    """
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in expected if k not in arrays]
    extra = [k for k in arrays if k not in expected and not k.endswith("num_batches_tracked")]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected (first: {extra[0]})")
        raise WeightsError(f"{source}: tensors do not match {type(model).__name__}: {'; '.join(parts)}")
    state: dict[str, torch.Tensor] = {}
    for name, reference in expected.items():
        array = np.asarray(arrays[name])
        if tuple(array.shape) != tuple(reference.shape):
            raise WeightsError(
                f"{source}: tensor {name} has shape {tuple(array.shape)}, the model expects {tuple(reference.shape)}"
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise WeightsError(f"{source}: tensor {name} has dtype {array.dtype}, expected floating point")
        tensor = torch.from_numpy(np.array(array, dtype=np.float32))  # a copy; keeps 0-d buffers 0-d
        if not torch.isfinite(tensor).all():
            raise WeightsError(f"{source}: tensor {name} contains NaN or infinity")
        state[name] = tensor
    for name, value in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros_like(value)
    return state


def shift_batchnorm_state(norm_name: str, shift: np.ndarray) -> dict[str, np.ndarray]:
    """State of the BatchNorm ``norm_name`` that computes ``x + shift``, for sources with BatchNorm
    folded into the preceding conv (weight 1, bias ``shift``, mean 0, variance ``1 - eps``)."""
    channels = shift.shape[0]
    return {
        f"{norm_name}.weight": np.ones(channels, np.float32),
        f"{norm_name}.bias": shift,
        f"{norm_name}.running_mean": np.zeros(channels, np.float32),
        f"{norm_name}.running_var": np.full(channels, 1.0 - BN_EPS, np.float32),
    }


def unfold_batchnorm(model: torch.nn.Module, shifts: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """BatchNorm parameters that make each BN compute ``x + shift`` (weights folded into convs)."""
    modules = dict(model.named_modules())
    convs = [n for n, m in modules.items() if isinstance(m, torch.nn.Conv2d)]
    norms = [n for n, m in modules.items() if isinstance(m, torch.nn.BatchNorm2d)]
    out: dict[str, np.ndarray] = {}
    for conv, norm in zip(convs, norms):
        key = f"{conv}.weight"
        if key not in shifts:
            raise WeightsError(f"{source}: no BatchNorm shift found for {key}")
        shift = np.asarray(shifts[key], dtype=np.float32).reshape(-1)
        channels = modules[norm].num_features
        if shift.shape != (channels,):
            raise WeightsError(f"{source}: shift for {key} has {shift.size} values, expected {channels}")
        out.update(shift_batchnorm_state(norm, shift))
    return out


def load_weights(path: str | Path, family: WeightFamily, model_name: str) -> dict[str, torch.Tensor]:
    """Read ``path`` (any format ``family`` reads) as a complete, checked state dict for ``model_name``."""
    spec = family.spec(model_name)
    path = Path(path)
    kind = detect_format(path)
    if kind not in family.formats:
        raise WeightsError(f"{path}: {family.title} weights are read from {', '.join(family.formats)}, not {kind}")
    return state_for(read_weights(path), family, spec)


def state_for(raw: RawWeights, family: WeightFamily, spec: Any) -> dict[str, torch.Tensor]:
    """``raw`` as the checked state dict of ``spec``: declarations checked, names mapped by the family, strict check."""
    check_declared(raw, family, spec)
    model = family.build(spec)
    return check_state_dict(family.filter_fn(raw, model, spec), model, raw.source)
