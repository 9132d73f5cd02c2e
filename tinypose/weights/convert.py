"""Convert any supported weights file of a model family to a tinypose ``.safetensors`` with provenance.

The output holds the torch state dict of the family's model (BatchNorm-folded sources already
unfolded to BN = identity + shift) and, in the safetensors header, ``model_name``, ``source`` (file
name), ``source_sha256`` (of the file holding the tensors), ``source_program_sha256`` (the
``.xml``/``.json``/``.pdmodel`` next to it, when there is one), ``source_format`` and
``tinypose_version``. Which family a file belongs to is decided above this layer
(:func:`tinypose.families.convert_weights`, ``convert_weights.py``).
"""

from __future__ import annotations

from pathlib import Path

from .._version import __version__
from .errors import WeightsError
from .family import WeightFamily, identify
from .loader import read_weights, state_for
from .paddle_inference import find_inference_files
from .raw import RawWeights, detect_format, sha256_of
from .safetensors_io import save_safetensors

__all__ = ["check_output", "convert", "provenance", "source_files"]


def source_files(raw: RawWeights) -> tuple[Path, Path | None]:
    """(file holding the tensors, program/graph file or ``None``) of what ``raw`` was read from."""
    if raw.format == "openvino":
        return raw.source.with_suffix(".bin"), raw.source.with_suffix(".xml")
    if raw.format == "paddle_inference":
        program, params = find_inference_files(raw.source)
        return params, program
    return raw.source, None


def check_output(output: Path, force: bool, sources: tuple[Path | None, Path | None] = (None, None)) -> None:
    """Refuse an ``output`` that is not ``.safetensors``, that exists (unless ``force``), or that is one of
    the ``sources`` files (even with ``force``: the source would be lost)."""
    if output.suffix != ".safetensors":
        raise WeightsError(f"{output}: the output must be a .safetensors file")
    if output.exists() and not force:
        raise WeightsError(f"{output}: already exists; pass --force (force=True) to overwrite it")
    if output.exists() and output.resolve() in {p.resolve() for p in sources if p is not None}:
        raise WeightsError(f"{output}: is the source itself; choose another output path")


def provenance(tensors_file: Path, program_file: Path | None, source_format: str) -> dict[str, str]:
    """The safetensors header fields that say where converted weights came from (module docstring)."""
    metadata = {
        "source": tensors_file.name,
        "source_sha256": sha256_of(tensors_file),
        "source_format": source_format,
        "tinypose_version": __version__,
    }
    if program_file is not None:
        metadata["source_program"] = program_file.name
        metadata["source_program_sha256"] = sha256_of(program_file)
    return metadata


def convert(
    source: str | Path, output: str | Path, family: WeightFamily, model_name: str | None = None, force: bool = False
) -> Path:
    """Read ``source`` (any format ``family`` reads), check it strictly and write ``output`` (safetensors).

    ``model_name`` names the variant when the file does not say (:func:`~tinypose.weights.family.identify`).
    Refuses to overwrite an existing ``output`` unless ``force``; the output is written to a temp
    file and renamed, so a failed conversion never leaves a partial file.
    """
    source, output = Path(source), Path(output)
    check_output(output, force)
    kind = detect_format(source)
    if kind not in family.formats:
        raise WeightsError(f"{source}: {family.title} weights are read from {', '.join(family.formats)}, not {kind}")
    raw = read_weights(source)
    files = source_files(raw)
    check_output(output, force, files)
    spec = identify(raw, family, model_name)
    state = state_for(raw, family, spec)
    return save_safetensors(state, output, spec.name, provenance(*files, raw.format))
