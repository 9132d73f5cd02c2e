"""Load PP-TinyPose weights from any supported file into a torch state dict, checked strictly.

Formats are recognised from the path: ``.safetensors``, Paddle ``.pdparams``, Paddle/PaddleX
inference models (a folder, ``.pdmodel`` or ``.json`` with its ``.pdiparams``), and OpenVINO IR
(``.xml`` + ``.bin``, BatchNorm folded). Every reader returns arrays; this module renames them,
checks names and shapes against the model, and only then hands back tensors, so a bad file never
half-loads a model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import WeightsError
from .mapping import BN_EPS, paddle_to_torch_name, rename, static_name_table

__all__ = [
    "FORMATS",
    "RawWeights",
    "check_state_dict",
    "check_variant",
    "detect_format",
    "load_state_dict",
    "read_weights",
    "sha256_of",
    "shift_batchnorm_state",
    "single_file",
    "to_torch_state",
]

FORMATS = ("safetensors", "pdparams", "paddle_inference", "openvino", "lightning")


@dataclass
class RawWeights:
    """Arrays read from a file, before they are mapped onto the model.

    ``naming`` is ``torch`` (our names), ``structured`` (Paddle dygraph names) or ``static``
    (``conv2d_K.w_0``). ``folded_shifts`` holds, for BatchNorm-folded sources, the per-channel
    shift that follows each conv, keyed by the conv's weight name.
    """

    source: Path
    format: str
    arrays: dict[str, np.ndarray]
    naming: str
    folded_shifts: dict[str, np.ndarray] = field(default_factory=dict)
    model_name: str | None = None
    input_hw: tuple[int, int] | None = None


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        while block := file.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def detect_format(path: str | Path) -> str:
    """Name the weights format of ``path`` from its suffix or folder contents."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such file or folder")
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if names & {"inference.pdiparams", "model.pdiparams"} or any(n.endswith(".pdiparams") for n in names):
            return "paddle_inference"
        if any(n.endswith(".xml") for n in names):
            return "openvino"
        if any(n.endswith(".safetensors") for n in names):
            return "safetensors"
        if any(n.endswith(".pdparams") for n in names):
            return "pdparams"
        raise WeightsError(f"{path}: folder holds no weights file this project reads ({', '.join(FORMATS)})")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return "safetensors"
    if suffix == ".pdparams":
        return "pdparams"
    if suffix in (".pdmodel", ".pdiparams", ".json"):
        return "paddle_inference"
    if suffix in (".xml", ".bin"):
        return "openvino"
    if suffix == ".ckpt":
        return "lightning"
    raise WeightsError(f"{path}: unknown weights format {suffix!r}; expected one of {', '.join(FORMATS)}")


def read_weights(path: str | Path) -> RawWeights:
    """Read any supported weights file into :class:`RawWeights` (no model needed)."""
    path = Path(path)
    kind = detect_format(path)
    if kind == "pdparams":
        from .pdparams import read_pdparams

        if path.is_dir():
            path = single_file(path, ".pdparams")
        return RawWeights(path, kind, read_pdparams(path), "structured")
    if kind == "safetensors":
        from .safetensors_io import read_safetensors

        if path.is_dir():
            path = single_file(path, ".safetensors")
        return read_safetensors(path)
    if kind == "paddle_inference":
        from .paddle_inference import read_paddle_inference

        return read_paddle_inference(path)
    if kind == "lightning":
        from ..train.checkpoint import read_lightning_checkpoint

        return read_lightning_checkpoint(path)
    from .openvino_ir import read_openvino_ir

    return read_openvino_ir(path)


def single_file(folder: Path, suffix: str) -> Path:
    """The one ``*suffix`` file in ``folder``; a :class:`WeightsError` when there are none or several."""
    files = sorted(folder.glob(f"*{suffix}"))
    if len(files) != 1:
        raise WeightsError(f"{folder}: expected exactly one {suffix} file, found {len(files)}")
    return files[0]


def check_variant(raw: RawWeights, model_name: str) -> None:
    """Refuse weights that say (in metadata, input shape or file name) they are for another variant."""
    from ..models.tinypose import get_spec

    spec = get_spec(model_name)
    if raw.model_name and get_spec(raw.model_name).name != spec.name:
        raise WeightsError(f"{raw.source}: these weights are for {raw.model_name}, not {spec.name}")
    if raw.input_hw and tuple(raw.input_hw) != (spec.input_height, spec.input_width):
        h, w = raw.input_hw
        raise WeightsError(
            f"{raw.source}: the model in this file takes {h}x{w} inputs, {spec.name} takes "
            f"{spec.input_height}x{spec.input_width}"
        )
    other = [s for s in ("128x96", "256x192") if s in raw.source.as_posix() and s not in spec.name]
    if other and not raw.model_name and not raw.input_hw:
        raise WeightsError(f"{raw.source}: the file name says {other[0]} but the model is {spec.name}")


def to_torch_state(raw: RawWeights, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Map ``raw`` onto ``model``'s state-dict names, unfold folded BatchNorm, check strictly."""
    arrays = raw.arrays
    if raw.naming == "structured":
        arrays = {paddle_to_torch_name(k): v for k, v in arrays.items()}
    elif raw.naming == "static":
        table = static_name_table(model, list(arrays), str(raw.source))
        arrays = rename(arrays, table)
        if raw.folded_shifts:
            shifts = rename(raw.folded_shifts, table)
            arrays.update(_unfold_batchnorm(model, shifts, str(raw.source)))
    elif raw.naming != "torch":
        raise WeightsError(f"{raw.source}: unknown naming {raw.naming!r}")
    return check_state_dict(arrays, model, raw.source)


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


def _unfold_batchnorm(model: torch.nn.Module, shifts: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
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


def load_state_dict(path: str | Path, model_name: str) -> dict[str, torch.Tensor]:
    """Read ``path`` (any supported format) as a complete, checked state dict for ``model_name``."""
    from ..models.tinypose import TinyPose, get_spec

    raw = read_weights(path)
    check_variant(raw, model_name)
    return to_torch_state(raw, TinyPose(get_spec(model_name)))
