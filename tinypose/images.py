"""Images in: decoding files, bytes, URLs and arrays into 8-bit 3-channel BGR, with clear errors.

Images are decoded with OpenCV like PaddleX does (``cv2.imdecode`` of the file bytes, BGR; OpenCV
applies the JPEG EXIF orientation itself, as it does for PaddleX). Conversions, so that every
input becomes an 8-bit 3-channel BGR image:

* grayscale (2-D or one channel) -> replicated to three channels (what ``cv2.IMREAD_COLOR`` does);
* 16-bit -> 8-bit by dropping the low byte (``v >> 8``, what ``cv2.IMREAD_COLOR`` does for PNG);
* with an alpha channel (BGRA/RGBA PNG, WebP, TIFF) -> composited over a white background
  (PaddleX ignores alpha; opaque images give the same pixels either way);
* float arrays -> taken as 0..1 when their maximum is <= 1, else as 0..255, rounded and clipped.

A numpy array is taken as BGR, as ``cv2.imread`` returns it (PaddleX's convention). A leaf module:
the person detector, the predictor's input reader and the service all read images through it, and
both networks' inputs are normalized by :func:`normalize_bgr8`.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_URL_TIMEOUT_S",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "InputError",
    "decode_image_bytes",
    "fetch_url",
    "is_url",
    "normalize_bgr8",
    "read_image_file",
    "read_url",
    "to_bgr8",
]

IMAGE_SUFFIXES = (
    ".bmp", ".dib", ".jpeg", ".jpg", ".jpe", ".png", ".webp", ".pbm", ".pgm", ".ppm", ".pnm",
    ".sr", ".ras", ".tiff", ".tif",
)  # fmt: skip
"""Image files picked up from folders (PaddleX's list plus ``.jpe``)."""
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
"""Files read frame by frame with ``cv2.VideoCapture``."""

DEFAULT_URL_TIMEOUT_S = 20.0
DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024


class InputError(ValueError):
    """An input that cannot be read; the message names the input and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


def is_url(text: str) -> bool:
    """True for ``http://`` and ``https://`` addresses."""
    return text.lower().startswith(("http://", "https://"))


def _composite_over_white(bgra: np.ndarray, full: float) -> np.ndarray:
    color = bgra[..., :3].astype(np.float32)
    alpha = bgra[..., 3:4].astype(np.float32) / full
    return color * alpha + full * (1.0 - alpha)


def to_bgr8(image: np.ndarray, source: str = "<numpy image>") -> np.ndarray:
    """Any supported image array -> contiguous uint8 HxWx3 BGR (conversions in the module docstring)."""
    if not isinstance(image, np.ndarray):
        raise InputError(source, f"expected a numpy image, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise InputError(
            source,
            f"array of shape {image.shape} is not an image (expected HxW, HxWx1, HxWx3 BGR or HxWx4 BGRA; "
            "pass several images as a list)",
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(source, f"empty image of shape {image.shape}")
    if image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    if image.dtype == np.uint8:
        full = 255.0
    elif image.dtype == np.uint16:
        full = 65535.0
    elif np.issubdtype(image.dtype, np.floating):
        finite_max = float(np.nanmax(image)) if image.size else 0.0
        full = 1.0 if finite_max <= 1.0 else 255.0
    elif np.issubdtype(image.dtype, np.integer):
        full = 255.0
    else:
        raise InputError(source, f"unsupported image dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 4:
        image = _composite_over_white(image, full)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        scaled = np.nan_to_num(image.astype(np.float32) * (255.0 / full))
        image = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image)


def _may_have_alpha(data: bytes) -> bool:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return len(data) > 25 and (data[25] in (4, 6) or b"tRNS" in data[:4096])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    return data[:4] in (b"II*\x00", b"MM\x00*")


def decode_image_bytes(data: bytes, source: str) -> np.ndarray:
    """Decode encoded image bytes with OpenCV into uint8 BGR (EXIF orientation applied by OpenCV)."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR) if buffer.size else None
    if image is None:
        raise InputError(source, "not an image OpenCV can decode")
    if _may_have_alpha(data):
        with_alpha = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
        if with_alpha is not None and with_alpha.ndim == 3 and with_alpha.shape[2] == 4:
            image = with_alpha
    return to_bgr8(image, source)


def read_image_file(path: str | Path) -> np.ndarray:
    """Read an image file (any OpenCV format) as uint8 BGR; clear errors for missing/unreadable files."""
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "no such file or folder")
    if path.is_dir():
        raise InputError(str(path), "is a folder, not an image file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(str(path), f"cannot read: {error.strerror or error}") from error
    if not data:
        raise InputError(str(path), "empty file")
    return decode_image_bytes(data, str(path))


def fetch_url(url: str, timeout: float = DEFAULT_URL_TIMEOUT_S, max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES) -> bytes:
    """Download ``url`` in about ``timeout`` seconds at most (connect, each read, and in total) and at
    most ``max_bytes`` bytes; every failure is an :class:`InputError` naming the URL."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": "tinypose"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise InputError(url, f"download is {int(length)} bytes, larger than the limit of {max_bytes} bytes")
            chunks, size = [], 0
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise InputError(url, f"download timed out after {timeout:g} s")
                chunk = response.read1(min(1 << 16, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise InputError(url, f"download is larger than the limit of {max_bytes} bytes")
            return b"".join(chunks)
    except InputError:
        raise
    except urllib.error.HTTPError as error:
        raise InputError(url, f"HTTP error {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, (TimeoutError, socket.timeout)):
            raise InputError(url, f"download timed out after {timeout:g} s") from error
        raise InputError(url, f"cannot download: {error.reason}") from error
    except TimeoutError as error:
        raise InputError(url, f"download timed out after {timeout:g} s") from error
    except (OSError, ValueError) as error:
        raise InputError(url, f"cannot download: {error}") from error


def read_url(
    url: str, timeout: float = DEFAULT_URL_TIMEOUT_S, max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
) -> np.ndarray:
    """Download and decode an image URL (bounded in time and size) as uint8 BGR."""
    data = fetch_url(url, timeout, max_bytes)
    if not data:
        raise InputError(url, "the server sent no data")
    try:
        return decode_image_bytes(data, url)
    except InputError as error:
        head = data[:64].lstrip().lower()
        kind = "an HTML page" if head.startswith((b"<!doctype html", b"<html")) else f"{len(data)} bytes"
        raise InputError(url, f"not an image (got {kind} that OpenCV cannot decode)") from error


def normalize_bgr8(pixels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """uint8 BGR ``[..., H, W, 3]`` -> float32 RGB ``[..., 3, H, W]``, each value looked up in ``table``
    ``[3 (RGB), 256]``. A table that holds a normalization's result for every byte value gives that
    normalization's exact bits with one gather per element instead of several passes over the
    pixels: the pose model's crops and the person detector's input are normalized this way."""
    out = np.empty((*pixels.shape[:-3], 3, *pixels.shape[-3:-1]), np.float32)
    for channel in range(3):  # RGB channel c is BGR channel 2 - c
        out[..., channel, :, :] = table[channel][pixels[..., 2 - channel]]
    return out
