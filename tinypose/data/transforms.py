"""Top-down training augmentation and crops, as PaddleDetection's TinyPose recipe does them.

``ppdet/data/transform/keypoint_operators.py``, in the order of ``configs/keypoint/tiny_pose``'s
``TrainReader``: ``RandomFlipHalfBodyTransform`` (half body, scale, rotation, flip),
``AugmentationbyInformantionDropping`` (one cut-out disc near a visible joint, drawn on the full
image), ``TopDownAffine(use_udp=True)``; targets then come from the codec's ``encode``.
Random numbers are drawn from a ``numpy.random.RandomState`` in exactly upstream's order, so the
same seed gives the same sample as PaddleDetection (the tests check this against the real code).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import cv2
import numpy as np

from ..crop import PIXEL_STD, get_udp_warp_matrix, get_warp_matrix, warp_affine

__all__ = ["AugmentConfig", "TrainSample", "augment", "cutout", "read_image", "udp_crop"]


@dataclass(frozen=True)
class AugmentConfig:
    """The recipe's augmentation settings (``tinypose_{128x96,256x192}.yml`` defaults).

    ``random_flip`` is the training augmentation (PaddleDetection's ``RandomFlipHalfBodyTransform``
    ``flip``); ``flip`` elsewhere in tinypose means the flip *test* (a crop and its mirror image
    decoded together, PaddleX's ``flip``).
    """

    random_flip: bool = True
    """Horizontal flip with probability 0.5 (fixed upstream), swapping ``flip_pairs``."""
    scale_factor: float = 0.25
    """Box scale x clip(N(1, scale_factor), 1 - f, 1 + f)."""
    rot_factor: float = 30.0
    """Rotation clip(N(0, rot_factor), -2f, 2f) degrees ..."""
    rot_prob: float = 0.6
    """... applied with this probability."""
    half_body_prob: float = 0.3
    num_joints_half_body: int = 8
    """Half body only for persons with more visible joints than this."""
    upper_body_ids: tuple[int, ...] = tuple(range(11))
    half_body_padding: float = 1.5
    cutout_prob: float = 0.5
    cutout_offset_factor: float = 0.05
    cutout_patches: int = 1
    pixel_std: float = PIXEL_STD

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> AugmentConfig:
        """The config of a Hydra/YAML mapping (``data.augment``). The old key ``flip``, when set, still
        works: it sets ``random_flip`` (with a warning). An unknown key is an error that names it."""
        values = dict(options or {})
        old = values.pop("flip", None)
        if old is not None:
            if not isinstance(old, bool):
                raise ValueError(f"augment.flip (old name of augment.random_flip) must be true or false, not {old!r}")
            warnings.warn(
                "augment.flip is the old name of augment.random_flip (the training flip; `flip` is the flip test); "
                f"using random_flip={old}",
                DeprecationWarning,
                stacklevel=2,
            )
            values["random_flip"] = old
        if "upper_body_ids" in values:
            values["upper_body_ids"] = tuple(values["upper_body_ids"])
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(
                f"unknown augment option(s) {', '.join(unknown)}; known: {', '.join(f.name for f in fields(cls))}"
            )
        return cls(**values)


@dataclass
class TrainSample:
    """A warped training crop and its keypoints in crop pixels."""

    image: np.ndarray
    """uint8 RGB [H, W, 3] of the model input size."""
    keypoints: np.ndarray
    """float32 [K, 2] in crop pixels."""
    visibility: np.ndarray
    """float32 [K] in {0, 1}."""
    center: np.ndarray = field(repr=False)
    scale: np.ndarray = field(repr=False)
    rotation: float = 0.0


def read_image(path: str, bgr: bool = False) -> np.ndarray:
    """Decode an image as RGB uint8 (BGR with ``bgr=True``) the way PaddleDetection does (OpenCV, EXIF
    orientation ignored)."""
    image = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise FileNotFoundError(f"{path}: cannot read the image (missing or not an image file)")
    return image if bgr else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _half_body(
    keypoints: np.ndarray,
    visibility: np.ndarray,
    config: AugmentConfig,
    aspect_ratio: float,
    rng: np.random.RandomState,
) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """``halfbody_transform``: a box around the upper or lower visible joints (upstream's ``randn() < 0.5``)."""
    upper: list[np.ndarray] = []
    lower: list[np.ndarray] = []
    for joint_id in range(keypoints.shape[0]):
        if visibility[joint_id] > 0:
            (upper if joint_id in config.upper_body_ids else lower).append(keypoints[joint_id])
    if rng.randn() < 0.5 and len(upper) > 2:
        selected = upper
    else:
        selected = lower if len(lower) > 2 else upper
    if len(selected) < 2:
        return None, None
    joints = np.array(selected, dtype=np.float32)
    center = joints.mean(axis=0)[:2]
    left_top = np.amin(joints, axis=0)
    right_bottom = np.amax(joints, axis=0)
    w = right_bottom[0] - left_top[0]
    h = right_bottom[1] - left_top[1]
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / config.pixel_std, h * 1.0 / config.pixel_std], dtype=np.float32)
    return center, scale * config.half_body_padding


