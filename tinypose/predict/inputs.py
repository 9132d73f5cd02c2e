"""Input readers: numpy images, files, http(s) URLs, folders, videos and lists of them -> BGR images.

Decoding and the conversions to 8-bit BGR are :mod:`tinypose.images` (re-exported here); this module
expands inputs (folders, lists, videos frame by frame), batches them, skips or raises on bad ones
and reads ahead in a thread. It reads only: what is written (pictures, annotated videos, JSON) is
the writer side's (:mod:`tinypose.predict.result`, :mod:`tinypose.predict.writers`), which follows
a video's progress through :meth:`VideoSource.subscribe`.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from ..images import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_URL_TIMEOUT_S,
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    InputError,
    decode_image_bytes,
    fetch_url,
    is_url,
    read_image_file,
    read_url,
    to_bgr8,
)

__all__ = [
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_URL_TIMEOUT_S",
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


@dataclass(eq=False)
class VideoSource:
    """A video being read, shared by the results of its frames: where it is, fps and size, and how far
    reading it has got. Compared and hashed by identity (one object per opened video).

    Whatever is written from its frames (annotated videos, per-video JSON) belongs to the writer
    side, which :meth:`subscribe` s to be told when the video has been read to its end
    (:attr:`frames_read` set) and when the consumer has moved past it (:attr:`closed`).
    """

    path: str
    fps: float
    frame_count: int
    width: int
    height: int
    frames_read: int | None = None
    """Set when the whole video has been read: the number of frames it gave."""
    closed: bool = False
    """Set once every batch holding its frames has been consumed (or the iteration stopped)."""
    _listeners: list[Callable[[VideoSource], None]] = field(default_factory=list, repr=False)

    def subscribe(self, listener: Callable[[VideoSource], None]) -> None:
        """Call ``listener(self)`` when the video has been read to its end and when it is closed."""
        self._listeners.append(listener)

    def finish_reading(self, frames: int) -> None:
        """Record that reading reached the end after ``frames`` frames, and tell the listeners."""
        self.frames_read = frames
        for listener in list(self._listeners):
            listener(self)

    def close(self) -> None:
        """The consumer is done with this video: tell the listeners (once) and forget them."""
        if self.closed:
            return
        self.closed = True
        for listener in list(self._listeners):
            listener(self)
        self._listeners.clear()


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
        source.finish_reading(index)  # outputs whose last frame was written before the end was seen finish now
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
    held: list[VideoSource] | None = None,
) -> Generator[list[tuple[int, InputItem]], None, None]:
    """The readable items of ``items`` in lists of ``batch_size`` ``(position, item)`` pairs.

    ``position`` counts every input, readable or not (it indexes per-image arguments such as boxes).
    An unreadable input is logged, appended to ``errors`` and skipped (``on_error="skip"``) or
    raised (``"raise"``). Once a full batch has been consumed, the annotated outputs of every video
    before the one that batch ended in are finished (and ``on_video_done(video)`` called); those
    still open are finished when the iteration ends or is closed, and ``items`` is closed then too
    (stopping a reader thread).

    ``held``: for a consumer that works one batch behind what it has taken (it prepares the next batch
    while the current one runs): every video of the last batch taken stays open when the next is
    asked for, and when the iteration runs out the videos still open are appended to ``held``
    instead of being finished, for the consumer to :meth:`~VideoSource.close` (and pass to
    ``on_video_done``) once it has used their last batch. A stopped iteration finishes them all.
    """
    videos: list[VideoSource] = []
    exhausted = False

    def finish_videos(keep: VideoSource | None, spare: frozenset[int] = frozenset()) -> None:
        for video in [v for v in videos if v is not keep and id(v) not in spare]:
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
                taken, pending = pending, []
                if held is None:
                    finish_videos(keep=item.video)
                else:  # the consumer still has to run the batch just taken
                    kept = frozenset(id(entry.video) for _, entry in taken if entry.video is not None)
                    finish_videos(keep=None, spare=kept)
        if pending:
            yield pending
        exhausted = True
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()  # stops a prefetch thread and releases open videos now, not at garbage collection
        if held is not None and exhausted:
            held.extend(videos)
        else:
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
_Batch = TypeVar("_Batch")
_Prepared = TypeVar("_Prepared")
_Out = TypeVar("_Out")


def prefetch(items: Iterable[Any], depth: int = 2) -> Iterator[Any]:
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


def run_overlapped(
    batches: Iterator[_Batch], prepare: Callable[[_Batch], _Prepared], finish: Callable[[_Prepared], Iterable[_Out]]
) -> Iterator[_Out]:
    """``finish(prepare(batch))`` for each batch, with ``prepare`` of batch i+1 running in a worker thread
    while ``finish`` of batch i runs in the caller's: what ``finish`` yields comes out in input order,
    and an error (from ``batches`` or ``prepare``) after everything before it, as in a plain loop.

    ``batches`` is taken one ahead of what has been finished: give :func:`iter_batches` ``held=``.
    """
    worker = ThreadPoolExecutor(1, thread_name_prefix="tinypose-prepare")
    in_flight: Future[_Prepared] | None = None
    try:
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except Exception:
                if in_flight is not None:  # the batch taken before the error first
                    yield from finish(in_flight.result())
                raise
            job = worker.submit(prepare, batch)
            if in_flight is not None:
                yield from finish(in_flight.result())
            in_flight = job
        if in_flight is not None:
            yield from finish(in_flight.result())
    finally:
        worker.shutdown(wait=True, cancel_futures=True)
