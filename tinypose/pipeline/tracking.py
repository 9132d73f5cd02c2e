"""A simple multi-person tracker for video: greedy matching on box IoU or keypoint OKS.

Each frame's people (boxes, and keypoints once the pose model has run) are matched to the
tracks of earlier frames, best similarity first, established tracks (seen ``confirm_hits`` times)
before new ones, so that a duplicate box for one person (two detections that NMS kept) does not
steal the person's identity; a person keeps the identity of the track it matches, unmatched people
start new tracks, and tracks unseen for ``max_age`` frames end. Each track owns a One-Euro filter
that smooths its keypoints over time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..vocab import COCO_SIGMAS
from .smoothing import OneEuroConfig, OneEuroFilter

__all__ = ["PoseTracker", "Track", "box_iou_matrix", "oks_matrix"]


def box_iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU between every ``x1, y1, x2, y2`` box of ``boxes_a`` ``[A,4+]`` and ``boxes_b`` ``[B,4+]``."""
    a = np.asarray(boxes_a, np.float64)[:, None, :4]
    b = np.asarray(boxes_b, np.float64)[None, :, :4]
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = inter_w * inter_h
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def oks_matrix(
    keypoints_a: np.ndarray,
    keypoints_b: np.ndarray,
    areas_b: np.ndarray,
    sigmas: Sequence[float] | np.ndarray = COCO_SIGMAS,
    score_threshold: float = 0.3,
) -> np.ndarray:
    """COCO object keypoint similarity of ``[A,K,3]`` against ``[B,K,3]`` poses (``x, y, score``).

    Joints count where both scores exceed ``score_threshold``; ``areas_b`` ``[B]`` is the object
    area (box area) of the second set; pairs without a common joint score 0.
    """
    a = np.asarray(keypoints_a, np.float64)[:, None]
    b = np.asarray(keypoints_b, np.float64)[None]
    squared = ((a[..., :2] - b[..., :2]) ** 2).sum(-1)
    variance = (2.0 * np.asarray(sigmas, np.float64)) ** 2
    area = np.asarray(areas_b, np.float64)[None, :, None] + np.finfo(np.float64).eps
    similarity = np.exp(-squared / (2.0 * variance[None, None] * area))
    valid = (a[..., 2] > score_threshold) & (b[..., 2] > score_threshold)
    count = valid.sum(-1)
    return np.where(count > 0, (similarity * valid).sum(-1) / np.maximum(count, 1), 0.0)


@dataclass
class Track:
    """One person followed over frames."""

    track_id: int
    box: np.ndarray
    keypoints: np.ndarray | None
    last_frame: int
    hits: int = 1
    smoother: OneEuroFilter | None = field(default=None, repr=False)


class PoseTracker:
    """Assigns track ids to each frame's people and smooths their keypoints (see module docstring).

    ``similarity``: ``"iou"`` (boxes) or ``"oks"`` (keypoints; falls back to IoU for people without
    keypoints). ``match_threshold``: the least similarity that continues a track. ``smoothing``:
    One-Euro parameters, or ``None`` to leave keypoints as they are.
    """

    def __init__(
        self,
        similarity: str = "iou",
        match_threshold: float = 0.3,
        max_age: int = 30,
        smoothing: OneEuroConfig | None = OneEuroConfig(),
        confirm_hits: int = 3,
    ) -> None:
        if similarity not in ("iou", "oks"):
            raise ValueError(f"similarity must be 'iou' or 'oks', not {similarity!r}")
        if max_age < 1:
            raise ValueError(f"max_age must be >= 1 frame, got {max_age}")
        self.similarity = similarity
        self.match_threshold = float(match_threshold)
        self.max_age = int(max_age)
        self.smoothing = smoothing
        self.confirm_hits = int(confirm_hits)
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget all tracks (e.g. at the start of another video)."""
        self.tracks = []
        self._next_id = 1

    def _similarities(self, boxes: np.ndarray, keypoints: np.ndarray | None) -> np.ndarray:
        track_boxes = np.stack([t.box for t in self.tracks])
        scores = box_iou_matrix(track_boxes, boxes)
        if self.similarity == "oks" and keypoints is not None:
            with_pose = [i for i, t in enumerate(self.tracks) if t.keypoints is not None]
            if with_pose:
                areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
                poses = np.stack([self.tracks[i].keypoints for i in with_pose])  # type: ignore[misc]
                scores[with_pose] = oks_matrix(poses, keypoints, areas)
        return scores

    def _match(self, similarities: np.ndarray) -> list[tuple[int, int]]:
        """Greedy matching, best similarity first: established tracks, then the new ones."""
        established = np.array([t.hits >= self.confirm_hits for t in self.tracks])
        used_tracks: set[int] = set()
        used_people: set[int] = set()
        matches = []
        for stage in (established, ~established):
            pairs = np.argwhere((similarities >= self.match_threshold) & stage[:, None])
            order = np.lexsort((pairs[:, 1], pairs[:, 0], -similarities[pairs[:, 0], pairs[:, 1]]))
            for track, person in pairs[order]:
                if track in used_tracks or person in used_people:
                    continue
                used_tracks.add(int(track))
                used_people.add(int(person))
                matches.append((int(track), int(person)))
        return matches

    def update(
        self, boxes: np.ndarray, keypoints: np.ndarray | None, frame_index: int, timestamp: float
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Track one frame's people: ``boxes`` ``[M,4+]`` (x1, y1, x2, y2, ...), ``keypoints`` ``[M,K,3]``.

        Returns the track id of each person ``[M]`` and the smoothed keypoints ``[M,K,3]`` (scores
        unchanged; ``None`` when no keypoints were given).
        """
        boxes = np.asarray(boxes, np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] < 4:
            raise ValueError(f"boxes must be [M, 4+] (x1, y1, x2, y2, ...), got shape {boxes.shape}")
        count = boxes.shape[0]
        self.tracks = [t for t in self.tracks if frame_index - t.last_frame <= self.max_age]
        matches = self._match(self._similarities(boxes, keypoints)) if self.tracks and count else []
        assigned: dict[int, Track] = {person: self.tracks[track] for track, person in matches}
        for person in range(count):
            if person not in assigned:
                track = Track(self._next_id, boxes[person, :4], None, frame_index, hits=0)
                self._next_id += 1
                self.tracks.append(track)
                assigned[person] = track
        ids = np.zeros(count, np.int64)
        smoothed = None if keypoints is None else np.array(keypoints, np.float64, copy=True)
        for person, track in assigned.items():
            ids[person] = track.track_id
            track.box = boxes[person, :4].copy()
            track.last_frame = frame_index
            track.hits += 1
            if keypoints is not None:
                track.keypoints = np.asarray(keypoints[person], np.float64)
                if self.smoothing is not None and smoothed is not None:
                    if track.smoother is None:
                        track.smoother = OneEuroFilter(self.smoothing)
                    height = max(float(boxes[person, 3] - boxes[person, 1]), 1.0)
                    smoothed[person, :, :2] = track.smoother(track.keypoints[:, :2], timestamp, scale=height)
        return ids, smoothed
