"""Input readers: numpy images, files, http(s) URLs, folders, videos and lists of them -> BGR images.

Images are decoded with OpenCV like PaddleX does (``cv2.imdecode`` of the file bytes, BGR; OpenCV
applies the JPEG EXIF orientation itself, as it does for PaddleX). Conversions, so that every
input becomes an 8-bit 3-channel BGR image:

* grayscale (2-D or one channel) -> replicated to three channels (what ``cv2.IMREAD_COLOR`` does);
* 16-bit -> 8-bit by dropping the low byte (``v >> 8``, what ``cv2.IMREAD_COLOR`` does for PNG);
* with an alpha channel (BGRA/RGBA PNG, WebP, TIFF) -> composited over a white background
  (PaddleX ignores alpha; opaque images give the same pixels either way);
* float arrays -> taken as 0..1 when their maximum is <= 1, else as 0..255, rounded and clipped.

A numpy array is taken as BGR, as ``cv2.imread`` returns it (PaddleX's convention).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "InputError",
    "InputItem",
    "VideoSource",
    "count_inputs",
    "decode_image_bytes",
    "fetch_url",
    "is_url",
    "iter_batches",
    "iter_inputs",
    "list_image_files",
    "prefetch",
    "read_image_file",
    "read_url",
    "to_bgr8",
]

logger = logging.getLogger("tinypose")

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


@dataclass
class VideoSource:
    """A video being read: shared by the results of its frames (fps, size, open output writers)."""

    path: str
    fps: float
    frame_count: int
    width: int
    height: int
    writers: dict[str, Any] = field(default_factory=dict)
    frames_written: dict[str, int] = field(default_factory=dict)
    frames_read: int | None = None
    """Set when the whole video has been read: the number of frames it gave."""

    def finish_complete(self) -> None:
        """Finish the annotated videos that hold every frame (once the video has been read to its end)."""
        for key in [k for k, n in self.frames_written.items() if n == self.frames_read and k in self.writers]:
            self.writers.pop(key).release()

    def close(self) -> None:
        """Finish every annotated video written from this source (``save_to_video``)."""
        for writer in self.writers.values():
            writer.release()
        self.writers.clear()


@dataclass
class InputItem:
    """One image to predict on: the BGR image (None when reading failed) and where it came from."""

    image: np.ndarray | None
    input_path: str | None
    frame_index: int | None = None
    video: VideoSource | None = None
    error: InputError | None = None

    @property
    def name(self) -> str:
        """How errors and progress name this input."""
        if self.input_path is None:
            return "<numpy image>"
        return self.input_path if self.frame_index is None else f"{self.input_path} frame {self.frame_index}"

    def decoded(self) -> np.ndarray:
        """The image; raises this input's read error if it has none (``iter_batches`` yields only read ones)."""
        if self.image is None:
            raise self.error or InputError(self.name, "was not read")
        return self.image


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


def list_image_files(folder: str | Path) -> list[str]:
    """Image files under ``folder`` (recursively, as PaddleX), sorted by path."""
    files: list[str] = []
    for root, _, names in os.walk(folder):
        files.extend(os.path.join(root, n) for n in names if os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES)
    return sorted(files)


