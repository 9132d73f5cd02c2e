"""convert_weights.py / tinypose.weights.convert: every format to safetensors with provenance."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import tinypose
from tinypose.families import convert_weights as convert
from tinypose.models import load_state_dict
from tinypose.weights import WeightsError

REPO = Path(__file__).resolve().parents[2]


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as file:
        return file.metadata()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pdparams_round_trip_with_metadata(random_pdparams, random_model, tmp_path) -> None:
    out = convert(random_pdparams, tmp_path / "w.safetensors", model_name="128x96")
    meta = _metadata(out)
    assert meta["model_name"] == "PP-TinyPose_128x96"
    assert meta["source"] == random_pdparams.name and meta["source_format"] == "pdparams"
    assert meta["source_sha256"] == _sha256(random_pdparams)
    assert meta["tinypose_version"] == tinypose.__version__
    model = tinypose.build_model("PP-TinyPose_128x96", pretrained=out)
    reference = random_model.state_dict()
    assert all(torch.equal(value, reference[name]) for name, value in model.state_dict().items())


def test_bare_pdparams_needs_a_model_name(random_pdparams, tmp_path) -> None:
    with pytest.raises(WeightsError, match=r"checkpoint.pdparams: cannot tell which model.*--model PP-TinyPose_128x96"):
        convert(random_pdparams, tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()


def test_refuses_to_overwrite_without_force(random_pdparams, tmp_path) -> None:
    out = tmp_path / "w.safetensors"
    out.write_bytes(b"keep me")
    with pytest.raises(WeightsError, match=r"w.safetensors: already exists; pass --force"):
        convert(random_pdparams, out, model_name="128x96")
    assert out.read_bytes() == b"keep me"
    convert(random_pdparams, out, model_name="128x96", force=True)
    assert _metadata(out)["model_name"] == "PP-TinyPose_128x96"


def _cli():
    """convert_weights.py's ``main``, loaded in-process (importing torch again in a subprocess is slow)."""
    spec = importlib.util.spec_from_file_location("convert_weights", REPO / "convert_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_cli_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli()(["--help"])
    assert exit_info.value.code == 0
    assert "--model" in capsys.readouterr().out


def test_cli_converts_and_reports_errors(random_pdparams, tmp_path, capsys) -> None:
    main, out = _cli(), tmp_path / "cli.safetensors"
    argv = [str(random_pdparams), "-o", str(out)]
    assert main(argv) == 1 and not out.exists()
    assert "error:" in capsys.readouterr().err
    assert main([*argv, "--model", "256x192"]) == 0
    assert _metadata(out)["model_name"] == "PP-TinyPose_256x192"
    assert main([*argv, "--model", "256x192"]) == 1 and "already exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*argv, "--model", "64x48"])
    assert "unknown model '64x48'" in capsys.readouterr().err


def test_safetensors_remembers_its_variant(random_pdparams, tmp_path) -> None:
    out = convert(random_pdparams, tmp_path / "w.safetensors", model_name="PP-TinyPose_128x96")
    with pytest.raises(
        WeightsError, match=r"w.safetensors: these weights are for PP-TinyPose_128x96, not PP-TinyPose_256x192"
    ):
        tinypose.build_model("PP-TinyPose_256x192", pretrained=out)


def test_openvino_ir_converts_with_its_declared_size(openvino_dir, tmp_path) -> None:
    size = "256x192"
    xml = openvino_dir / f"tinypose_{size}" / "model.xml"
    out = convert(xml, tmp_path / "ir.safetensors")  # the IR's input shape names the variant
    meta = _metadata(out)
    assert meta["model_name"] == f"PP-TinyPose_{size}" and meta["source_format"] == "openvino"
    assert meta["source"] == "model.bin" and meta["source_sha256"] == _sha256(xml.with_suffix(".bin"))
    assert meta["source_program"] == "model.xml" and meta["source_program_sha256"] == _sha256(xml)
    converted, direct = load_state_dict(out, size), load_state_dict(xml, size)
    assert all(torch.equal(converted[k], direct[k]) for k in direct)


def test_paddlex_folder_converts(fixtures_dir, tmp_path) -> None:
    folder = fixtures_dir / "paddlex_infer_128x96"
    out = convert(folder, tmp_path / "px.safetensors")
    meta = _metadata(out)
    assert meta["model_name"] == "PP-TinyPose_128x96" and meta["source"] == "inference.pdiparams"
    assert meta["source_program"] == "inference.json"
