"""What every weight reader returns (:class:`RawWeights`), and how a weights file is recognised.

A leaf of :mod:`tinypose.weights`: readers build :class:`RawWeights` from a file without knowing
which model it is for; a model family maps them onto its modules (:mod:`tinypose.weights.family`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import WeightsError
from .ir_graph import IRGraph

__all__ = ["FORMATS", "RawWeights", "detect_format", "sha256_of", "single_file"]

FORMATS = ("safetensors", "pdparams", "paddle_inference", "openvino", "lightning")


@dataclass
class RawWeights:
    """Tensors read from a file, before they are mapped onto a model.

    ``naming`` says how ``arrays`` are keyed: ``torch`` (our module names), ``structured`` (Paddle
    dygraph names), ``static`` (``conv2d_K.w_0``) or ``ir_graph`` (an OpenVINO IR: ``arrays`` is
    empty and ``graph`` holds the layers and their constants; each model family reads it its own
    way). ``folded_shifts`` holds, for BatchNorm-folded sources, the per-channel shift that follows
    each conv, keyed by the conv's weight name. ``model_name``, ``architecture`` and ``input_hw``
    are what the file declares about the model (``declared_in`` names the file that says so, e.g.
    ``inference.yml``); they are not checked against any registry here.
    """

    source: Path
    format: str
    arrays: dict[str, np.ndarray]
    naming: str
    folded_shifts: dict[str, np.ndarray] = field(default_factory=dict)
    model_name: str | None = None
    input_hw: tuple[int, int] | None = None
    architecture: str | None = None
    declared_in: Path | None = None
    graph: IRGraph | None = None


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
    if suffix == ".bin" and not path.with_suffix(".xml").is_file():
        raise WeightsError(
            f"{path}: a .bin is read only as the tensors of an OpenVINO IR, and there is no "
            f"{path.with_suffix('.xml').name} beside it; pass a weights file ({', '.join(FORMATS)})"
        )
    if suffix in (".xml", ".bin"):
        return "openvino"
    if suffix == ".ckpt":
        return "lightning"
    raise WeightsError(f"{path}: unknown weights format {suffix!r}; expected one of {', '.join(FORMATS)}")


def single_file(folder: Path, suffix: str) -> Path:
    """The one ``*suffix`` file in ``folder``; a :class:`WeightsError` when there are none or several."""
    files = sorted(folder.glob(f"*{suffix}"))
    if len(files) != 1:
        raise WeightsError(f"{folder}: expected exactly one {suffix} file, found {len(files)}")
    return files[0]