def _is_video_file(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_SUFFIXES


def _open_video(path: str) -> tuple[cv2.VideoCapture, VideoSource]:
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise InputError(path, "cannot open as a video")
    fps = capture.get(cv2.CAP_PROP_FPS)
    source = VideoSource(
        path=path,
        fps=fps if fps and math.isfinite(fps) and fps > 0 else 25.0,
        frame_count=int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
    )
    return capture, source


def _iter_video(path: str) -> Iterator[InputItem]:
    capture, source = _open_video(path)
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield InputItem(to_bgr8(frame, f"{path} frame {index}"), path, index, source)
            index += 1
        source.frames_read = index
        source.finish_complete()  # outputs whose last frame was written before the end was seen
        if index == 0:
            raise InputError(path, "video has no readable frames")
    finally:
        capture.release()


def _expand(entry: Any, top_level: bool) -> Iterator[tuple[str, Any]]:
    """Flatten one input into ('array'|'file'|'url'|'video', value) entries; folders are listed."""
    if isinstance(entry, np.ndarray):
        yield "array", entry
    elif isinstance(entry, (str, os.PathLike)):
        text = os.fspath(entry)
        if is_url(text):
            yield "url", text
        elif os.path.isdir(text):
            files = list_image_files(text)
            if not files:
                raise InputError(text, f"folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            for file in files:
                yield "file", file
        elif _is_video_file(text):
            yield "video", text
        else:
            yield "file", text
    elif isinstance(entry, (list, tuple)) and top_level:
        for item in entry:
            yield from _expand_guarded(item)
    else:
        raise InputError(
            repr(entry)[:80],
            f"unsupported input type {type(entry).__name__} (use a numpy image, a path, a URL, a folder, "
            "a video file, or a list of these)",
        )


def _expand_guarded(entry: Any) -> Iterator[tuple[str, Any]]:
    try:
        yield from _expand(entry, top_level=False)
    except InputError as error:
        yield "error", error


def iter_inputs(
    inputs: Any,
    url_timeout: float = DEFAULT_URL_TIMEOUT_S,
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
) -> Iterator[InputItem]:
    """Yield one :class:`InputItem` per image or video frame, in order, reading lazily.

    A bad entry inside a list or folder is yielded as an item with ``error`` set (the caller
    decides whether to stop); a bad single input raises :class:`InputError` at once.
    """
    single = not isinstance(inputs, (list, tuple)) and not (
        isinstance(inputs, (str, os.PathLike)) and os.path.isdir(os.fspath(inputs))
    )
    entries: Iterable[tuple[str, Any]] = _expand(inputs, top_level=True)
    for kind, value in entries:
        if kind == "error":
            yield InputItem(None, value.source, error=value)
            continue
        try:
            if kind == "array":
                yield InputItem(to_bgr8(value), None)
            elif kind == "url":
                yield InputItem(read_url(value, url_timeout, max_download_bytes), value)
            elif kind == "file":
                yield InputItem(read_image_file(value), value)
            else:
                yield from _iter_video(value)
        except InputError as error:
            if single:
                raise
            yield InputItem(None, error.source if kind != "array" else None, error=error)


def iter_batches(
    items: Iterable[InputItem],
    batch_size: int,
    on_error: str = "skip",
    errors: list[InputError] | None = None,
    on_video_done: Callable[[VideoSource], object] | None = None,
) -> Generator[list[tuple[int, InputItem]], None, None]:
    """The readable items of ``items`` in lists of ``batch_size`` ``(position, item)`` pairs.

    ``position`` counts every input, readable or not (it indexes per-image arguments such as boxes).
    An unreadable input is logged, appended to ``errors`` and skipped (``on_error="skip"``) or
    raised (``"raise"``). Once a full batch has been consumed, the annotated outputs of every video
    before the one that batch ended in are finished (and ``on_video_done(video)`` called); those
    still open are finished when the iteration ends or is closed, and ``items`` is closed then too
    (stopping a reader thread).
    """
    videos: list[VideoSource] = []

    def finish_videos(keep: VideoSource | None) -> None:
        for video in [v for v in videos if v is not keep]:
            video.close()
            videos.remove(video)
            if on_video_done is not None:
                on_video_done(video)

    pending: list[tuple[int, InputItem]] = []
    try:
        for position, item in enumerate(items):
            if item.error is not None:
                if on_error == "raise":
                    raise item.error
                if errors is not None:
                    errors.append(item.error)
                logger.warning("skipped %s", item.error)
                continue
            if item.video is not None and (not videos or videos[-1] is not item.video):
                videos.append(item.video)
            pending.append((position, item))
            if len(pending) == batch_size:
                yield pending
                pending = []
                finish_videos(keep=item.video)
        if pending:
            yield pending
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()  # stops a prefetch thread and releases open videos now, not at garbage collection
        finish_videos(keep=None)


def count_inputs(inputs: Any) -> int | None:
    """How many images/frames ``inputs`` will yield (for progress bars), without decoding; None if unknown."""
    total = 0
    try:
        for kind, value in _expand(inputs, top_level=True):
            if kind == "video":
                capture = cv2.VideoCapture(value)
                frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if capture.isOpened() else 0
                capture.release()
                if frames <= 0:
                    return None
                total += frames
            else:
                total += 1
    except InputError:
        return None
    return total


_DONE = object()
T = TypeVar("T")


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, up to ``depth`` ahead, in order.

    Image decoding (OpenCV releases the GIL) then overlaps with the model's forward. Exceptions
    are re-raised in the consumer at the position they happened; closing the returned generator
    stops the thread and closes ``items`` (releasing open videos).
    """
    if depth <= 0:
        yield from items
        return
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not offer((True, item)):
                    break
            else:
                offer((True, _DONE))
        except BaseException as error:  # noqa: BLE001 (handed to the consumer, raised there)
            offer((False, error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="tinypose-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = buffer.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()
