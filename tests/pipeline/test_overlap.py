"""The pipeline's overlapped path (detection and crops of the next batch in a worker thread while the pose
network runs the current one) gives exactly the serial results, tracking and annotated video included."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tinypose.detect import PersonDetector, build_detector
from tinypose.pipeline import create_pipeline
from tinypose.predict import create_model


@pytest.fixture(scope="module")
def detector(openvino_dir: Path) -> PersonDetector:
    weights = openvino_dir / "picodet_s_320_lcnet_pedestrian" / "model.xml"
    return PersonDetector(build_detector(320, pretrained=weights), "cpu", threshold=None)


def _clip(source: Path, target: Path, frames: int) -> Path:
    capture = cv2.VideoCapture(str(source))
    writer = None
    for _ in range(frames):
        ok, frame = capture.read()
        assert ok
        frame = cv2.resize(frame, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        if writer is None:
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), 12, frame.shape[1::-1])
        writer.write(frame)
    writer.release()
    capture.release()
    return target


def test_overlapped_pipeline_gives_the_serial_results(
    data_dir: Path, openvino_dir: Path, detector: PersonDetector, tmp_path: Path
) -> None:
    weights = openvino_dir / "tinypose_128x96" / "model.xml"
    serial = create_model("PP-TinyPose_128x96", model_dir=weights, device="cpu")
    overlapped = create_model("PP-TinyPose_128x96", device="cpu", model=serial.model, overlap=True, crop_workers=2)
    clip = _clip(data_dir / "video" / "multi_person_demo.mp4", tmp_path / "walk.mp4", 7)
    inputs = [str(clip), str(data_dir / "photos" / "demo_7.jpg")]
    runs = []
    for pose in (serial, overlapped):
        pipeline = create_pipeline(pose=pose, detector=detector, batch_size=3)
        out = tmp_path / ("overlap" if pose.overlap else "serial")
        results = []
        for result in pipeline.predict(inputs):
            if result.get("frame_index") is not None:
                result.save_to_video(out)
            results.append(result)
        runs.append((results, out))
    (a_results, a_out), (b_results, b_out) = runs
    assert len(a_results) == len(b_results) == 8
    for a, b in zip(a_results, b_results):
        assert len(a["boxes"]) == len(b["boxes"]) > 0
        for pa, pb in zip(a["boxes"], b["boxes"]):
            assert pa["coordinate"] == pb["coordinate"] and pa.get("track_id") == pb.get("track_id")
            assert np.array_equal(pa["keypoints"], pb["keypoints"])
            if "keypoints_smoothed" in pa:
                assert np.array_equal(pa["keypoints_smoothed"], pb["keypoints_smoothed"])
    for out in (a_out, b_out):
        written = cv2.VideoCapture(str(out / "walk_res.mp4"))
        assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
        written.release()
