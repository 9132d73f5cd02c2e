"""Multi-class NMS with exactly the semantics of Paddle's ``multiclass_nms3`` (PaddleDetection ``MultiClassNMS``).

What differs from ``torchvision.ops.nms`` and matters for identical detections:

- candidates need ``score > score_threshold`` (strict), are sorted by score with a *stable* sort
  (equal scores keep their anchor order), and only the first ``nms_top_k`` enter NMS;
- a box is kept when its IoU with every kept box is ``<= nms_threshold`` (a NaN IoU suppresses);
  ``normalized=False`` adds 1 to widths and heights (pixel-inclusive areas), ``True`` does not;
  boxes with ``x2 < x1`` or ``y2 < y1`` have zero area; all arithmetic is float32;
- ``nms_eta < 1`` lowers the threshold by that factor after each kept box while it is above 0.5;
- if more than ``keep_top_k`` boxes survive over all classes, the best ``keep_top_k`` by score
  (stable) are kept; output rows are grouped by class (ascending), best score first.
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_iou_paddle", "multiclass_nms", "pairwise_iou_paddle"]


def box_iou_paddle(box: np.ndarray, others: np.ndarray, normalized: bool = True) -> np.ndarray:
    """IoU of one box with ``others`` ``[K,4]``, computed as Paddle's ``JaccardOverlap`` in float32."""
    box = np.asarray(box, np.float32)
    others = np.asarray(others, np.float32)
    norm = np.float32(0.0 if normalized else 1.0)
    disjoint = (others[:, 0] > box[2]) | (others[:, 2] < box[0]) | (others[:, 1] > box[3]) | (others[:, 3] < box[1])
    inter_w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]) + norm
    inter_h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]) + norm
    inter = inter_w * inter_h
    area = _area(box[None], norm)[0]
    areas = _area(others, norm)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (area + areas - inter)
    return np.where(disjoint, np.float32(0.0), iou).astype(np.float32)


def pairwise_iou_paddle(boxes: np.ndarray, others: np.ndarray | None = None, normalized: bool = True) -> np.ndarray:
    """IoU of each of ``boxes`` ``[B,4]`` with each of ``others`` ``[K,4]`` (default: ``boxes``) as
    ``[B,K]``: row ``i`` is bit-identical to ``box_iou_paddle(boxes[i], others)`` (the same float32
    operations in the same order, elementwise)."""
    boxes = np.asarray(boxes, np.float32)
    others = boxes if others is None else np.asarray(others, np.float32)
    norm = np.float32(0.0 if normalized else 1.0)
    x1, y1, x2, y2 = (boxes[:, k, None] for k in range(4))
    o1, p1, o2, p2 = (others[None, :, k] for k in range(4))
    disjoint = (o1 > x2) | (o2 < x1) | (p1 > y2) | (p2 < y1)
    inter_w = np.minimum(x2, o2) - np.maximum(x1, o1) + norm
    inter_h = np.minimum(y2, p2) - np.maximum(y1, p1) + norm
    inter = inter_w * inter_h
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (_area(boxes, norm)[:, None] + _area(others, norm)[None, :] - inter)
    iou[disjoint] = np.float32(0.0)
    return iou.astype(np.float32, copy=False)


# Candidates whose IoU rows NMS computes at once.
_ROWS_PER_BLOCK = 32


def _area(boxes: np.ndarray, norm: np.float32) -> np.ndarray:
    invalid = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    area = (boxes[:, 2] - boxes[:, 0] + norm) * (boxes[:, 3] - boxes[:, 1] + norm)
    return np.where(invalid, np.float32(0.0), area).astype(np.float32)


def _nms_one_class(
    boxes: np.ndarray,
    scores: np.ndarray,
    score_threshold: np.float32,
    nms_top_k: int,
    nms_threshold: np.float32,
    nms_eta: float,
    normalized: bool,
) -> list[int]:
    candidates = np.flatnonzero(scores > score_threshold)
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    if nms_top_k > -1:
        order = order[:nms_top_k]
    kept: list[int] = []
    if nms_eta >= 1:
        # The threshold never changes: each kept box suppresses, in one vectorized IoU, every later
        # candidate it overlaps by more than the threshold (or with a NaN IoU). The same decisions as
        # checking each candidate against every kept box (IoU is symmetric, float32 op for op), with
        # IoU rows only for the boxes that can still be kept, in blocks.
        suppressed = np.zeros(len(order), bool)
        ordered = boxes[order]
        start = 0
        while start < len(order):
            # IoU rows for the next candidates not suppressed yet, a block at a time (the same
            # float32 bits as one row per box): a photo's ~1000 candidates need ~150 rows, not 1000.
            block = np.flatnonzero(~suppressed[start:])[:_ROWS_PER_BLOCK] + start
            if len(block) == 0:
                break
            first = int(block[0])
            later = ordered[first:]
            overlapping = ~(pairwise_iou_paddle(ordered[block], later, normalized) <= nms_threshold)
            for row, position in enumerate(block):
                if not suppressed[position]:
                    kept.append(int(order[position]))
                    suppressed[position + 1 :] |= overlapping[row, position + 1 - first :]
            start = int(block[-1]) + 1
        return kept
    threshold = nms_threshold
    for index in order:
        if kept:
            overlaps = box_iou_paddle(boxes[index], boxes[kept], normalized)
            if not np.all(overlaps <= threshold):
                continue
        kept.append(int(index))
        if nms_eta < 1 and threshold > 0.5:
            threshold = np.float32(threshold * np.float32(nms_eta))
    return kept


def multiclass_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    score_threshold: float = 0.025,
    nms_top_k: int = 1000,
    keep_top_k: int = 100,
    nms_threshold: float = 0.6,
    normalized: bool = True,
    nms_eta: float = 1.0,
    background_label: int = -1,
) -> np.ndarray:
    """NMS over ``boxes`` ``[M,4]`` (x1, y1, x2, y2) shared by all classes and ``scores`` ``[C,M]``.

    Returns ``[K,6]`` float32 rows ``[class, score, x1, y1, x2, y2]`` in Paddle's output order.
    """
    boxes = np.ascontiguousarray(boxes, np.float32)
    scores = np.ascontiguousarray(scores, np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [M, 4], got {boxes.shape}")
    if scores.ndim != 2 or scores.shape[1] != boxes.shape[0]:
        raise ValueError(f"scores must be [C, M] with M = {boxes.shape[0]}, got {scores.shape}")
    selected: list[tuple[float, int, int]] = []  # (score, class, index), class-major
    for label in range(scores.shape[0]):
        if label == background_label:
            continue
        kept = _nms_one_class(
            boxes,
            scores[label],
            np.float32(score_threshold),
            nms_top_k,
            np.float32(nms_threshold),
            nms_eta,
            normalized,
        )
        selected.extend((float(scores[label, i]), label, i) for i in kept)
    if keep_top_k > -1 and len(selected) > keep_top_k:
        best = sorted(range(len(selected)), key=lambda j: -selected[j][0])[:keep_top_k]  # stable
        by_label: dict[int, list[tuple[float, int, int]]] = {}
        for j in best:
            by_label.setdefault(selected[j][1], []).append(selected[j])
        selected = [row for label in sorted(by_label) for row in by_label[label]]
    out = np.zeros((len(selected), 6), np.float32)
    for row, (_, label, index) in enumerate(selected):
        out[row, 0] = label
        out[row, 1] = scores[label, index]
        out[row, 2:] = boxes[index]
    return out
