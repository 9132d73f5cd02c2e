"""Top-down crop geometry: person box -> (center, scale) -> affine matrix -> warped crop.

Written once and shared by prediction, evaluation, training and export. Two conventions exist
upstream and both are kept, because published numbers depend on each:

* **PaddleX** (``paddlex/inference/models/keypoint_detection`` and the
  ``human_keypoint_detection`` pipeline): ``scale`` is the box size in **pixels**. The module uses
  the whole image as the box (:func:`whole_image_center_scale`), the pipeline pads detector boxes
  (:func:`box_xyxy_to_center_scale`).
* **PaddleDetection** evaluation/training (``ppdet/data/source/keypoint_coco.py``): ``scale`` is in
  units of ``pixel_std = 200`` pixels (:func:`box_xywh_to_center_scale`); callers multiply by
  ``pixel_std`` before building a matrix.

Matrices follow OpenCV's 2x3 convention (``dst = M @ [x, y, 1]``). :func:`get_affine_transform`
is PaddleDetection's plain transform, which looks at the box **width only** (the height that is
covered follows from the output aspect ratio); :func:`get_warp_matrix` is the UDP transform of
``TopDownAffine(use_udp=True)``. Both are built with the same dtypes and the same
``cv2.getAffineTransform`` call as upstream, so that ``cv2.warpAffine`` rounds identically.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "PIXEL_STD",
    "affine_transform_points",
    "box_xywh_to_center_scale",
    "box_xyxy_to_center_scale",
    "clean_coco_box",
    "get_affine_transform",
    "get_udp_warp_matrix",
    "get_warp_matrix",
    "transform_preds",
    "warp_affine",
    "whole_image_center_scale",
]

PIXEL_STD = 200.0
"""PaddleDetection's unit of ``scale`` in evaluation and training (pixels per scale unit)."""

ArrayLike2 = Sequence[float] | np.ndarray


