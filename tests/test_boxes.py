"""tinypose.boxes.parse_boxes: the one reader of person boxes for predict, the pipeline and evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tinypose.boxes import parse_boxes


def test_every_accepted_form_gives_the_same_rows() -> None:
    expected = np.array([[10.0, 20.0, 110.0, 220.0, 0.9], [5.0, 6.0, 7.0, 8.0, 0.4]])
    as_dicts = [{"coordinate": [10, 20, 110, 220], "score": 0.9}, {"coordinate": [5, 6, 7, 8], "det_score": 0.4}]
    for boxes in (
        expected,
        expected.tolist(),
        expected[None],  # a leading batch dimension of one
        torch.from_numpy(expected),
        as_dicts,
        {"boxes": as_dicts},  # a detection result
        type("Result", (), {"json": {"res": {"boxes": as_dicts}}})(),  # PaddleX's result object
    ):
        np.testing.assert_array_equal(parse_boxes(boxes, "img.jpg"), expected)
    np.testing.assert_array_equal(parse_boxes(expected[0], "img.jpg"), expected[:1])  # one flat box


def test_missing_scores_and_no_boxes() -> None:
    assert math.isnan(parse_boxes([[1, 2, 3, 4]], "img.jpg")[0, 4])
    assert parse_boxes([[1, 2, 3, 4]], "img.jpg", default_score=1.0)[0, 4] == 1.0
    for empty in (None, [], np.zeros((0, 4)), np.zeros((0, 5))):
        assert parse_boxes(empty, "img.jpg").shape == (0, 5)
    degenerate = parse_boxes([[10, 10, 5, 40, 0.5]], "img.jpg", require_extent=False)
    assert degenerate[0].tolist() == [10, 10, 5, 40, 0.5]


@pytest.mark.parametrize(
    ("boxes", "options", "message"),
    [
        ([[1, 2, 3]], {}, r"img\.jpg: box 0 has 3 numbers; expected x1, y1, x2, y2\[, score\]"),
        ([[1, 2, 3, 4], ["a", 1, 2, 3]], {}, r"img\.jpg: box 1 .* is not numbers"),
        (5, {}, r"img\.jpg: boxes must be .* not int"),
        ([{"x": 1}], {}, r"img\.jpg: box 0 is a dict without 'coordinate'"),
        ([{"coordinate": [1, 2]}], {}, r"img\.jpg: box 0 has a 'coordinate' of 2 numbers"),
        ([[10, 10, 5, 40]], {}, r"img\.jpg: box 0 .* x2 > x1"),
        ([[0, 0, math.inf, 4]], {}, r"img\.jpg: box 0 .* not finite"),
        ([[0, 0, 3, 4, math.nan]], {}, r"img\.jpg: box 0 has score nan"),
        ([[0, 0, 3, 4]], {"default_score": None}, r"img\.jpg: box 0 has no score"),
        ({"people": []}, {}, r"img\.jpg: boxes given as a mapping without 'boxes'"),
    ],
)
def test_bad_boxes_name_the_image_and_the_box(boxes, options, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_boxes(boxes, "img.jpg", **options)
