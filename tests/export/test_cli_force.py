"""``export.py`` never overwrites an existing output without ``--force`` (like convert_weights.py; issue 9)."""

from __future__ import annotations

from pathlib import Path

import onnx

from tinypose.export.cli import main as export_main


def test_existing_output_is_kept_without_force(tmp_path: Path, capsys) -> None:
    output = tmp_path / "pose.onnx"
    output.write_bytes(b"an earlier export")
    assert export_main(["--random", "--no-verify", "-o", str(output)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"error: {output} already exist(s); pass --force to overwrite"
    assert output.read_bytes() == b"an earlier export"

    assert export_main(["--random", "--no-verify", "--force", "-o", str(output)]) == 0
    onnx.checker.check_model(str(output))


def test_openvino_bin_counts_as_output(tmp_path: Path, capsys) -> None:
    weights = tmp_path / "ir" / "tinypose.bin"
    weights.parent.mkdir()
    weights.write_bytes(b"tensors of an earlier IR")
    assert export_main(["--random", "--format", "openvino", "-o", str(weights.with_suffix(".xml"))]) == 2
    assert f"{weights} already exist(s)" in capsys.readouterr().err
    assert weights.read_bytes() == b"tensors of an earlier IR" and not weights.with_suffix(".xml").exists()
