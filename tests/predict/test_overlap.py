"""Feeding a GPU (issue 15, item 2) without changing results: the overlapped path (next batch prepared in a
worker thread, crops warped by a thread pool) gives exactly the serial path's results on the CPU, across
video boundaries inside a batch, with every annotated frame written; the CUDA-only part (pinned memory)
skips without a GPU."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tinypose.predict import create_model
from tinypose.predict.inputs import run_overlapped


def _clip(source: Path, target: Path, frames: int) -> Path:
    capture = cv2.VideoCapture(str(source))
    writer = None
    for _ in range(frames):
        ok, frame = capture.read()
        assert ok
        frame = cv2.resize(frame, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
        if writer is None:
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), 12, frame.shape[1::-1])
        writer.write(frame)
    writer.release()
    capture.release()
    return target


def test_overlapped_predict_gives_the_serial_results(predictors, data_dir: Path, tmp_path: Path) -> None:
    serial = predictors[False]
    assert not serial.overlap and serial.crop_workers == 0  # the CPU default
    overlapped = create_model("PP-TinyPose_128x96", device="cpu", model=serial.model, overlap=True, crop_workers=3)
    video = data_dir / "video" / "multi_person_demo.mp4"
    first, second = _clip(video, tmp_path / "a.mp4", 4), _clip(video, tmp_path / "b.mp4", 3)
    photos = sorted((data_dir / "photos").glob("*.jpg"))[:2]
    inputs = [str(photos[0]), str(first), str(photos[1]), str(second)]  # batches of 3 span the videos' ends
    boxes = [None] * 9
    boxes[0] = [[10, 10, 200, 300, 0.9], [50, 40, 260, 380, 0.8]]  # several crops of one image
    runs = {}
    for name, predictor in (("serial", serial), ("overlapped", overlapped)):
        out = tmp_path / name
        results = []
        for result in predictor.predict(inputs, batch_size=3, boxes=boxes):
            if result.get("frame_index") is not None:
                result.save_to_video(out)
            results.append(result)
        runs[name] = (results, out)
    (serial_results, serial_out), (overlap_results, overlap_out) = runs["serial"], runs["overlapped"]
    assert len(serial_results) == len(overlap_results) == 9
    for a, b in zip(serial_results, overlap_results):
        assert a["input_path"] == b["input_path"] and a.get("frame_index") == b.get("frame_index")
        assert len(a["kpts"]) == len(b["kpts"])
        for pa, pb in zip(a["kpts"], b["kpts"]):
            assert np.array_equal(pa["keypoints"], pb["keypoints"]) and pa["kpt_score"] == pb["kpt_score"]
    for clip, frames in ((first, 4), (second, 3)):
        for out in (serial_out, overlap_out):
            written = cv2.VideoCapture(str(out / f"{clip.stem}_res.mp4"))
            assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == frames, out
            written.release()


def test_predict_batch_with_crop_workers_is_identical(predictors, data_dir: Path) -> None:
    serial = predictors[False]
    workers = create_model("PP-TinyPose_128x96", device="cpu", model=serial.model, crop_workers=4)
    image = cv2.imread(str(data_dir / "photos" / "demo_7.jpg"))
    rows = [[x, 20, x + 150, 330, 0.9] for x in range(0, 400, 50)]
    a = serial.predict_batch([image, image], boxes=[rows, rows[:3]])
    b = workers.predict_batch([image, image], boxes=[rows, rows[:3]])
    for ra, rb in zip(a, b):
        for pa, pb in zip(ra["kpts"], rb["kpts"]):
            assert np.array_equal(pa["keypoints"], pb["keypoints"]) and pa["coordinate"] == pb["coordinate"]


def test_run_overlapped_keeps_order_and_raises_after_what_came_before() -> None:
    def batches():
        yield from (1, 2, 3)
        raise ValueError("bad input 4")

    seen = []
    with pytest.raises(ValueError, match="bad input 4"):
        for value in run_overlapped(batches(), lambda b: b * 10, lambda p: [p, p + 1]):
            seen.append(value)
    assert seen == [10, 11, 20, 21, 30, 31]
    assert list(run_overlapped(iter(range(5)), lambda b: b, lambda p: [p])) == list(range(5))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory and the CUDA default need a CUDA GPU")
def test_cuda_predictor_pins_its_batches(predictors, data_dir: Path) -> None:
    predictor = create_model("PP-TinyPose_128x96", device="cuda", model=predictors[False].model)
    assert predictor.overlap and predictor.crop_workers >= 1
    image = cv2.imread(str(data_dir / "photos" / "demo_2.jpg"))
    prepared = predictor.prepare([image], [None], ["demo_2"])
    assert prepared.batch is not None and prepared.batch.is_pinned()
