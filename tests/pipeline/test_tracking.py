"""PoseTracker: identities across frames by IoU or OKS, track expiry, per-track smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from tinypose.pipeline.smoothing import OneEuroConfig
from tinypose.pipeline.tracking import PoseTracker, box_iou_matrix, oks_matrix


def _pose(box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x1, y1, x2, y2 = box[:4]
    xy = np.stack([rng.uniform(x1, x2, 17), rng.uniform(y1, y2, 17)], -1)
    return np.concatenate([xy, np.full((17, 1), 0.9)], -1)


def test_iou_matrix() -> None:
    iou = box_iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]]))
    assert iou[0].tolist() == pytest.approx([50 / 150, 0.0])


def test_oks_is_one_for_the_same_pose_and_ignores_low_scores() -> None:
    rng = np.random.default_rng(0)
    pose = _pose(np.array([0, 0, 50, 100]), rng)
    assert oks_matrix(pose[None], pose[None], np.array([5000.0]))[0, 0] == pytest.approx(1.0)
    hidden = pose.copy()
    hidden[:, 2] = 0.1
    assert oks_matrix(pose[None], hidden[None], np.array([5000.0]))[0, 0] == 0.0


@pytest.mark.parametrize("similarity", ["iou", "oks"])
def test_two_people_crossing_keep_their_ids(similarity: str) -> None:
    rng = np.random.default_rng(1)
    templates = [_pose(np.array([0.0, 0, 50, 150]), rng) for _ in range(2)]  # each person's own pose
    tracker = PoseTracker(similarity=similarity, smoothing=None)
    seen: dict[int, list[int]] = {0: [], 1: []}
    for frame in range(40):
        left = np.array([10.0 + 3 * frame, 50, 60 + 3 * frame, 200])
        right = np.array([300.0 - 3 * frame, 40, 350 - 3 * frame, 190])
        order = [0, 1] if frame % 2 else [1, 0]  # detection order changes from frame to frame
        boxes = np.stack([[left, right][i] for i in order])
        poses = None
        if similarity == "oks":
            poses = np.stack(
                [templates[i] + [*[left, right][i][:2], 0] + rng.normal(0, 1, (17, 3)) * [1, 1, 0] for i in order]
            )
        ids, _ = tracker.update(boxes, poses, frame, frame / 30)
        for position, person in enumerate(order):
            seen[person].append(int(ids[position]))
    # the boxes overlap near frame 40 but each person keeps one id until then
    assert len(set(seen[0][:35])) == 1 and len(set(seen[1][:35])) == 1
    assert seen[0][0] != seen[1][0]


def test_tracks_expire_and_new_people_get_new_ids() -> None:
    tracker = PoseTracker(max_age=2, smoothing=None)
    box = np.array([[0.0, 0, 10, 10]])
    first, _ = tracker.update(box, None, 0, 0.0)
    again, _ = tracker.update(box, None, 2, 2 / 30)  # unseen for 2 frames: still the same person
    later, _ = tracker.update(box, None, 5, 5 / 30)  # unseen for 3 frames > max_age: a new track
    assert first[0] == again[0] != later[0]
    empty_ids, empty_kpts = tracker.update(np.zeros((0, 4)), None, 6, 6 / 30)
    assert empty_ids.shape == (0,) and empty_kpts is None


def test_smoothing_changes_coordinates_not_scores() -> None:
    rng = np.random.default_rng(2)
    tracker = PoseTracker(smoothing=OneEuroConfig(min_cutoff=0.5, beta=0.0))
    box = np.array([[0.0, 0, 100, 200]])
    base = _pose(box[0], rng)
    outputs = []
    for frame in range(30):
        noisy = base.copy()
        noisy[:, :2] += rng.normal(0, 3, (17, 2))
        _, smoothed = tracker.update(box, noisy[None], frame, frame / 30)
        assert np.array_equal(smoothed[0, :, 2], noisy[:, 2])
        outputs.append(smoothed[0, :, :2])
    assert np.abs(np.diff(outputs, axis=0)).mean() < 2.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="similarity"):
        PoseTracker(similarity="euclid")
    with pytest.raises(ValueError, match="boxes must be"):
        PoseTracker().update(np.zeros((2, 3)), None, 0, 0.0)
