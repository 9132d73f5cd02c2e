"""Skeleton drawing: limbs and joints over the image, sized to the image so it reads at any scale."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["DEFAULT_DRAW_THRESHOLD", "draw_keypoints", "line_width_for"]

DEFAULT_DRAW_THRESHOLD = 0.3
"""Joints whose score (raw heatmap value) is below this are left out of the picture."""

_LEFT, _RIGHT, _CENTER = (0, 165, 255), (255, 128, 0), (80, 220, 80)  # BGR: orange, blue, green


def line_width_for(height: int, width: int) -> int:
    """Limb thickness in pixels: about 0.5% of the longer side, at least 1."""
    return max(1, int(round(max(height, width) * 0.005)))


def _side_color(index: int, names: Sequence[str] | None) -> tuple[int, int, int]:
    if names is None or index >= len(names):
        return _CENTER
    name = names[index]
    return _LEFT if name.startswith("left") else _RIGHT if name.startswith("right") else _CENTER


def draw_keypoints(
    image_bgr: np.ndarray,
    people: Sequence[np.ndarray],
    skeleton: Sequence[tuple[int, int]],
    keypoint_names: Sequence[str] | None = None,
    threshold: float = DEFAULT_DRAW_THRESHOLD,
    boxes: Sequence[Sequence[float] | None] | None = None,
) -> np.ndarray:
    """Return a copy of ``image_bgr`` with each person's skeleton (``[K, 3]`` x, y, score) drawn.

    Limbs are drawn only when both joints reach ``threshold``; left limbs orange, right blue,
    the rest green; joints as filled dots with a dark outline. ``boxes`` (xyxy per person) are
    drawn as thin rectangles.
    """
    canvas = image_bgr.copy()
    height, width = canvas.shape[:2]
    thickness = line_width_for(height, width)
    radius = thickness + max(1, thickness // 2)
    shift = 4  # sub-pixel drawing: coordinates x16
    scale = 1 << shift

    def point(xy: np.ndarray) -> tuple[int, int]:
        x, y = np.clip(xy, -1e5, 1e5)
        return int(round(float(x) * scale)), int(round(float(y) * scale))

    for box in boxes or []:
        if box is None:
            continue
        x1, y1, x2, y2 = (float(v) for v in list(box)[:4])
        cv2.rectangle(
            canvas,
            point(np.array([x1, y1])),
            point(np.array([x2, y2])),
            (255, 255, 255),
            max(1, thickness // 2),
            cv2.LINE_AA,
            shift,
        )
    for keypoints in people:
        keypoints = np.asarray(keypoints, dtype=np.float64)
        visible = np.isfinite(keypoints).all(axis=1) & (keypoints[:, 2] >= threshold)
        for a, b in skeleton:
            if a < len(keypoints) and b < len(keypoints) and visible[a] and visible[b]:
                color = (
                    _side_color(a, keypoint_names)
                    if _side_color(a, keypoint_names) == _side_color(b, keypoint_names)
                    else _CENTER
                )
                cv2.line(canvas, point(keypoints[a, :2]), point(keypoints[b, :2]), color, thickness, cv2.LINE_AA, shift)
        for index in np.flatnonzero(visible):
            center = point(keypoints[index, :2])
            cv2.circle(canvas, center, (radius + 1) * scale, (40, 40, 40), -1, cv2.LINE_AA, shift)
            cv2.circle(canvas, center, radius * scale, _side_color(int(index), keypoint_names), -1, cv2.LINE_AA, shift)
    return canvas
