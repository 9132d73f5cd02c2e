"""MultiClassNMS semantics (Paddle ``multiclass_nms3``), on hand-made cases and against Paddle itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinypose.detect.nms import box_iou_paddle, multiclass_nms, pairwise_iou_paddle

REPO = Path(__file__).resolve().parents[2]


def _boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.asarray(rows, np.float32)


def test_score_threshold_is_strict_and_sort_is_stable() -> None:
    boxes = _boxes((0, 0, 10, 10), (100, 0, 110, 10), (200, 0, 210, 10), (300, 0, 310, 10))
    scores = np.asarray([[0.5, 0.025, 0.7, 0.5]], np.float32)
    out = multiclass_nms(boxes, scores, score_threshold=0.025)
    # 0.025 itself is dropped; the two 0.5 boxes keep their anchor order
    assert out[:, 1].tolist() == pytest.approx([0.7, 0.5, 0.5])
    assert out[:, 2].tolist() == [200, 0, 300]
    assert out[:, 0].tolist() == [0, 0, 0]


def test_equal_scores_keep_the_earlier_anchor() -> None:
    boxes = _boxes((0, 0, 10, 10), (1, 0, 11, 10))
    out = multiclass_nms(boxes, np.full((1, 2), 0.9, np.float32))
    assert out.shape == (1, 6) and out[0, 2] == 0


def test_iou_equal_to_threshold_is_kept() -> None:
    # IoU = 50 / 150 = 1/3 exactly representable enough: compare with the threshold computed the same way
    boxes = _boxes((0, 0, 10, 10), (5, 0, 15, 10))
    iou = box_iou_paddle(boxes[0], boxes[1:])[0]
    scores = np.asarray([[0.9, 0.8]], np.float32)
    assert len(multiclass_nms(boxes, scores, nms_threshold=float(iou))) == 2
    assert len(multiclass_nms(boxes, scores, nms_threshold=float(np.nextafter(iou, np.float32(0))))) == 1


def test_normalized_false_adds_one_pixel() -> None:
    boxes = _boxes((0, 0, 9, 9), (5, 0, 14, 9))
    assert box_iou_paddle(boxes[0], boxes[1:], normalized=True)[0] == pytest.approx(36 / 126)
    assert box_iou_paddle(boxes[0], boxes[1:], normalized=False)[0] == pytest.approx(50 / 150)


def test_degenerate_boxes_follow_paddle() -> None:
    # an inverted box has zero area, but its negative intersection sides multiply to a positive
    # "intersection" (6 x 6) in Paddle: 36 / (100 + 0 - 36); two identical points give 0/0 = NaN,
    # which suppresses the second
    assert box_iou_paddle(_boxes((0, 0, 10, 10))[0], _boxes((8, 8, 2, 2)))[0] == pytest.approx(36 / 64)
    points = _boxes((5, 5, 5, 5), (5, 5, 5, 5))
    assert len(multiclass_nms(points, np.asarray([[0.9, 0.8]], np.float32))) == 1


def test_top_k_before_nms_and_keep_top_k_after() -> None:
    boxes = _boxes(*[(i * 20.0, 0, i * 20.0 + 10, 10) for i in range(6)])
    scores = np.asarray([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.65, 0.05, 0.05, 0.05, 0.05, 0.05]], np.float32)
    out = multiclass_nms(boxes, scores, score_threshold=0.06, nms_top_k=3, keep_top_k=3)
    # class 0 keeps its top 3 (0.6, 0.5, 0.4); class 1 only 0.65; keep_top_k=3 drops 0.4; grouped by class
    assert out[:, 0].tolist() == [0, 0, 1]
    assert out[:, 1].tolist() == pytest.approx([0.6, 0.5, 0.65])


def test_nms_eta_lowers_the_threshold_after_each_kept_box() -> None:
    boxes = _boxes((0, 0, 10, 10), (100, 0, 110, 10), (3, 0, 13, 10))  # IoU(0, 2) = 70/130 = 0.54
    scores = np.asarray([[0.9, 0.8, 0.7]], np.float32)
    assert len(multiclass_nms(boxes, scores, nms_threshold=0.6)) == 3
    assert len(multiclass_nms(boxes, scores, nms_threshold=0.6, nms_eta=0.85)) == 2  # 0.6 -> 0.51 -> 0.43


def test_bad_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="boxes must be"):
        multiclass_nms(np.zeros((3, 5)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="scores must be"):
        multiclass_nms(np.zeros((3, 4)), np.zeros((1, 4)))


def _paddle_python() -> str | None:
    candidates = [os.environ.get("TINYPOSE_PADDLE_PYTHON")]
    candidates += [str(p / "peers" / "bin" / "python") for p in (REPO.parent, REPO.parent.parent)]
    for candidate in candidates:
        if candidate and shutil.which(candidate):
            probe = subprocess.run([candidate, "-c", "import paddle"], check=False, capture_output=True, timeout=120)
            if probe.returncode == 0:
                return candidate
    return None


_PADDLE_SCRIPT = """
import json, sys, numpy as np, paddle
from paddle import _C_ops
paddle.set_device("cpu")
cases = np.load(sys.argv[1])
out = {}
for key in sorted({k[1:] for k in cases.files}):
    boxes = paddle.to_tensor(cases["b" + key][None]); scores = paddle.to_tensor(cases["s" + key][None])
    for p, (st, tk, kk, nt, norm, eta) in enumerate(json.loads(sys.argv[2])):
        res, _, _ = _C_ops.multiclass_nms3(boxes, scores, None, st, tk, kk, nt, norm, eta, -1)
        out[f"{key}_{p}"] = res.numpy()
