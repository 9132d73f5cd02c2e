"""Paddle inference models read without Paddle: PaddleX PIR (inference.json) and PaddleDetection
legacy (model.pdmodel), checked against real Paddle output.

What is real Paddle output here:
- ``../shared/fixtures/paddle/paddlex_infer_128x96/`` (PaddleDetection ``export_model.py --for_fd``,
  PIR) and ``tinypose_128x96_random.pdparams`` (``paddle.save``), made by the fixture authors;
- ``data/paddledet_legacy_128x96/model.pdmodel.gz`` + ``infer_cfg.yml``: PaddleDetection's legacy-IR
  export of that same checkpoint (see the README there). Its ``model.pdiparams`` is rebuilt at test
  time (``legacy_export`` fixture) and must equal Paddle's bytes: Paddle wrote the identical file for
  both exports, and the PIR one is in ../shared.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from tinypose.models import TinyPose, get_spec, load_state_dict
from tinypose.weights import WeightsError, read_weights
from tinypose.weights.mapping import paddle_to_torch_name, static_name_table
from tinypose.weights.paddle_inference import read_program

LEGACY_PROGRAM = Path(__file__).parent / "data" / "paddledet_legacy_128x96"
PADDLE_PDIPARAMS_SHA256 = "b3a15c499e7b734cd38c72ad965b53ba6b2e12a55ebc3b37ff57f6f9775c3837"
"""sha256 of the .pdiparams Paddle 3.3.1 wrote for the random 128x96 fixture, in both the PIR export
(../shared/.../paddlex_infer_128x96/inference.pdiparams) and the legacy export of this folder."""


def _assert_same_state(ours: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    assert ours.keys() == reference.keys()
    different = [k for k in ours if not torch.equal(ours[k], reference[k])]
    assert not different, f"{len(different)} tensors differ, first {different[:3]}"


@pytest.fixture(scope="module")
def pdparams_state(fixtures_dir) -> dict[str, torch.Tensor]:
    return load_state_dict(fixtures_dir / "tinypose_128x96_random.pdparams", "PP-TinyPose_128x96")


def test_paddlex_folder_gives_the_pdparams_state(fixtures_dir, pdparams_state) -> None:
    folder = fixtures_dir / "paddlex_infer_128x96"
    raw = read_weights(folder)
    assert (raw.format, raw.naming, raw.model_name, raw.input_hw) == (
        "paddle_inference",
        "static",
        "PP-TinyPose_128x96",
        (128, 96),
    )
    _assert_same_state(load_state_dict(folder, "PP-TinyPose_128x96"), pdparams_state)
    # the program file or the params file name the same model
    _assert_same_state(load_state_dict(folder / "inference.json", "128x96"), pdparams_state)


def test_legacy_program_is_parsed(tmp_path) -> None:
    """The committed real ProgramDesc: 1342 persistable parameters, the feed, the two fetches."""
    with gzip.open(LEGACY_PROGRAM / "model.pdmodel.gz") as packed:
        data = packed.read()
    assert hashlib.sha256(data).hexdigest() == "0ed79691627bf9cebc6b63dcaeec15b3e7f0c1e31e6c43397c5e3b66c4ca5ef0"
    (tmp_path / "model.pdmodel").write_bytes(data)
    program = read_program(tmp_path / "model.pdmodel")
    assert program.kind == "legacy"
    assert len(program.parameters) == 1342
    assert program.feeds == {"image": (-1, 3, 128, 96)}
    assert program.fetches == ["conv2d_172.tmp_1", "arg_max_0.tmp_0"]
    assert program.parameters["conv2d_268.w_0_deepcopy_1342"] == (5, (17, 40, 1, 1))  # FP32


def test_legacy_pdiparams_layout_is_byte_identical_to_paddle(legacy_export, fixtures_dir) -> None:
    rebuilt = (legacy_export / "model.pdiparams").read_bytes()
    paddle_written = (fixtures_dir / "paddlex_infer_128x96" / "inference.pdiparams").read_bytes()
    assert hashlib.sha256(paddle_written).hexdigest() == PADDLE_PDIPARAMS_SHA256
    assert rebuilt == paddle_written


def test_legacy_folder_gives_the_pdparams_state(legacy_export, pdparams_state) -> None:
    raw = read_weights(legacy_export)
    assert (raw.format, raw.model_name, raw.input_hw) == ("paddle_inference", None, (128, 96))
    _assert_same_state(load_state_dict(legacy_export, "PP-TinyPose_128x96"), pdparams_state)
    _assert_same_state(load_state_dict(legacy_export / "model.pdmodel", "128x96"), pdparams_state)


def _paddle_python() -> str | None:
    """An interpreter with paddle: this one, or $TINYPOSE_PADDLE_PYTHON (e.g. a separate venv)."""
    if importlib.util.find_spec("paddle") is not None:
        return sys.executable
    return os.environ.get("TINYPOSE_PADDLE_PYTHON")


PADDLE_SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ["FLAGS_enable_pir_api"] = "0"
    import numpy as np, paddle
    paddle.enable_static()
    folder, npz, resaved = sys.argv[1:4]
    exe = paddle.static.Executor(paddle.CPUPlace())
    program, feeds, fetches = paddle.static.load_inference_model(os.path.join(folder, "model"), exe)
    reference = np.load(npz)
    heatmaps = exe.run(program, feed={feeds[0]: reference["input0"]}, fetch_list=fetches)[0]
    print(float(np.abs(heatmaps - reference["input0_heatmap"]).max()))
    params = [v for v in program.list_vars() if v.persistable and v.name not in ("feed", "fetch")]
    paddle.static.save_vars(exe, os.path.dirname(resaved), program, vars=params, filename=os.path.basename(resaved))
    """
)


