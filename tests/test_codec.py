"""Codec decode against PaddleX's and PaddleDetection's own post-processing outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinypose import get_spec
from tinypose.codec import HeatmapCodec, dark_refine, flip_merge, get_max_preds

CODEC = HeatmapCodec.from_spec(get_spec("PP-TinyPose_128x96"))


@pytest.mark.parametrize("flip", [False, True])
def test_decode_matches_paddlex_on_its_own_heatmaps(fixtures_dir, flip: bool) -> None:
    e2e = fixtures_dir / "paddlex_e2e"
    arrays = np.load(e2e / "paddlex_intermediates.npz")
    for entry in json.loads((e2e / f"paddlex_flip{int(flip)}.json").read_text()):
        name = entry["input_path"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        keypoints, kpt_score = CODEC.decode(
            arrays[f"{name}_heatmap"],
            arrays[f"{name}_center"][None],
            arrays[f"{name}_scale"][None],
            arrays[f"{name}_heatmap_flippedinput"] if flip else None,
        )
        reference = np.array(entry["kpts"][0]["keypoints"], dtype=np.float64)
        assert keypoints.dtype == np.float32 and keypoints.shape == (1, 17, 3)
        np.testing.assert_allclose(keypoints[0, :, :2], reference[:, :2], atol=1e-3, rtol=0)
        np.testing.assert_allclose(keypoints[0, :, 2], reference[:, 2], atol=1e-6, rtol=0)
        assert abs(float(kpt_score[0]) - entry["kpts"][0]["kpt_score"]) < 1e-6


def test_decode_matches_paddledetection_eval_path(fixtures_dir) -> None:
    """PaddleDetection's flip test + DARK on demo_3 (359x423) with scale = (w, h) / 200."""
    forward = np.load(fixtures_dir / "forward_128x96.npz")
    heatmaps = forward["input2_heatmap"]
    scale_std = np.array([[359, 423]], dtype=np.float32) / 200
    keypoints, kpt_score = CODEC.decode(heatmaps[:1], np.array([[179.5, 211.5]]), scale_std * 200, heatmaps[1:])
    np.testing.assert_allclose(keypoints, forward["input2_ppdet_flip_keypoints"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(kpt_score, forward["input2_ppdet_flip_scores"][:, 0], atol=1e-6)


def test_flip_merge_mirrors_swaps_and_shifts_one_column() -> None:
    heatmaps = np.zeros((1, 17, 4, 5), dtype=np.float32)
    flipped = np.zeros_like(heatmaps)
    flipped[0, 1, 2, 3] = 4.0  # left eye seen at x=3 in the mirrored crop
    merged = flip_merge(heatmaps, flipped, CODEC.flip_pairs)
    # mirrored back: x = 5-1-3 = 1, moved to the right eye (2), shifted right to x = 2, halved
    assert merged[0, 2, 2, 2] == 2.0 and np.count_nonzero(merged) == 1
    flipped[0, 0, 1, 4] = 6.0  # nose at the mirrored crop's right edge -> x=0, kept in column 0 and 1
    merged = flip_merge(heatmaps, flipped, CODEC.flip_pairs)
    assert merged[0, 0, 1, 0] == merged[0, 0, 1, 1] == 3.0


def test_argmax_zeroes_coordinates_of_non_positive_maxima() -> None:
    heatmaps = np.full((1, 2, 4, 5), -1.0, dtype=np.float32)
    heatmaps[0, 0, 3, 2] = 0.5
    heatmaps[0, 1, 1, 4] = -0.25
    coords, maxvals = get_max_preds(heatmaps)
    np.testing.assert_array_equal(coords[0], [[2, 3], [0, 0]])
    np.testing.assert_array_equal(maxvals[0, :, 0], [0.5, -0.25])


@pytest.mark.parametrize("true_xy", [(10.3, 14.8), (5.5, 20.25), (17.9, 9.1)])
def test_dark_recovers_the_subpixel_peak_of_a_gaussian(true_xy: tuple[float, float]) -> None:
    """DARK's premise: on a Gaussian heatmap the Newton step lands on the true peak (sigma 2 here)."""
    ys, xs = np.mgrid[0:32, 0:24]
    heatmap = np.exp(-((xs - true_xy[0]) ** 2 + (ys - true_xy[1]) ** 2) / (2 * 2.0**2)).astype(np.float32)
    heatmaps = np.stack([heatmap, heatmap * 0.5])[None]
    coords, _ = get_max_preds(heatmaps)
    refined = dark_refine(heatmaps, coords)
    np.testing.assert_allclose(refined[0], [true_xy, true_xy], atol=0.1)
    assert np.abs(refined - np.array(true_xy)).max() < np.abs(coords - np.array(true_xy)).max() or (
        np.abs(coords - np.array(true_xy)).max() < 0.1
    )


def test_dark_leaves_border_peaks_unrefined() -> None:
    heatmaps = np.zeros((2, 1, 32, 24), dtype=np.float32)
    heatmaps[0, 0, 1, 10] = 1.0  # y = 1: not 1 < y
    heatmaps[1, 0, 10, 22] = 1.0  # x = 22 = W - 2: not x < W - 2
    coords, _ = get_max_preds(heatmaps)
    np.testing.assert_array_equal(dark_refine(heatmaps, coords), coords)
    assert dark_refine(np.zeros((0, 17, 32, 24), np.float32), np.zeros((0, 17, 2), np.float32)).shape == (0, 17, 2)
