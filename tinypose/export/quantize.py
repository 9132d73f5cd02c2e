"""Calibration data for INT8 post-training quantization (the quantizer itself:
:func:`tinypose.runtimes.openvino.quantize_openvino`, NNCF).

Calibration data is what the network sees when it is deployed: person crops made from the user's
images exactly as the pipeline makes them (the person detector's boxes, clipped to the image, padded
to the model's aspect ratio, PaddleX's affine warp and normalization), each with its mirror image
(the flip test's input). An image where the detector finds nobody is cropped whole, as the predictor
crops an image without boxes. Whole-image crops alone (no detector) measured 0.05-0.09 AP worse on
coco_dev than person crops (docs/export.md).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..crop import box_xyxy_to_center_scale, get_affine_transform, warp_affine, whole_image_center_scale
from ..images import IMAGE_SUFFIXES, read_image_file
from ..models.tinypose import ModelSpec

__all__ = [
    "DEFAULT_CALIBRATION_IMAGES",
    "MAX_CALIBRATION_CROPS",
    "calibration_batch",
    "calibration_files",
    "files_sha256",
]

logger = logging.getLogger("tinypose")

DEFAULT_CALIBRATION_IMAGES = 300
"""At most this many images (sorted by name, evenly spread) calibrate the activation ranges."""

MAX_CALIBRATION_CROPS = 300
"""At most this many crops (mirrors included, evenly spread) go to the quantizer (NNCF's usual subset size)."""

Detector = Callable[[np.ndarray], np.ndarray]
"""``detector(image_bgr) -> [K, 4|5]`` person boxes ``x1, y1, x2, y2[, score]`` in image pixels."""


def calibration_files(folder: str | Path, max_images: int = DEFAULT_CALIBRATION_IMAGES) -> list[Path]:
    """Image files of ``folder`` (sorted; at most ``max_images``, evenly spread); a one-line
    ``ValueError`` when the folder is missing or holds no image."""
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"calibration images {path}: no such folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"calibration images {path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it")
    if len(files) > max_images:
        picks = np.linspace(0, len(files) - 1, max_images).round().astype(int)
        files = [files[i] for i in picks]
    return files


def files_sha256(files: list[Path]) -> str:
    """sha256 over the names and bytes of ``files`` (the key of a cached INT8 model)."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b";")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def calibration_batch(
    spec: ModelSpec, files: list[Path], detector: Detector | None = None, max_crops: int = MAX_CALIBRATION_CROPS
) -> np.ndarray:
    """Normalized float32 RGB crops ``[N, 3, H, W]``, each followed by its mirror: one per person box
    ``detector`` finds in each image (clipped to the image; the whole image when it finds none), or
    the whole images without a detector; at most ``max_crops`` (evenly spread pairs)."""
    width, height = spec.input_size
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    crops = []
    for file in files:
        image = read_image_file(file)
        for center, scale in _crop_boxes(image, detector, spec.aspect_ratio):
            crop = warp_affine(image, get_affine_transform(center, scale, 0, (width, height)), (width, height))
            rgb = crop[:, :, ::-1].astype(np.float32) * np.float32(1.0 / 255.0)
            normalized = ((rgb - mean) / std).transpose(2, 0, 1)
            crops.append((normalized, normalized[:, :, ::-1]))
    if 2 * len(crops) > max_crops:
        picks = np.linspace(0, len(crops) - 1, max(1, max_crops // 2)).round().astype(int)
        crops = [crops[i] for i in picks]
    return np.ascontiguousarray(np.stack([crop for pair in crops for crop in pair]), dtype=np.float32)


def _crop_boxes(
    image: np.ndarray, detector: Detector | None, aspect_ratio: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Centers and scales of the crops of one image: the detector's boxes clipped to the image (empty
    ones dropped, as PaddleX's pipeline does), padded as the predictor pads a box; else the whole image."""
    height, width = image.shape[:2]
    boxes = np.zeros((0, 4), np.float32) if detector is None else np.asarray(detector(image), np.float32)
    if len(boxes):
        boxes = boxes[:, :4].copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    if not len(boxes):
        return [whole_image_center_scale(width, height)]
    return [box_xyxy_to_center_scale(box, aspect_ratio) for box in boxes]
