"""``python infer.py``: the real Hydra config composed with overrides, over a folder, a list and a video."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tinypose.predict import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def infer_config(compose_config):
    """``infer_config(*overrides)``: conf/infer.yaml composed with ``overrides``."""
    return lambda *overrides: compose_config("infer", overrides)


@pytest.fixture()
def fast_model(monkeypatch, predictors):
    """Reuse the session's random-weight model instead of loading weights for every CLI run."""
    original = cli.create_model

    def create(model_name, model_dir=None, **kwargs):
        assert model_dir == "WEIGHTS"
        return original(model_name, model=predictors[False].model, **kwargs)

    monkeypatch.setattr(cli, "create_model", create)


def test_folder_with_a_bad_file_writes_json_and_pictures(
    infer_config, fast_model, e2e_dir: Path, tmp_path: Path, capsys
) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(e2e_dir / "images", photos)
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    summary = cli.run_infer(infer_config(f"input={photos}", "model_dir=WEIGHTS", f"output={out}", "flip=true"))
    assert summary["images"] == 2 and summary["people"] == 2
    assert sorted(p.name for p in out.iterdir()) == [
        "demo_3_res.jpg",
        "demo_3_res.json",
        "demo_5_res.jpg",
        "demo_5_res.json",
    ]
    assert json.loads((out / "demo_5_res.json").read_text())["input_path"] == str(photos / "demo_5.jpg")
    assert "corrupt.jpg: not an image" in capsys.readouterr().err

    with pytest.raises(SystemExit, match="corrupt.jpg: not an image"):
        cli.run_infer(infer_config(f"input={photos}", "model_dir=WEIGHTS", f"output={out}", "on_error=raise"))
    with pytest.raises(SystemExit, match="missing.jpg: no such file"):
        cli.run_infer(infer_config(f"input={tmp_path / 'missing.jpg'}", "model_dir=WEIGHTS", f"output={out}"))


def test_list_and_video_inputs(infer_config, fast_model, e2e_dir: Path, tmp_path: Path) -> None:
    image = cv2.resize(cv2.imread(str(e2e_dir / "images" / "demo_3.jpg")), (96, 112))
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 8.0, (96, 112))
    for index in range(3):
        writer.write(np.roll(image, 3 * index, axis=1))
    writer.release()
    out = tmp_path / "out"
    summary = cli.run_infer(
        infer_config(f"input=[{e2e_dir / 'images' / 'demo_5.jpg'},{clip}]", "model_dir=WEIGHTS", f"output={out}")
    )
    assert summary["images"] == 4
    video_json = json.loads((out / "clip_res.json").read_text())
    assert video_json["input_path"] == str(clip) and [f["frame_index"] for f in video_json["frames"]] == [0, 1, 2]
    capture = cv2.VideoCapture(str(out / "clip_res.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()
    assert (out / "demo_5_res.json").exists() and (out / "demo_5_res.jpg").exists()


def test_no_input_runs_on_the_bundled_demo(infer_config, fast_model, tmp_path: Path) -> None:
    assert cli.DEMO_IMAGE.exists() and cv2.imread(str(cli.DEMO_IMAGE)).shape == (512, 512, 3)
    summary = cli.run_infer(infer_config("model_dir=WEIGHTS", f"output={tmp_path}", "save_img=false"))
    assert summary["images"] == 1 and [p.name for p in tmp_path.iterdir()] == ["astronaut_res.json"]


def test_help_lists_usage_and_options() -> None:
    done = subprocess.run(
        [sys.executable, "infer.py", "--help"], check=False, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0
    assert (
        "python infer.py input=photo.jpg" in done.stdout
        and "model: PP-TinyPose_128x96, PP-TinyPose_256x192" in done.stdout
    )
    assert "draw_threshold" in done.stdout
