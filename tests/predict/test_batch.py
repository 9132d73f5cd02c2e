"""``KeypointPredictor.predict_batch``: decoded images (and boxes) in, results out, one forward, no reading."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tinypose.predict import KeypointPredictor
from tinypose.predict import predictor as predictor_module


class CountingBackend:
    def __init__(self, backend) -> None:
        self.backend = backend
        self.calls: list[int] = []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(batch.shape[0]))
        return self.backend(batch)


@pytest.fixture()
def photos(e2e_dir: Path) -> list[np.ndarray]:
    return [cv2.imread(str(e2e_dir / "images" / name)) for name in ("demo_3.jpg", "demo_5.jpg")]


def _no_reading(*args, **kwargs):
    raise AssertionError("predict_batch must not read inputs or start a reader thread")


def test_same_results_as_predict_in_one_forward_without_reading(
    predictors: dict[bool, KeypointPredictor], photos: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = predictors[True]
    boxes = [np.array([[10.0, 20.0, 200.0, 300.0, 0.9], [50, 60, 150, 250, 0.7]]), [[5, 5, 100, 120]]]
    streamed = list(predictor.predict(photos, batch_size=2, boxes=boxes))
    counter = CountingBackend(predictor.backend)
    monkeypatch.setattr(predictor, "backend", counter)
    monkeypatch.setattr(predictor_module, "iter_inputs", _no_reading)
    monkeypatch.setattr(predictor_module, "prefetch", _no_reading)
    batched = predictor.predict_batch(photos, boxes=boxes, input_paths=["a.jpg", None])
    assert counter.calls == [6]  # three people and their mirrored twins in one forward
    assert [r["input_path"] for r in batched] == ["a.jpg", None]
    for ours, reference in zip(batched, streamed):
        assert [list(p) for p in ours["kpts"]] == [list(p) for p in reference["kpts"]]
        for person, expected in zip(ours["kpts"], reference["kpts"]):
            np.testing.assert_array_equal(person["keypoints"], expected["keypoints"])
            assert person["kpt_score"] == expected["kpt_score"]
            assert person["coordinate"] == expected["coordinate"]
    assert "det_score" not in batched[1]["kpts"][0]  # a box without a score has none
    whole = predictor.predict_batch(photos)
    assert [len(r["kpts"]) for r in whole] == [1, 1] and "coordinate" not in whole[0]["kpts"][0]
    assert predictor.predict_batch([]) == []


def test_bad_arguments_name_the_problem(predictors: dict[bool, KeypointPredictor], photos: list[np.ndarray]) -> None:
    predictor = predictors[False]
    with pytest.raises(ValueError, match="boxes has 1 entries for 2 images"):
        predictor.predict_batch(photos, boxes=[[[0, 0, 10, 10]]])
    with pytest.raises(ValueError, match="input_paths has 1 entries for 2 images"):
        predictor.predict_batch(photos, input_paths=["a.jpg"])
    with pytest.raises(ValueError, match=r"b.jpg: box 0 .* x2 > x1"):
        predictor.predict_batch(photos, boxes=[None, [[10, 10, 5, 20]]], input_paths=["a.jpg", "b.jpg"])
    with pytest.raises(ValueError, match=r"image 1: array of shape \(4, 4, 2\) is not an image"):
        predictor.predict_batch([photos[0], np.zeros((4, 4, 2), np.uint8)])


def test_flip_per_call_is_the_flip_predictor(
    predictors: dict[bool, KeypointPredictor], photos: list[np.ndarray]
) -> None:
    """``predict_batch(flip=...)`` gives exactly what a predictor built with that flip gives (the service
    takes flip per request); ``None`` keeps the predictor's own setting."""
    boxes = [[[10.0, 20.0, 200.0, 300.0, 0.9]], [[5, 5, 100, 120]]]
    for own in (False, True):
        for asked in (False, True):
            ours = predictors[own].predict_batch(photos, boxes=boxes, flip=asked)
            reference = predictors[asked].predict_batch(photos, boxes=boxes)
            for mine, theirs in zip(ours, reference):
                np.testing.assert_array_equal(mine["kpts"][0]["keypoints"], theirs["kpts"][0]["keypoints"])
        kept = predictors[own].predict_batch(photos, boxes=boxes)
        np.testing.assert_array_equal(
            kept[0]["kpts"][0]["keypoints"],
            predictors[own].predict_batch(photos, boxes=boxes, flip=own)[0]["kpts"][0]["keypoints"],
        )
    flipped = predictors[False].predict_batch(photos, boxes=boxes, flip=True)[0]["kpts"][0]["keypoints"]
    plain = predictors[False].predict_batch(photos, boxes=boxes)[0]["kpts"][0]["keypoints"]
    assert not np.array_equal(flipped, plain), "the flip test changes the answer"
