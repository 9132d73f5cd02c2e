"""Calibration data for INT8 post-training quantization (the quantizer itself:
:func:`tinypose.runtimes.openvino.quantize_openvino`, NNCF).

Calibration crops are made from the user's images exactly as the predictor makes them for a whole
image (PaddleX's affine warp and normalization), each with its mirror image (the flip test's input).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from ..crop import get_affine_transform, warp_affine, whole_image_center_scale
from ..images import IMAGE_SUFFIXES, read_image_file
from ..models.tinypose import ModelSpec

__all__ = ["DEFAULT_CALIBRATION_IMAGES", "calibration_batch", "calibration_files", "files_sha256"]

logger = logging.getLogger("tinypose")

DEFAULT_CALIBRATION_IMAGES = 64
"""At most this many images (sorted by name, evenly spread) calibrate the activation ranges."""


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


def calibration_batch(spec: ModelSpec, files: list[Path]) -> np.ndarray:
    """Normalized float32 RGB crops ``[2N, 3, H, W]``: each whole image as the predictor crops it, and its mirror."""
    width, height = spec.input_size
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    crops = []
    for file in files:
        image = read_image_file(file)
        center, scale = whole_image_center_scale(image.shape[1], image.shape[0])
        crop = warp_affine(image, get_affine_transform(center, scale, 0, (width, height)), (width, height))
        rgb = crop[:, :, ::-1].astype(np.float32) * np.float32(1.0 / 255.0)
        normalized = ((rgb - mean) / std).transpose(2, 0, 1)
        crops += [normalized, normalized[:, :, ::-1]]
    return np.ascontiguousarray(np.stack(crops), dtype=np.float32)
