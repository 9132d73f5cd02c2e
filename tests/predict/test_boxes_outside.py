"""A person box entirely outside the image is dropped with a warning, never returned as an all-zero
"person" (issue 9); PaddleX's pipeline drops boxes that are empty after clipping the same way."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tinypose.pipeline import clip_boxes


def test_box_outside_the_image_is_dropped_with_a_warning(predictors, e2e_dir: Path) -> None:
    image = cv2.imread(str(e2e_dir / "images" / "demo_3.jpg"))
    height, width = image.shape[:2]
    inside = [10, 10, width // 2, height // 2, 0.9]
    overlapping = [width - 20, height - 20, width + 50, height + 80, 0.8]  # kept, unclipped
    outside = [width + 10, 0, width + 90, height, 0.7]
    with pytest.warns(UserWarning, match=r"box 1 \[.*\] lies entirely outside the \d+x\d+ image; dropped"):
        result = next(predictors[False].predict(image, boxes=[inside, outside, overlapping]))
    assert [person["coordinate"] for person in result["kpts"]] == [inside[:4], overlapping[:4]]
    assert all(person["kpt_score"] > 0 for person in result["kpts"])
    expected = clip_boxes(np.asarray([inside, outside, overlapping], dtype=float), width, height)
    assert len(expected) == len(result["kpts"]), "the same boxes PaddleX's clip_boxes keeps"
