"""``infer.py`` options are read strictly and careless input ends in one clear line (issue 9).

Boolean options accept exactly true/false, yes/no, on/off, 1/0 (any case); numbers are checked; a
path without ``input=``, an existing file as ``output``, ``device=cuda`` without CUDA are one-line
errors naming the option; no progress bar is drawn before an error; video runs list their files.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tinypose.predict import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def infer_config(compose_config):
    return lambda *overrides: compose_config("infer", overrides)


@pytest.fixture()
def built(monkeypatch, predictors) -> list[dict]:
    """Reuse the session's random-weight model; records the keyword arguments infer.py builds it with."""
    calls: list[dict] = []
    original = cli.create_model

    def create(model_name, model_dir=None, **kwargs):
        calls.append(kwargs)
        return original(model_name, model=predictors[False].model, **kwargs)

    monkeypatch.setattr(cli, "create_model", create)
    return calls


def _boolean_leaves(node, prefix: str = ""):
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _boolean_leaves(value, path + ".")
        elif isinstance(value, bool):
            yield path


def _one_line_exit(error: pytest.ExceptionInfo) -> str:
    message = str(error.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def test_every_boolean_option_is_strict(infer_config) -> None:
    cfg = infer_config()
    leaves = sorted(_boolean_leaves(OmegaConf.to_container(cfg)))
    assert leaves == sorted(cli.BOOLEAN_OPTIONS), "every boolean of conf/infer.yaml is read by parse_bool"
    for name in leaves:
        for word, expected in [("no", False), ("OFF", False), ("0", False), ("yes", True), ("On", True), ("1", True)]:
            assert cli._options(infer_config(f"{name}={word}"))[name] is expected, (name, word)
        with pytest.raises(SystemExit) as error:
            cli._options(infer_config(f"{name}=maybe"))
        assert f"{name}='maybe' is not a boolean" in _one_line_exit(error)


def test_flip_no_and_save_img_off_mean_no(infer_config, built, tmp_path: Path) -> None:
    summary = cli.run_infer(infer_config(f"output={tmp_path}", "flip=no", "save_img=off"))
    assert built[-1]["flip"] is False
    assert [p.suffix for p in summary["written"]] == [".json"], "no picture with save_img=off"


@pytest.mark.parametrize(
    "override, message",
    [
        ("batch_size=-1", "batch_size=-1 is out of range; it must be at least 1"),
        ("batch_size=two", "batch_size='two' is not an integer"),
        ("threads=0", "threads=0 is out of range"),
        ("url_timeout=0", "url_timeout=0 is out of range; it must be above 0"),
        ("draw_threshold=high", "draw_threshold='high' is not a number"),
        ("device=npu", "device=npu is not a device; use cpu, cuda, cuda:N or gpu:N"),
    ],
)
def test_bad_values_are_one_line(infer_config, built, override: str, message: str) -> None:
    with pytest.raises(SystemExit) as error:
        cli.run_infer(infer_config(override))
    assert message in _one_line_exit(error)
    assert not built, "refused before any model is built"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_cuda_without_a_gpu_says_device_cpu(infer_config, built) -> None:
    with pytest.raises(SystemExit) as error:
        cli.run_infer(infer_config("device=cuda"))
    message = _one_line_exit(error)
    assert "sees no CUDA GPU" in message and message.endswith("use device=cpu") and "backend" not in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_create_model_on_cuda_without_a_gpu_says_device_cpu(predictors) -> None:
    from tinypose import create_model

    with pytest.raises(ValueError, match=r"device=cuda: torch .* sees no CUDA GPU .*; use device=cpu$"):
        create_model("PP-TinyPose_128x96", model=predictors[False].model, device="cuda")


def test_output_that_is_a_file_is_refused(infer_config, built, tmp_path: Path) -> None:
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    with pytest.raises(SystemExit) as error:
        cli.run_infer(infer_config(f"output={existing}"))
    assert f"output={existing} is an existing file" in _one_line_exit(error)
    assert existing.read_text() == "keep me"


def test_no_progress_bar_before_an_error(infer_config, built, tmp_path: Path, capfd) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for source in (empty, tmp_path / "missing"):
        with pytest.raises(SystemExit) as error:
            cli.run_infer(infer_config(f"input={source}", f"output={tmp_path / 'out'}"))
        assert str(source) in _one_line_exit(error)
    assert "img/s" not in capfd.readouterr().err


def test_all_inputs_unreadable_is_an_error(infer_config, built, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as error:
        cli.run_infer(infer_config(f"input=[{tmp_path / 'a.jpg'},{tmp_path / 'b.jpg'}]", f"output={tmp_path}"))
    assert "none of the 2 inputs could be read" in _one_line_exit(error)


def test_video_run_lists_the_files_written(infer_config, built, e2e_dir: Path, tmp_path: Path, capsys) -> None:
    image = cv2.resize(cv2.imread(str(e2e_dir / "images" / "demo_3.jpg")), (96, 112))
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 8.0, (96, 112))
    for index in range(5):
        writer.write(np.roll(image, 3 * index, axis=1))
    writer.release()
    out = tmp_path / "out"
    cli.run_infer(infer_config(f"input={clip}", f"output={out}"))
    listed = capsys.readouterr().out
    assert f"  {out / 'clip_res.mp4'}" in listed and f"  {out / 'clip_res.json'}" in listed


@pytest.mark.parametrize(
    "argument, message",
    [
        ("photo.jpg", "'photo.jpg' is not an option (the input is given as input=photo.jpg)"),
        ("input=photo (1).jpg", "\"input='photo (1).jpg'\""),
        ("input=a.jpg,b.jpg", "for a list write input=[a.jpg,b.jpg]"),
        ("model=foo", "model='foo' is not a choice; choose one of PP-TinyPose_128x96, PP-TinyPose_256x192"),
        ("~model", "error: Key 'model' is not in struct (see python infer.py --help for the settings)"),
    ],
)
def test_arguments_hydra_cannot_read_are_one_line(argument: str, message: str) -> None:
    done = subprocess.run(
        [sys.executable, "infer.py", argument], cwd=REPO, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and message in done.stderr, done.stderr


def test_help_says_what_to_set_on_a_shared_machine() -> None:
    done = subprocess.run(
        [sys.executable, "infer.py", "--help"], cwd=REPO, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0
    assert "On a shared or busy machine" in done.stdout
    assert "python infer.py input=photos/ threads=1 backend=torch" in done.stdout
    assert "OMP_WAIT_POLICY=PASSIVE python infer.py" in done.stdout and "backend: null" in done.stdout


def test_paddlex_pipeline_config_flip_is_strict(predictors) -> None:
    from tinypose import create_pipeline
    from tinypose.options import OptionError

    config = {"SubModules": {"KeypointDetection": {"flip": "maybe"}}}
    with pytest.raises(OptionError, match="SubModules.KeypointDetection.flip='maybe' is not a boolean"):
        create_pipeline(config=config, pose=predictors[False], detector=lambda image: [])
