"""Heatmap codec (MMPose style): one object per model spec, shared by predict, evaluate and export.

Decoding reproduces PaddleX's ``KptPostProcess(use_dark=True)`` and PaddleDetection's
``HRNetPostProcess`` (the top-down keypoint post-processing both use), vectorized over every joint of
every person:

1. optional flip merge: mirror the flipped heatmaps back, swap left/right joints, shift one column
   to the right (column 0 kept), average with the plain heatmaps;
2. argmax per joint; the score is the raw heatmap maximum (no sigmoid); coordinates are zeroed
   where the maximum is ``<= 0`` (and still transformed);
3. DARK (Zhang et al., CVPR 2020): 3x3 Gaussian blur of the zero-padded map (OpenCV's kernel
   ``[1/4, 1/2, 1/4]`` for ``sigma = 0``), rescaled to the original maximum, ``log(max(., 1e-10))``,
   then one Newton step from first (+-1) and second (+-2) neighbour differences where
   ``1 < x < W - 2`` and ``1 < y < H - 2``;
4. inverse of the plain width-only affine of each box (:func:`tinypose.crop.transform_preds`).

Arithmetic is done in the same dtypes as upstream (float32 maps, float64 blur and matrices), so
results agree with PaddleX to float32 rounding.

Encoding (training targets) is PaddleDetection's ``ToHeatmapsTopDown_DARK``, the TinyPose recipe's:
unnormalized Gaussians of the spec's sigma at the unrounded keypoint / stride, and joint weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from .crop import transform_preds

__all__ = ["HeatmapCodec", "dark_refine", "encode_gaussian", "flip_merge", "gaussian_blur_3x3", "get_max_preds"]


def flip_merge(
    heatmaps: np.ndarray, heatmaps_flipped: np.ndarray, flip_pairs: tuple[tuple[int, int], ...], shift: bool = True
) -> np.ndarray:
    """Average ``heatmaps`` [N,K,H,W] with the heatmaps of the W-mirrored input, mapped back.

    The flipped maps are mirrored along W, left/right joints in ``flip_pairs`` swapped, and (if
    ``shift``, as PaddleX does for PP-TinyPose) shifted right by one column keeping column 0.
    """
    num_joints = heatmaps.shape[1]
    partner = np.arange(num_joints)
    for left, right in flip_pairs:
        partner[left], partner[right] = right, left
    back = heatmaps_flipped[:, partner, :, ::-1]
    if shift:
        back = np.concatenate([back[..., :1], back[..., :-1]], axis=-1)
    return ((heatmaps + back) * np.float32(0.5)).astype(np.float32, copy=False)


def get_max_preds(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax per joint: float32 coordinates [N,K,2] (zeroed where the max <= 0) and maxima [N,K,1]."""
    n, k, _, width = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    index = flat.argmax(axis=2)
    maxvals = np.take_along_axis(flat, index[..., None], axis=2)
    coords = np.stack([index % width, index // width], axis=-1).astype(np.float32)
    coords *= (maxvals > 0.0).astype(np.float32)
    return coords, maxvals


def gaussian_blur_3x3(heatmaps: np.ndarray) -> np.ndarray:
    """Blur every map [..., H, W] as upstream: zero-pad by one, ``cv2.GaussianBlur(k=3, sigma=0)`` in float64, crop.

    All maps are stacked, each with its own zero border, into one tall image and blurred by a
    single OpenCV call; the blur of a kept pixel only reaches its own map and border, so this is
    the per-map loop of PaddleX/PaddleDetection in one call. Returns float64.
    """
    *lead, height, width = heatmaps.shape
    maps = heatmaps.reshape(-1, height, width)
    if maps.shape[0] == 0:
        return np.zeros(heatmaps.shape, dtype=np.float64)
    padded = np.zeros((maps.shape[0], height + 2, width + 2), dtype=np.float64)
    padded[:, 1:-1, 1:-1] = maps
    tall = cv2.GaussianBlur(padded.reshape(-1, width + 2), (3, 3), 0)
    return tall.reshape(padded.shape)[:, 1:-1, 1:-1].reshape(*lead, height, width)


def dark_refine(heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """DARK sub-pixel refinement of argmax ``coords`` [N,K,2] on ``heatmaps`` [N,K,H,W]; returns new float32 coords."""
    n, k, height, width = heatmaps.shape
    coords = coords.astype(np.float32, copy=True)
    if n == 0:
        return coords
    heatmaps = heatmaps.astype(np.float32, copy=False)
    origin_max = heatmaps.max(axis=(2, 3), keepdims=True)
    blurred = gaussian_blur_3x3(heatmaps).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        blurred *= origin_max / blurred.max(axis=(2, 3), keepdims=True)
        log_maps = np.log(np.maximum(blurred, np.float32(1e-10)))

    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    inside = (px > 1) & (px < width - 2) & (py > 1) & (py < height - 2)
    px, py = np.clip(px, 2, max(width - 3, 2)), np.clip(py, 2, max(height - 3, 2))
    flat = log_maps.reshape(n, k, -1)

    def at(dy: int, dx: int) -> np.ndarray:
        index = np.clip((py + dy) * width + (px + dx), 0, height * width - 1)
        return np.take_along_axis(flat, index[..., None], axis=2)[..., 0]

    center = at(0, 0)
    dx = np.float32(0.5) * (at(0, 1) - at(0, -1))
    dy = np.float32(0.5) * (at(1, 0) - at(-1, 0))
    dxx = np.float32(0.25) * (at(0, 2) - np.float32(2) * center + at(0, -2))
    dxy = np.float32(0.25) * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    dyy = np.float32(0.25) * (at(2, 0) - np.float32(2) * center + at(-2, 0))
    determinant = dxx * dyy - dxy**2
    refine = inside & (determinant != 0)
    if not refine.any():
        return coords
    hessian = np.stack([np.stack([dxx, dxy], -1), np.stack([dxy, dyy], -1)], -2)[refine]
    gradient = np.stack([dx, dy], -1)[refine][..., None]
    try:
        inverse = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:  # numerically singular although det != 0: closed form instead
        det = determinant[refine][:, None, None]
        inverse = (
            np.stack(
                [
                    np.stack([hessian[:, 1, 1], -hessian[:, 0, 1]], -1),
                    np.stack([-hessian[:, 1, 0], hessian[:, 0, 0]], -1),
                ],
                -2,
            )
            / det
        )
    coords[refine] += -(inverse @ gradient)[..., 0]
    return coords


class CodecSpec(Protocol):
    """What the codec reads from a model variant (:class:`tinypose.models.ModelSpec` is one)."""

    @property
    def input_size(self) -> tuple[int, int]: ...

    @property
    def heatmap_size(self) -> tuple[int, int]: ...

    @property
    def sigma(self) -> float: ...

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]: ...


@dataclass(frozen=True)
class HeatmapCodec:
    """Keypoint heatmap codec of one model variant: ``encode`` (targets) and ``decode`` (module docstring).

    ``input_size``/``heatmap_size`` are ``(width, height)``. ``shift_flipped`` is PaddleX's
    ``shift_heatmap`` (on for PP-TinyPose); ``use_dark`` is always on upstream for these models.
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float
    flip_pairs: tuple[tuple[int, int], ...]
    shift_flipped: bool = True
    use_dark: bool = True

    @classmethod
    def from_spec(cls, spec: CodecSpec, **overrides: object) -> HeatmapCodec:
        """The codec of a registered model variant (sizes, sigma and flip pairs from the spec)."""
        fields: dict[str, object] = {
            "input_size": spec.input_size,
            "heatmap_size": spec.heatmap_size,
            "sigma": spec.sigma,
            "flip_pairs": spec.flip_pairs,
            **overrides,
        }
        return cls(**fields)  # type: ignore[arg-type]

    def flip_merge(self, heatmaps: np.ndarray, heatmaps_flipped: np.ndarray) -> np.ndarray:
        """Merge plain and flipped-input heatmaps [N,K,H,W] (mirror back, swap pairs, shift, average)."""
        return flip_merge(heatmaps, heatmaps_flipped, self.flip_pairs, self.shift_flipped)

    def decode(
        self,
        heatmaps: np.ndarray,
        centers: np.ndarray,
        scales: np.ndarray,
        heatmaps_flipped: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps [N,K,H,W] + boxes -> keypoints [N,K,3] float32 ``(x, y, score)`` and ``kpt_score`` [N].

        ``centers``/``scales`` [N,2] are in image **pixels** (PaddleX convention; PaddleDetection's
        evaluation passes ``scale * 200``). If ``heatmaps_flipped`` is given, the maps are merged
        first. Scores are raw heatmap maxima; ``kpt_score`` is their mean over joints.
        """
        heatmaps = np.asarray(heatmaps, dtype=np.float32)
        if heatmaps_flipped is not None:
            heatmaps = self.flip_merge(heatmaps, np.asarray(heatmaps_flipped, dtype=np.float32))
        coords, maxvals = get_max_preds(heatmaps)
        if self.use_dark:
            coords = dark_refine(heatmaps, coords)
        height, width = heatmaps.shape[2:]
        preds = transform_preds(coords, np.asarray(centers), np.asarray(scales), (width, height)).astype(np.float32)
        keypoints = np.concatenate([preds.reshape(coords.shape), maxvals], axis=-1)
        return keypoints, maxvals[..., 0].mean(axis=1)

    def encode(self, keypoints: np.ndarray, visibility: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training targets for one crop: keypoints [K,2] in input pixels, visibility [K] in {0, 1}.

        Returns unnormalized Gaussian heatmaps [K,H,W] float32 (peak 1 at the keypoint, ``sigma`` in
        heatmap pixels) and joint weights [K,1] float32, as PaddleDetection's
        ``ToHeatmapsTopDown_DARK`` (the TinyPose recipe): the keypoint is divided by the stride
        ``input_size / heatmap_size`` without rounding; a joint's weight is its visibility, and 0
        when its 3-sigma window lies entirely off the map.
        """
        return encode_gaussian(keypoints, visibility, self.input_size, self.heatmap_size, self.sigma)


def encode_gaussian(
    keypoints: np.ndarray,
    visibility: np.ndarray,
    input_size: tuple[int, int],
    heatmap_size: tuple[int, int],
    sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized ``ToHeatmapsTopDown_DARK`` (see :meth:`HeatmapCodec.encode`); same float64 arithmetic."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    num_joints = keypoints.shape[0]
    width, height = heatmap_size
    stride = np.array(input_size) / np.array(heatmap_size)
    weight = np.asarray(visibility, dtype=np.float32).reshape(num_joints, 1).copy()
    mu = keypoints[:, :2].astype(np.float64) / stride
    radius = sigma * 3
    upper_left = np.trunc(mu - radius)
    bottom_right = np.trunc(mu + radius + 1)
    outside = (
        (upper_left[:, 0] >= width) | (upper_left[:, 1] >= height) | (bottom_right[:, 0] < 0) | (bottom_right[:, 1] < 0)
    )
    draw = ~outside & (weight[:, 0] > 0.5)
    weight[outside] = 0
    target = np.zeros((num_joints, height, width), dtype=np.float32)
    if draw.any():
        x = np.arange(0, width, 1, dtype=np.float32).astype(np.float64)
        y = np.arange(0, height, 1, dtype=np.float32).astype(np.float64)
        dx2 = (x[None, None, :] - mu[draw, 0, None, None]) ** 2
        dy2 = (y[None, :, None] - mu[draw, 1, None, None]) ** 2
        target[draw] = np.exp(-(dx2 + dy2) / (2 * sigma**2))
    return target, weight