def test_legacy_export_runs_in_paddle(legacy_export, fixtures_dir, tmp_path) -> None:
    """Paddle itself loads the rebuilt legacy model, reproduces the fixture heatmaps, and re-saving
    its parameters gives our bytes. Runs where paddle is importable (or $TINYPOSE_PADDLE_PYTHON)."""
    python = _paddle_python()
    if python is None:
        pytest.skip("paddle is not importable; set TINYPOSE_PADDLE_PYTHON to a Python with paddlepaddle")
    resaved = tmp_path / "resaved.pdiparams"
    run = subprocess.run(
        [python, "-c", PADDLE_SCRIPT, str(legacy_export), str(fixtures_dir / "forward_128x96.npz"), str(resaved)],
        check=False, capture_output=True, text=True, timeout=300, env={**os.environ, "FLAGS_use_mkldnn": "0"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout.strip().splitlines()[-1]) <= 1e-6
    assert resaved.read_bytes() == (legacy_export / "model.pdiparams").read_bytes()


def test_static_name_table_matches_the_released_export(openvino_dir) -> None:
    """Creation-order mapping == the names of the real enhanced PP-TinyPose export
    (model.pdiparams.info of the release, as tinypose_paddle_param_names.json)."""
    released = json.loads((openvino_dir / "tinypose_paddle_param_names.json").read_text())
    # auto_269_/auto_271_ are TopDownHRNet's unused `scale`/`bias` buffers, not parameters
    released = {k: v for k, v in released.items() if not k.startswith("auto_")}
    assert len(released) == 1342
    table = static_name_table(TinyPose(get_spec("128x96")), list(released), "test")
    assert table == {k: paddle_to_torch_name(v) for k, v in released.items()}


def test_wrong_variant_is_refused(fixtures_dir) -> None:
    with pytest.raises(
        WeightsError, match=r"inference.pdiparams: these weights are for PP-TinyPose_128x96, not PP-TinyPose_256x192"
    ):
        load_state_dict(fixtures_dir / "paddlex_infer_128x96", "PP-TinyPose_256x192")


def _copy(folder: Path, destination: Path) -> Path:
    shutil.copytree(folder, destination)
    return destination


def test_inconsistent_config_is_refused(legacy_export, tmp_path) -> None:
    folder = _copy(legacy_export, tmp_path / "export")
    config = folder / "infer_cfg.yml"
    config.write_text(config.read_text().replace("  - 96\n  - 128", "  - 192\n  - 256"))
    with pytest.raises(WeightsError, match="inconsistent input sizes.*256x192.*128x96"):
        read_weights(folder)


def test_other_model_is_refused(fixtures_dir, tmp_path) -> None:
    folder = _copy(fixtures_dir / "paddlex_infer_128x96", tmp_path / "export")
    config = folder / "inference.yml"
    config.write_text(config.read_text().replace("PP-TinyPose_128x96", "PicoDet-S"))
    with pytest.raises(WeightsError, match=r"inference.yml: this export is a PicoDet-S model, not PP-TinyPose"):
        load_state_dict(folder, "128x96")


@pytest.mark.parametrize("layout", ["pir", "legacy"])
def test_truncated_pdiparams_names_file_and_tensor(layout, legacy_export, fixtures_dir, tmp_path) -> None:
    source = legacy_export if layout == "legacy" else fixtures_dir / "paddlex_infer_128x96"
    folder = _copy(source, tmp_path / "export")
    params = next(folder.glob("*.pdiparams"))
    data = params.read_bytes()
    params.write_bytes(data[: len(data) - 1000])
    with pytest.raises(
        WeightsError, match=r"\.pdiparams: tensor 1342/1342 \(conv2d_99\.w_0.*file ends 1000 bytes early"
    ):
        read_weights(folder)
    params.write_bytes(data + b"\0" * 8)
    with pytest.raises(WeightsError, match=r"\.pdiparams: 8 bytes left after the 1342 tensors"):
        read_weights(folder)


@pytest.mark.parametrize("layout", ["pir", "legacy"])
def test_truncated_program_is_refused(layout, legacy_export, fixtures_dir, tmp_path) -> None:
    source = legacy_export if layout == "legacy" else fixtures_dir / "paddlex_infer_128x96"
    folder = _copy(source, tmp_path / "export")
    program = next(p for p in folder.iterdir() if p.suffix in (".json", ".pdmodel"))
    program.write_bytes(program.read_bytes()[:5000])
    with pytest.raises(WeightsError, match=rf"{program.name}: not a readable Paddle .*truncated or corrupt"):
        read_weights(folder)


def test_missing_params_file_is_named(legacy_export, tmp_path) -> None:
    folder = _copy(legacy_export, tmp_path / "export")
    (folder / "model.pdiparams").unlink()
    with pytest.raises(WeightsError, match="model.pdmodel: the parameters file model.pdiparams is missing"):
        read_weights(folder / "model.pdmodel")
    with pytest.raises(WeightsError, match="no Paddle inference model here|no weights file"):
        read_weights(folder)


def test_pdiparams_with_different_shapes_is_refused(legacy_export, fixtures_dir, tmp_path) -> None:
    """A .pdiparams from another program (same tensor count, other shapes) is caught by name."""
    from tinypose.weights.paddle_inference import write_pdiparams

    folder = _copy(legacy_export, tmp_path / "export")
    program = read_program(folder / "model.pdmodel")
    arrays = {name: np.zeros(shape, np.float32) for name, (_, shape) in program.parameters.items()}
    arrays["conv2d_268.w_0_deepcopy_1342"] = np.zeros((17, 40, 3, 3), np.float32)
    write_pdiparams(folder / "model.pdiparams", arrays)
    with pytest.raises(
        WeightsError,
        match=r"tensor conv2d_268\.w_0_deepcopy_1342 has shape \(17, 40, 3, 3\) but model.pdmodel declares \(17, 40, 1, 1\)",
    ):
        read_weights(folder)
