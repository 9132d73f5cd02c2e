"""Outputs owned by the writer side: the per-video JSON of ``infer.py`` and annotated videos."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tinypose.predict import cli
from tinypose.predict.inputs import VideoSource
from tinypose.predict.writers import VideoJsonWriter, video_writers


def _clip(path: Path, frames: int = 3) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8.0, (96, 112))
    for index in range(frames):
        writer.write(np.full((112, 96, 3), 40 * index, np.uint8))
    writer.release()
    return path


def test_video_json_is_valid_whatever_the_path_holds(compose_config, predictors, monkeypatch, tmp_path: Path) -> None:
    """A path with '", "' in it used to be split by string replacement into invalid JSON."""
    original = cli.create_model
    monkeypatch.setattr(
        cli, "create_model", lambda name, model_dir=None, **kw: original(name, model=predictors[False].model, **kw)
    )
    folder = tmp_path / 'odd", "name, {x}: "y"'
    folder.mkdir()
    clip = _clip(folder / 'clip", "2.mp4')
    out = tmp_path / "out"
    cli.run_infer(compose_config("infer", [f"input={json.dumps(str(clip))}", f"output={out}", "save_img=false"]))
    (written,) = out.glob("*_res.json")
    data = json.loads(written.read_text(encoding="utf-8"))
    assert data["input_path"] == str(clip) and list(data) == ["input_path", "fps", "frames"]
    assert [frame["frame_index"] for frame in data["frames"]] == [0, 1, 2]


def test_video_json_writer_streams_one_file_per_video(tmp_path: Path) -> None:
    first, second = VideoSource('a, "b".mp4', 25.0, 2, 4, 4), VideoSource("c.mp4", 30.0, 1, 4, 4)
    writer = VideoJsonWriter(tmp_path)
    writer.add(first, {"frame_index": 0, "kpts": []})
    writer.add(first, {"frame_index": 1, "kpts": [{"kpt_score": 0.5}]})
    writer.add(second, {"frame_index": 0, "boxes": []})
    writer.flush()
    one, two = (json.loads(path.read_text(encoding="utf-8")) for path in writer.written)
    assert one == {
        "input_path": 'a, "b".mp4',
        "fps": 25.0,
        "frames": [{"frame_index": 0, "kpts": []}, {"frame_index": 1, "kpts": [{"kpt_score": 0.5}]}],
    }
    assert two == {"input_path": "c.mp4", "fps": 30.0, "frames": [{"frame_index": 0, "boxes": []}]}


def test_annotated_video_is_finished_by_the_writer_side(tmp_path: Path) -> None:
    source = VideoSource("in.mp4", 10.0, 2, 8, 8)
    writers = video_writers(source)
    assert video_writers(source) is writers
    frame = np.zeros((8, 8, 3), np.uint8)
    target = tmp_path / "out.avi"
    writers.write(target, frame, source.frames_read)
    source.finish_reading(2)  # the reader reached the end: 1 of 2 frames written, still open
    writers.write(target, frame, source.frames_read)  # the last frame finishes the file
    with pytest.raises(OSError, match="already finished"):
        writers.write(target, frame, source.frames_read)
    capture = cv2.VideoCapture(str(target))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    capture.release()
    other = tmp_path / "partial.avi"
    writers.write(other, frame, source.frames_read)
    source.close()  # the consumer moved past the video: what is open is finished
    capture = cv2.VideoCapture(str(other))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 1
    capture.release()
