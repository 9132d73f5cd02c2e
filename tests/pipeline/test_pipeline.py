"""create_pipeline("human_keypoint_detection") on real photos and a real clip, with the released weights."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tinypose.detect import PersonDetector, build_detector
from tinypose.pipeline import PipelineResult, clip_boxes, create_pipeline
from tinypose.predict import create_model

PHOTO_PEOPLE = {"demo_2.jpg": 1, "demo_3.jpg": 1, "demo_5.jpg": 1, "demo_6.jpg": 1, "demo_7.jpg": 4}


class CountingBackend:
    """Wraps a backend and records the batch size of every forward."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.calls: list[int] = []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(batch.shape[0]))
        return self.backend(batch)


@pytest.fixture(scope="module")
def detector(openvino_dir: Path) -> PersonDetector:
    weights = openvino_dir / "picodet_s_320_lcnet_pedestrian" / "model.xml"
    return PersonDetector(build_detector(320, pretrained=weights), "cpu", threshold=None)


@pytest.fixture(scope="module")
def pose_weights(openvino_dir: Path) -> Path:
    return openvino_dir / "tinypose_128x96" / "model.xml"


@pytest.fixture(scope="module")
def photos_dir(data_dir: Path) -> Path:
    return data_dir / "photos"


def test_photos_people_and_paddlex_surface(
    photos_dir: Path, detector: PersonDetector, pose_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = create_pipeline(pose_model_dir=pose_weights, detector=detector, device="cpu", flip=True, batch_size=1)
    counter = CountingBackend(pipeline.pose.backend)
    pipeline.pose.backend = counter
    detector_batches: list[int] = []
    raw = detector.raw
    monkeypatch.setattr(detector, "raw", lambda images: detector_batches.append(len(images)) or raw(images))
    results = list(pipeline.predict(str(photos_dir), batch_size=5))
    assert [Path(r["input_path"]).name for r in results] == sorted(PHOTO_PEOPLE)
    assert {Path(r["input_path"]).name: len(r["boxes"]) for r in results} == PHOTO_PEOPLE
    # the 5 photos in one detector forward; all 8 people and their mirrored twins in one pose forward
    assert detector_batches == [5]
    assert counter.calls == [16]
    for result in results:
        assert isinstance(result, PipelineResult)
        payload = result.json["res"]
        assert set(payload) == {"input_path", "boxes"}
        for person in payload["boxes"]:
            assert set(person) == {"coordinate", "det_score", "keypoints", "kpt_score"}
            assert len(person["coordinate"]) == 4 and person["det_score"] > 0.5
            assert np.asarray(person["keypoints"]).shape == (17, 3)
        json.dumps(payload)
    # each person's keypoints are what the pose model gives for that (clipped) box alone
    image = cv2.imread(str(photos_dir / "demo_7.jpg"))
    alone = next(pipeline.pose.predict(image, boxes=[results[-1]["boxes"][2]["coordinate"]]))
    np.testing.assert_allclose(alone["kpts"][0]["keypoints"], results[-1]["boxes"][2]["keypoints"], atol=1e-4)


def test_custom_detector_threshold_and_pictures(photos_dir: Path, pose_weights: Path, tmp_path: Path) -> None:
    pose = create_model("PP-TinyPose_128x96", model_dir=pose_weights, device="cpu")
    boxes = [
        {"coordinate": [-20.0, 10.0, 200.0, 290.0], "score": 0.9},
        {"coordinate": [250, 90, 330, 260], "score": 0.4},
    ]
    seen = []
    pipeline = create_pipeline(detector=lambda image: seen.append(image) or boxes, pose=pose)
    image = cv2.imread(str(photos_dir / "demo_7.jpg"))
    result = next(pipeline.predict(str(photos_dir / "demo_7.jpg")))
    np.testing.assert_array_equal(seen[0], image)  # a detector callable gets the BGR image, as cv2.imread gives it
    assert [p["coordinate"] for p in result["boxes"]] == [[0.0, 10.0, 200.0, 290.0]]  # clipped as PaddleX
    assert len(next(pipeline.predict(image, det_threshold=0.3))["boxes"]) == 2
    picture = result.save_to_img(tmp_path / "out.png")
    drawn = cv2.imread(str(picture))
    assert drawn.shape == image.shape and np.abs(drawn.astype(int) - image).sum() > 0
    empty = next(create_pipeline(detector=lambda image: np.zeros((0, 5)), pose=pose).predict(image))
    assert empty["boxes"] == [] and empty.json["res"]["boxes"] == []


def test_clip_boxes_drops_empty() -> None:
    boxes = np.array([[-5, -5, 50, 60, 0.9], [120, 10, 130, 20, 0.8], [10, 10, 10, 20, 0.7]], float)
    clipped = clip_boxes(boxes, 100, 50)
    assert clipped[:, :4].tolist() == [[0, 0, 50, 50]]


def test_unknown_names_are_rejected(pose_weights: Path) -> None:
    with pytest.raises(ValueError, match="unknown pipeline"):
        create_pipeline("object_detection")
    with pytest.raises(ValueError, match="unknown detector"):
        create_pipeline(detector="yolov8", pose_model_dir=pose_weights, device="cpu")


def _short_clip(source: Path, target: Path, frames: int) -> Path:
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS)
    writer = None
    for _ in range(frames):
        ok, frame = capture.read()
        assert ok
        frame = cv2.resize(frame, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        if writer is None:
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
        writer.write(frame)
    writer.release()
    capture.release()
    return target


def test_video_tracks_smoothing_and_annotated_output(
    data_dir: Path, detector: PersonDetector, pose_weights: Path, tmp_path: Path
) -> None:
    clip = _short_clip(data_dir / "video" / "multi_person_demo.mp4", tmp_path / "clip.mp4", 12)
    pipeline = create_pipeline(pose_model_dir=pose_weights, detector=detector, device="cpu", batch_size=4)
    ids_per_frame = []
    for result in pipeline.predict(str(clip)):
        assert len(result["boxes"]) == 2
        ids_per_frame.append(sorted(p["track_id"] for p in result["boxes"]))
        for person in result["boxes"]:
            raw, smooth = np.asarray(person["keypoints"]), np.asarray(person["keypoints_smoothed"])
            assert np.array_equal(raw[:, 2], smooth[:, 2])
            assert np.abs(raw[:, :2] - smooth[:, :2]).max() < 40  # smoothing, not a different pose
        result.save_to_video(tmp_path)
        data = result.json["res"]
        assert data["frame_index"] == len(ids_per_frame) - 1
        assert {"keypoints", "keypoints_smoothed", "track_id"} <= set(data["boxes"][0])
    assert all(ids == ids_per_frame[0] for ids in ids_per_frame) and len(set(ids_per_frame[0])) == 2
    annotated = cv2.VideoCapture(str(tmp_path / "clip_res.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    annotated.release()

    raw_only = create_pipeline(pose=pipeline.pose, detector=detector, smoothing=False)
    first = next(raw_only.predict(str(clip)))
    assert "keypoints_smoothed" not in first["boxes"][0] and "track_id" in first["boxes"][0]


def test_infer_cli_runs_the_pipeline_on_photos_and_video(
    data_dir: Path, openvino_dir: Path, pose_weights: Path, tmp_path: Path, compose_config
) -> None:
    """``python infer.py detector=320 ...``, composed from conf/infer.yaml as Hydra does."""
    from tinypose.predict.cli import run_infer

    clip = _short_clip(data_dir / "video" / "multi_person_demo.mp4", tmp_path / "walk.mp4", 6)
    overrides = [
        f"input=[{data_dir / 'photos' / 'demo_7.jpg'},{clip}]",
        "detector=320",
        f"detector_weights={openvino_dir / 'picodet_s_320_lcnet_pedestrian' / 'model.xml'}",
        f"model_dir={pose_weights}",
        "device=cpu",
        "batch_size=3",
        f"output={tmp_path / 'out'}",
    ]
    cfg = compose_config("infer", overrides)
    summary = run_infer(cfg)
    assert summary["images"] == 7 and summary["people"] == 4 + 6 * 2
    photo = json.loads((tmp_path / "out" / "demo_7_res.json").read_text())
    assert len(photo["boxes"]) == 4
    video = json.loads((tmp_path / "out" / "walk_res.json").read_text())
    assert [f["frame_index"] for f in video["frames"]] == list(range(6))
    person = video["frames"][-1]["boxes"][0]
    assert {"track_id", "keypoints", "keypoints_smoothed"} <= set(person)
    assert (tmp_path / "out" / "walk_res.mp4").is_file() and (tmp_path / "out" / "demo_7_res.jpg").is_file()
