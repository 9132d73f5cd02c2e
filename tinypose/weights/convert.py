"""Convert any supported weights file to a tinypose ``.safetensors`` with provenance metadata.

The output holds the torch state dict of :class:`~tinypose.models.TinyPose` (BatchNorm-folded sources
already unfolded to BN = identity + shift) and, in the safetensors header, ``model_name``,
``source`` (file name), ``source_sha256`` (of the file holding the tensors), ``source_program_sha256``
(the ``.xml``/``.json``/``.pdmodel`` next to it, when there is one), ``source_format`` and
``tinypose_version``.
"""

from __future__ import annotations

from pathlib import Path

from .._version import __version__
from .errors import WeightsError
from .loader import RawWeights, check_variant, read_weights, sha256_of, to_torch_state
from .safetensors_io import save_safetensors

__all__ = ["check_output", "convert", "infer_model_name", "provenance", "source_files"]


def source_files(raw: RawWeights) -> tuple[Path, Path | None]:
    """(file holding the tensors, program/graph file or ``None``) of what ``raw`` was read from."""
    if raw.format == "openvino":
        return raw.source.with_suffix(".bin"), raw.source
    if raw.format == "paddle_inference":
        from .paddle_inference import find_inference_files

        program, params = find_inference_files(raw.source)
        return params, program
    return raw.source, None


def infer_model_name(raw: RawWeights, model_name: str | None = None) -> str:
    """The registry name these weights are for: given, declared by the file, or from its input size
    or file name. Both variants have identical tensors, so a bare checkpoint needs ``model_name``."""
    from ..models.tinypose import MODEL_SPECS, get_spec

    if model_name is not None:
        try:
            return get_spec(model_name).name
        except ValueError as error:
            raise WeightsError(str(error)) from None
    if raw.model_name:
        return get_spec(raw.model_name).name
    if raw.input_hw:
        for spec in MODEL_SPECS.values():
            if tuple(raw.input_hw) == (spec.input_height, spec.input_width):
                return spec.name
        h, w = raw.input_hw
        raise WeightsError(f"{raw.source}: no PP-TinyPose variant takes {h}x{w} inputs")
    hints = {spec.name for spec in MODEL_SPECS.values() if spec.name.split("_", 1)[1] in raw.source.as_posix()}
    if len(hints) == 1:
        return hints.pop()
    raise WeightsError(
        f"{raw.source}: cannot tell which model these weights are for (128x96 and 256x192 have the same "
        f"tensors); name it: --model {' or --model '.join(sorted(MODEL_SPECS))}"
    )


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


def convert(source: str | Path, output: str | Path, model_name: str | None = None, force: bool = False) -> Path:
    """Read ``source`` (any supported format), check it strictly and write ``output`` (safetensors).

    Refuses to overwrite an existing ``output`` unless ``force``; the output is written to a temp
    file and renamed, so a failed conversion never leaves a partial file.
    """
    from ..detect.weights import convert_detector, detector_name_for
    from ..models.tinypose import TinyPose, get_spec

    detector = detector_name_for(source, model_name)
    if detector is not None:
        return convert_detector(source, output, detector, force)
    source, output = Path(source), Path(output)
    check_output(output, force)
    raw = read_weights(source)
    files = source_files(raw)
    check_output(output, force, files)
    name = infer_model_name(raw, model_name)
    check_variant(raw, name)
    state = to_torch_state(raw, TinyPose(get_spec(name)))
    return save_safetensors(state, output, name, provenance(*files, raw.format))
