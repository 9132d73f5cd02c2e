"""``KeypointPipeline.predict_batch`` and the one place person fields are made.

A stand-in detector (fixed boxes) and the random-weight PaddleX fixture model keep this fast; the
real detector and weights are exercised in test_pipeline.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from tinypose.detect import PersonDetector
from tinypose.pipeline import PipelineResult, create_pipeline
from tinypose.predict import KeypointPredictor

BOXES = [[20.0, 30.0, 220.0, 330.0, 0.9], [60.0, 40.0, 180.0, 300.0, 0.8], [0.0, 0.0, 5.0, 5.0, 0.1]]


class BoxAreaPredictor(KeypointPredictor):
    """Adds a field at the one place person fields are made, and nowhere else."""

    def person_result(self, keypoints: np.ndarray, kpt_score: float, box: np.ndarray | None) -> dict[str, Any]:
        person = super().person_result(keypoints, kpt_score, box)
        person["box_area"] = None if box is None else float((box[2] - box[0]) * (box[3] - box[1]))
        return person


class Counting:
    def __init__(self, function) -> None:
        self.function = function
        self.calls: list[int] = []

    def __call__(self, batch):
        self.calls.append(len(batch))
        return self.function(batch)


@pytest.fixture(scope="module")
def pose(fixtures_dir: Path) -> BoxAreaPredictor:
    return BoxAreaPredictor("PP-TinyPose_128x96", fixtures_dir / "paddlex_infer_128x96", flip=True, device="cpu")


@pytest.fixture(scope="module")
def images(fixtures_dir: Path) -> list[np.ndarray]:
    folder = fixtures_dir / "paddlex_e2e" / "images"
    return [cv2.imread(str(folder / name)) for name in ("demo_3.jpg", "demo_5.jpg")]


def test_a_field_added_to_predictor_results_reaches_pipeline_results(
    pose: BoxAreaPredictor, images: list[np.ndarray], tmp_path: Path
) -> None:
    pipeline = create_pipeline(pose=pose, detector=lambda image: BOXES, det_threshold=0.5)
    batch = pipeline.predict_batch(images, input_paths=["a.jpg", "b.jpg"])
    streamed = list(pipeline.predict(images, batch_size=2))
    for results in (batch, streamed):
        assert all(isinstance(r, PipelineResult) for r in results)
        for result in results:
            assert [p["box_area"] for p in result["boxes"]] == [200.0 * 300.0, 120.0 * 260.0]
            assert list(result["boxes"][0]) == ["coordinate", "det_score", "keypoints", "kpt_score", "box_area"]
            assert [p["box_area"] for p in result.json["res"]["boxes"]] == [60000.0, 31200.0]
    assert [r["input_path"] for r in batch] == ["a.jpg", "b.jpg"]
    saved = batch[0].save_to_json(tmp_path / "a.json")
    assert '"box_area": 60000.0' in saved.read_text()


class FixedDetector(PersonDetector):
    """A batched detector (the :class:`PersonDetector` path of the pipeline) that finds one person per image."""

    def __init__(self) -> None:  # no network: the rows below are its output
        self.calls: list[int] = []

    def detect(self, images: Any, threshold: Any = None, batch_size: int | None = None) -> list[np.ndarray]:
        self.calls.append(len(images))
        rows = np.array([[10.0, 10.0, 100.0, 200.0, 0.9]], np.float32)
        return [rows if threshold is None or rows[0, 4] > threshold else rows[:0] for _ in images]


def test_one_detector_call_and_one_pose_forward(pose: BoxAreaPredictor, images: list[np.ndarray]) -> None:
    detector = FixedDetector()
    pipeline = create_pipeline(pose=pose, detector=detector, det_threshold=0.5)
    backend = Counting(pose.backend)
    pose.backend = backend
    try:
        results = pipeline.predict_batch(images + images[:1], det_threshold=0.95)
        assert detector.calls == [3] and backend.calls == []  # nothing above 0.95: no pose forward at all
        results = pipeline.predict_batch(images + images[:1])
    finally:
        pose.backend = backend.function
    assert detector.calls == [3, 3] and backend.calls == [6]  # 3 people and their mirrored twins
    assert [len(r["boxes"]) for r in results] == [1, 1, 1]
    assert all("track_id" not in p for r in results for p in r["boxes"])  # no tracking on a batch


def test_pipeline_result_keeps_every_predictor_field(pose: BoxAreaPredictor, images: list[np.ndarray]) -> None:
    (result,) = pose.predict_batch(images[:1], boxes=[np.array(BOXES[:1])], input_paths=["x.jpg"])
    result["model_note"] = "kept"
    converted = PipelineResult.from_pose(result)
    assert list(converted) == ["input_path", "input_img", "boxes", "model_note"]
    assert converted["boxes"] is result["kpts"] and converted.spec is result.spec
    assert torch.is_tensor(torch.as_tensor(converted["boxes"][0]["keypoints"]))