def cutout(
    image: np.ndarray,
    keypoints: np.ndarray,
    visibility: np.ndarray,
    input_width: int,
    config: AugmentConfig,
    rng: np.random.RandomState,
) -> np.ndarray:
    """``AugmentationbyInformantionDropping``: zero discs of radius U(0.1, 0.2) x input width near visible joints.

    Upstream draws on the full image (the radius is in *image* pixels, a fraction of the model
    input width); pixels are selected with the same arithmetic, evaluated only in the disc's window.
    """
    height, width = image.shape[:2]
    visible = np.flatnonzero(visibility > 0)
    candidates = np.repeat(visible, 2)  # upstream: np.where over the [K, 3] (v, v, 0) array
    for _ in range(config.cutout_patches):
        if candidates.size == 0:
            break
        joint = rng.choice(candidates)
        center = keypoints[joint, 0:2] + rng.randn(2) * input_width * config.cutout_offset_factor
        radius = rng.uniform(0.1, 0.2) * input_width
        x0 = max(int(np.floor(center[0] - radius)) - 1, 0)
        x1 = min(int(np.ceil(center[0] + radius)) + 2, width)
        y0 = max(int(np.floor(center[1] - radius)) - 1, 0)
        y1 = min(int(np.ceil(center[1] + radius)) + 2, height)
        if x0 >= x1 or y0 >= y1:
            continue
        xs, ys = np.meshgrid(np.arange(x0, x1), np.arange(y0, y1))
        x_offset = (center[0] - xs) / radius
        y_offset = (center[1] - ys) / radius
        distance = x_offset**2 + y_offset**2
        window = image[y0:y1, x0:x1]
        window[(distance <= 1) & (distance >= 0)] = 0
    return image


def augment(
    image: np.ndarray,
    keypoints: np.ndarray,
    visibility: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    input_size: tuple[int, int],
    flip_pairs: tuple[tuple[int, int], ...],
    config: AugmentConfig,
    rng: np.random.RandomState,
) -> TrainSample:
    """One training crop: half body, scale, rotation, flip, cut-out, then the UDP warp.

    ``image`` is the full RGB image (not modified), ``keypoints`` [K, 2] and ``visibility`` [K] in
    image pixels, ``center``/``scale`` the person box (scale in ``pixel_std`` units).
    """
    aspect_ratio = input_size[0] * 1.0 / input_size[1]
    keypoints = np.asarray(keypoints, np.float32).copy()
    visibility = np.asarray(visibility, np.float32).copy()
    c, s = np.array(center, np.float32), np.array(scale, np.float32)

    if np.sum(visibility) > config.num_joints_half_body and rng.rand() < config.half_body_prob:
        c_half, s_half = _half_body(keypoints, visibility, config, aspect_ratio, rng)
        if c_half is not None and s_half is not None:
            c, s = c_half, s_half
    sf, rf = config.scale_factor, config.rot_factor
    s = s * np.clip(rng.randn() * sf + 1, 1 - sf, 1 + sf)
    r = np.clip(rng.randn() * rf, -rf * 2, rf * 2) if rng.random_sample() <= config.rot_prob else 0

    if config.random_flip and rng.random_sample() <= 0.5:
        image = image[:, ::-1, :]
        keypoints[:, 0] = image.shape[1] - keypoints[:, 0] - 1
        for left, right in flip_pairs:
            keypoints[[left, right]] = keypoints[[right, left]]
            visibility[[left, right]] = visibility[[right, left]]
        keypoints *= visibility[:, None]
        c[0] = image.shape[1] - c[0] - 1

    if rng.rand() < config.cutout_prob:
        image = cutout(np.array(image), keypoints, visibility, input_size[0], config, rng)

    matrix = get_warp_matrix(r, c * 2.0, [input_size[0] - 1.0, input_size[1] - 1.0], s * config.pixel_std)
    crop = warp_affine(np.ascontiguousarray(image), matrix, input_size)
    # upstream's warp_affine_joints: homogeneous float32 points times the float32 matrix
    warped = np.dot(np.concatenate((keypoints, keypoints[:, 0:1] * 0 + 1), axis=1), matrix.T)
    return TrainSample(crop, warped.astype(np.float32), visibility, c, s, float(r))


def udp_crop(
    image: np.ndarray, center: np.ndarray, scale: np.ndarray, input_size: tuple[int, int], pixel_std: float = PIXEL_STD
) -> np.ndarray:
    """The evaluation crop: ``TopDownAffine(use_udp=True)`` without rotation (scale in ``pixel_std`` units)."""
    matrix = get_udp_warp_matrix(center, np.asarray(scale) * pixel_std, input_size)
    return warp_affine(image, matrix, input_size)