def whole_image_center_scale(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """PaddleX module box: center ``(w/2, h/2)`` unrounded, scale ``(w, h)`` pixels, no padding.

    ``TopDownAffine.apply`` with no center/scale given: ``imshape / 2.0`` (float64) and ``imshape``
    (integers).
    """
    image_shape = np.array([width, height])
    return image_shape / 2.0, image_shape


def box_xyxy_to_center_scale(
    box: ArrayLike2, aspect_ratio: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """PaddleX pipeline box (``_box_xyxy2cs``): xyxy -> center, scale in **pixels**.

    The box is widened or heightened to ``aspect_ratio`` (input width / height), then multiplied by
    ``padding``. Extra entries after the first four (e.g. a score) are ignored.
    """
    x1, y1, x2, y2 = (float(v) for v in list(box)[:4])
    center = np.array([x1 + x2, y1 + y2]) * 0.5
    w, h = x2 - x1, y2 - y1
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) * padding


def clean_coco_box(bbox_xywh: ArrayLike2, width: int, height: int) -> tuple[float, float, float, float] | None:
    """PaddleDetection's COCO box cleaning: clip to the image, ``w - 1`` convention.

    Returns the cleaned ``(x1, y1, w, h)`` or ``None`` when the box is empty after clipping
    (``x2 < x1`` or ``y2 < y1``; the caller also drops annotations with ``area <= 0``).
    """
    x, y, w, h = (float(v) for v in list(bbox_xywh)[:4])
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 < x1 or y2 < y1:
        return None
    return x1, y1, x2 - x1, y2 - y1


def box_xywh_to_center_scale(
    box: ArrayLike2, aspect_ratio: float, padding: float = 1.25, pixel_std: float = PIXEL_STD
) -> tuple[np.ndarray, np.ndarray]:
    """PaddleDetection ``_box2cs``: xywh -> float32 center ``x + w/2`` and scale in ``pixel_std`` units.

    Aspect fixed to ``aspect_ratio`` then x``padding``. Multiply ``scale`` by ``pixel_std`` to get
    pixels for :func:`get_affine_transform` / :func:`get_udp_warp_matrix` / the codec's decode.
    """
    x, y, w, h = (float(v) for v in list(box)[:4])
    center = np.zeros(2, dtype=np.float32)
    center[0] = x + w * 0.5
    center[1] = y + h * 0.5
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / pixel_std, h * 1.0 / pixel_std], dtype=np.float32)
    return center, scale * padding


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` rotated 90 degrees anticlockwise about ``b`` (float32, as upstream)."""
    direction = a - b
    return b + np.array([-direction[1], direction[0]], dtype=np.float32)


def get_affine_transform(
    center: ArrayLike2,
    scale: ArrayLike2 | float,
    rot: float,
    output_size: ArrayLike2,
    shift: ArrayLike2 = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """PaddleDetection/PaddleX plain affine: box ``scale`` (pixels) around ``center`` -> ``output_size``.

    Only ``scale[0]`` (the box width) is used: it maps onto ``output_size[0]``; the vertical extent
    follows from the output aspect ratio. ``rot`` in degrees. ``inv=True`` gives output -> image.
    Returns a float64 2x3 matrix computed by ``cv2.getAffineTransform`` from float32 points.
    """
    if np.isscalar(scale):
        scale = np.array([scale, scale], dtype=np.float32)
    scale = np.asarray(scale)
    shift = np.asarray(shift)
    center = np.asarray(center)
    src_w = scale[0]
    dst_w, dst_h = output_size[0], output_size[1]
    rot_rad = np.pi * rot / 180
    sin, cos = np.sin(rot_rad), np.cos(rot_rad)
    # (0, -src_w/2) rotated by rot
    src_dir = [0.0 * cos - (src_w * -0.5) * sin, 0.0 * sin + (src_w * -0.5) * cos]
    dst_dir = np.array([0.0, dst_w * -0.5])

    src = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center + scale * shift
    src[1, :] = center + src_dir + scale * shift
    src[2, :] = _third_point(src[0, :], src[1, :])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    dst[2, :] = _third_point(dst[0, :], dst[1, :])
    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def get_warp_matrix(theta: float, size_input: ArrayLike2, size_dst: ArrayLike2, size_target: ArrayLike2) -> np.ndarray:
    """UDP matrix (Huang et al., CVPR 2020) as PaddleDetection/MMPose ``get_warp_matrix``; float32 2x3.

    ``size_input``: ``2 * center``; ``size_dst``: output size minus one (``[w - 1, h - 1]``);
    ``size_target``: box size in pixels; ``theta`` in degrees.
    """
    theta = np.deg2rad(theta)
    cos, sin = np.cos(theta), np.sin(theta)
    scale_x = size_dst[0] / size_target[0]
    scale_y = size_dst[1] / size_target[1]
    matrix = np.zeros((2, 3), dtype=np.float32)
    matrix[0, 0] = cos * scale_x
    matrix[0, 1] = -sin * scale_x
    matrix[0, 2] = scale_x * (-0.5 * size_input[0] * cos + 0.5 * size_input[1] * sin + 0.5 * size_target[0])
    matrix[1, 0] = sin * scale_y
    matrix[1, 1] = cos * scale_y
    matrix[1, 2] = scale_y * (-0.5 * size_input[0] * sin - 0.5 * size_input[1] * cos + 0.5 * size_target[1])
    return matrix


def get_udp_warp_matrix(center: ArrayLike2, scale: ArrayLike2, output_size: ArrayLike2, rot: float = 0.0) -> np.ndarray:
    """``TopDownAffine(use_udp=True)``'s call: ``get_warp_matrix(rot, 2*center, output_size - 1, scale)``.

    ``scale`` in pixels (PaddleDetection passes ``scale * 200``).
    """
    return get_warp_matrix(
        rot, np.asarray(center) * 2.0, [output_size[0] - 1.0, output_size[1] - 1.0], np.asarray(scale)
    )


def warp_affine(image: np.ndarray, matrix: np.ndarray, output_size: ArrayLike2) -> np.ndarray:
    """``cv2.warpAffine`` with bilinear interpolation and a constant 0 border, exactly as PaddleX.

    ``output_size`` is ``(width, height)``. OpenCV releases round the bilinear weights differently
    (5.0 vs 5.1: one grey level on ~10% of values), so results are identical only with the same
    OpenCV as the reference.
    """
    return cv2.warpAffine(
        image,
        matrix,
        (int(output_size[0]), int(output_size[1])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def affine_transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 matrix to points ``[..., 2]`` (or a stack ``[N, 2, 3]`` to ``[N, ..., 2]``) in float64."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim == 2:
        return points @ matrix[:, :2].T + matrix[:, 2]
    flat = points.reshape(points.shape[0], -1, 2)
    out = np.einsum("npj,nij->npi", flat, matrix[:, :, :2]) + matrix[:, None, :, 2]
    return out.reshape(points.shape)


def transform_preds(
    coords: np.ndarray, centers: np.ndarray, scales: np.ndarray, heatmap_size: ArrayLike2
) -> np.ndarray:
    """Heatmap coordinates ``[N, K, 2]`` -> image pixels with the inverse plain affine of each box.

    ``centers``/``scales`` are ``[N, 2]`` in pixels (PaddleDetection's evaluation passes
    ``scale * 200``). Returns float64; upstream stores the result back into float32.
    """
    coords = np.asarray(coords)
    matrices = (
        np.stack([get_affine_transform(c, s, 0, heatmap_size, inv=True) for c, s in zip(centers, scales)])
        if len(coords)
        else np.zeros((0, 2, 3))
    )
    return affine_transform_points(coords[..., :2], matrices)