np.savez(sys.argv[3], **out)
"""


@pytest.mark.slow
def test_matches_paddle_multiclass_nms3_on_random_cases(tmp_path: Path) -> None:
    """Needs a Python with PaddlePaddle (``$TINYPOSE_PADDLE_PYTHON`` or ``../peers``); skipped otherwise."""
    python = _paddle_python()
    if python is None:
        pytest.skip("needs a Python with paddlepaddle (set TINYPOSE_PADDLE_PYTHON)")
    rng = np.random.default_rng(0)
    cases = {}
    for k in range(30):
        count, classes = int(rng.integers(5, 300)), int(rng.integers(1, 4))
        xy = rng.uniform(0, 300, (count, 2))
        wh = rng.uniform(-5, 120, (count, 2))
        if k % 3 == 0:  # duplicates, touching boxes, tied scores
            xy, wh = np.round(xy / 20) * 20, np.round(wh / 10) * 10
        scores = rng.uniform(0, 1, (classes, count))
        if k % 2 == 0:
            scores = np.round(scores * 8) / 8
        cases[f"b{k}"] = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        cases[f"s{k}"] = scores.astype(np.float32)
    np.savez(tmp_path / "cases.npz", **cases)
    params = [(0.025, 1000, 100, 0.6, True, 1.0), (0.3, 50, 20, 0.5, False, 1.0), (0.1, -1, -1, 0.7, True, 0.9)]
    subprocess.run(
        [python, "-c", _PADDLE_SCRIPT, str(tmp_path / "cases.npz"), json.dumps(params), str(tmp_path / "ref.npz")],
        check=True,
        capture_output=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONWARNINGS": "ignore"},
    )
    reference = np.load(tmp_path / "ref.npz")
    for k in range(30):
        for p, (st, tk, kk, nt, norm, eta) in enumerate(params):
            ours = multiclass_nms(cases[f"b{k}"], cases[f"s{k}"], st, tk, kk, nt, norm, eta)
            np.testing.assert_array_equal(ours, reference[f"{k}_{p}"], err_msg=f"case {k}, params {p}")


def _reference_one_class(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Paddle's loop as written: each candidate, best first, against every box kept so far."""
    candidates = np.flatnonzero(scores > np.float32(0.025))
    kept: list[int] = []
    for index in candidates[np.argsort(-scores[candidates], kind="stable")]:
        if not kept or np.all(box_iou_paddle(boxes[index], boxes[kept]) <= np.float32(threshold)):
            kept.append(int(index))
    return kept


@pytest.mark.parametrize("seed", range(5))
def test_vectorized_suppression_equals_the_candidate_loop(seed: int) -> None:
    """The fast path (one IoU per kept box) keeps exactly what the per-candidate loop keeps, on dense
    overlapping boxes with tied scores, inverted and degenerate boxes."""
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0, 60, (400, 2)).astype(np.float32)
    sizes = rng.uniform(-2, 30, (400, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + sizes], 1)
    boxes[:5] = boxes[5]  # identical boxes
    scores = np.round(rng.uniform(0, 1, (1, 400)), 2).astype(np.float32)  # many ties
    for threshold in (0.3, 0.6):
        out = multiclass_nms(boxes, scores, nms_threshold=threshold, nms_top_k=-1, keep_top_k=-1)
        expected = _reference_one_class(boxes, scores[0], threshold)
        np.testing.assert_array_equal(out[:, 2:], boxes[expected])


def test_pairwise_iou_rows_equal_the_one_box_iou_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    corners = rng.uniform(0, 50, (300, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(-3, 25, (300, 2)).astype(np.float32)], 1)
    boxes[:4] = boxes[4]  # identical boxes, and points (0/0 = NaN)
    boxes[10] = boxes[11] = (5, 5, 5, 5)
    for normalized in (True, False):
        matrix = pairwise_iou_paddle(boxes, normalized=normalized)
        for row in range(len(boxes)):
            np.testing.assert_array_equal(matrix[row], box_iou_paddle(boxes[row], boxes, normalized))


@pytest.mark.parametrize("seed", range(3))
def test_iou_rows_in_blocks_keep_what_one_row_at_a_time_keeps(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """NMS computes IoU rows for blocks of candidates; one row at a time keeps the same boxes."""
    from tinypose.detect import nms

    rng = np.random.default_rng(seed)
    corners = rng.uniform(0, 60, (400, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(-2, 30, (400, 2)).astype(np.float32)], 1)
    scores = np.round(rng.uniform(0, 1, (2, 400)), 2).astype(np.float32)
    fast = multiclass_nms(boxes, scores, nms_top_k=-1, keep_top_k=-1)
    monkeypatch.setattr(nms, "_ROWS_PER_BLOCK", 1)
    np.testing.assert_array_equal(multiclass_nms(boxes, scores, nms_top_k=-1, keep_top_k=-1), fast)
