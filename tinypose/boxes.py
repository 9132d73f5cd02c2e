"""Person boxes as users and detectors give them, turned into one checked array per image.

One parser serves every place that takes boxes: ``create_model(...).predict(boxes=...)``, the
multi-person pipeline's detector and the evaluation's ``boxes=<detector>``. A detector is any
callable ``detector(image_bgr) -> boxes`` that takes the image as ``cv2.imread`` and PaddleX give
it: uint8 ``[H, W, 3]`` in **BGR** order (:class:`tinypose.detect.PersonDetector` is one).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["Detector", "drop_boxes_outside", "parse_boxes"]

Detector = Callable[[np.ndarray], Any]
"""``detector(image_bgr) -> boxes``: a BGR uint8 ``[H, W, 3]`` image in, anything :func:`parse_boxes`
reads out (an ``[M, 4|5]`` array of ``x1, y1, x2, y2[, score]`` or PaddleX detection dicts)."""


def parse_boxes(
    boxes: Any, source: str, default_score: float | None = math.nan, require_extent: bool = True
) -> np.ndarray:
    """One image's person boxes -> float64 ``[M, 5]`` rows ``x1, y1, x2, y2, score`` in image pixels.

    ``boxes``: an ``[M, 4|5]`` array, tensor or list of ``x1, y1, x2, y2[, score]``; PaddleX detection
    dicts ``{"coordinate": [x1, y1, x2, y2], "score": s}`` (or ``det_score``); a detection result
    holding those under ``"boxes"`` (a mapping, or an object with PaddleX's ``.json``); ``None`` for
    none. A missing score becomes ``default_score`` (``None``: a score is required). Coordinates and
    given scores must be finite; with ``require_extent``, ``x2 > x1`` and ``y2 > y1``. Errors name
    ``source`` (the image) and the box.
    """
    if boxes is None:
        return np.zeros((0, 5))
    if isinstance(getattr(boxes, "json", None), Mapping):
        boxes = boxes.json.get("res", boxes.json)
    if isinstance(boxes, Mapping):
        if "boxes" not in boxes:
            raise ValueError(f"{source}: boxes given as a mapping without 'boxes' (keys: {', '.join(map(str, boxes))})")
        boxes = boxes["boxes"]
    if hasattr(boxes, "detach"):  # a torch tensor, possibly on the GPU
        boxes = boxes.detach().cpu().numpy()
    if isinstance(boxes, np.ndarray):
        if boxes.size == 0:
            return np.zeros((0, 5))
        boxes = boxes.reshape(-1, boxes.shape[-1])  # one flat box, or a leading batch dimension
        checked = _checked_array(boxes, default_score, require_extent)
        if checked is not None:
            return checked
    if isinstance(boxes, (str, bytes)) or not hasattr(boxes, "__iter__"):
        raise ValueError(f"{source}: boxes must be an [M, 4|5] array or a list of boxes, not {type(boxes).__name__}")
    rows = [_parse_box(box, index, source, default_score, require_extent) for index, box in enumerate(boxes)]
    return np.stack(rows) if rows else np.zeros((0, 5))


def _checked_array(boxes: np.ndarray, default_score: float | None, require_extent: bool) -> np.ndarray | None:
    """A numeric ``[M, 4|5]`` array that passes every check, as float64 ``[M, 5]`` in one vectorized step
    (the detector's own output, parsed again by the predictor, costs no Python loop); ``None`` when
    a row fails, so that the row-by-row path reports it."""
    if boxes.dtype.kind not in "fiu" or boxes.shape[1] not in (4, 5):
        return None
    if boxes.shape[1] == 4:
        if default_score is None:
            return None
        rows = np.concatenate([boxes.astype(np.float64), np.full((len(boxes), 1), default_score)], axis=1)
        score_ok = np.ones(len(rows), bool)
    else:
        rows = boxes.astype(np.float64)
        score_ok = np.isfinite(rows[:, 4])
    ok = np.isfinite(rows[:, :4]).all(axis=1) & score_ok
    if require_extent:
        ok &= (rows[:, 2] > rows[:, 0]) & (rows[:, 3] > rows[:, 1])
    return rows if ok.all() else None


def _parse_box(box: Any, index: int, source: str, default_score: float | None, require_extent: bool) -> np.ndarray:
    try:
        if isinstance(box, Mapping):
            if "coordinate" not in box:
                raise ValueError(f"{source}: box {index} is a dict without 'coordinate' (x1, y1, x2, y2)")
            coordinate = np.asarray(box["coordinate"], dtype=np.float64).reshape(-1)
            if len(coordinate) < 4:
                raise ValueError(
                    f"{source}: box {index} has a 'coordinate' of {len(coordinate)} numbers; expected x1, y1, x2, y2"
                )
            score = box.get("score", box.get("det_score"))
            values = [*coordinate[:4], *([] if score is None else [float(score)])]
        else:
            values = list(np.asarray(box, dtype=np.float64).reshape(-1))
            if len(values) not in (4, 5):
                raise ValueError(f"{source}: box {index} has {len(values)} numbers; expected x1, y1, x2, y2[, score]")
    except (TypeError, ValueError) as error:
        if str(error).startswith(f"{source}: "):
            raise
        raise ValueError(f"{source}: box {index} ({box!r:.80}) is not numbers x1, y1, x2, y2[, score]") from error
    score_given = len(values) == 5
    if not score_given:
        if default_score is None:
            raise ValueError(f"{source}: box {index} has no score; expected x1, y1, x2, y2, score")
        values.append(default_score)
    row = np.asarray(values, dtype=np.float64)
    if not np.isfinite(row[:4]).all():
        raise ValueError(f"{source}: box {index} {row[:4].tolist()} has a coordinate that is not finite")
    if score_given and not np.isfinite(row[4]):
        raise ValueError(f"{source}: box {index} has score {row[4]}; expected a finite number")
    if require_extent and (row[2] <= row[0] or row[3] <= row[1]):
        raise ValueError(f"{source}: box {index} {row[:4].tolist()} is not an x1, y1, x2, y2 box with x2 > x1, y2 > y1")
    return row


def drop_boxes_outside(boxes: np.ndarray, width: int, height: int, source: str) -> np.ndarray:
    """The rows of ``boxes`` that overlap the ``width`` x ``height`` image; a warning names each dropped box.

    A box entirely outside the image has nothing to crop: its "person" would be all-zero scores.
    PaddleX's pipeline clips detector boxes to the image and drops those left empty
    (:func:`tinypose.pipeline.clip_boxes`); a box given by the user is dropped the same way, but with
    a warning, so that the missing person is never silent. Boxes that overlap are kept unclipped.
    """
    if len(boxes) == 0:
        return boxes
    inside = (np.minimum(boxes[:, 2], width) > np.maximum(boxes[:, 0], 0)) & (
        np.minimum(boxes[:, 3], height) > np.maximum(boxes[:, 1], 0)
    )
    for index in np.flatnonzero(~inside):
        warnings.warn(
            f"{source}: box {index} {boxes[index, :4].tolist()} lies entirely outside the {width}x{height} image; "
            "dropped (no person is returned for it)",
            stacklevel=2,
        )
    return boxes[inside]
