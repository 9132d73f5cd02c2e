"""Outputs written across many results: annotated videos and the per-video JSON file.

The input reader only reads; a :class:`~tinypose.predict.inputs.VideoSource` says how far reading a
video has got. The writers here own their files and follow the video through
:meth:`VideoSource.subscribe`: an annotated video is finished as soon as it holds every frame of a
video read to its end, and in any case when the consumer moves past the video.
"""

from __future__ import annotations

import json
import threading
import weakref
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from .inputs import VideoSource

__all__ = ["VideoJsonWriter", "VideoWriters", "video_writers"]


class VideoWriters:
    """The annotated videos being written from one input video, keyed by their resolved path."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self._writers: dict[str, Any] = {}
        self._frames: dict[str, int] = {}
        self._lock = threading.Lock()  # the reader thread reports the end of a video while frames are written

    def write(self, target: Path, frame: np.ndarray, frames_in_video: int | None) -> None:
        """Append ``frame`` (BGR) to the video at ``target``, opening it on the first frame; finish it
        when it holds ``frames_in_video`` frames (the source's count once read to its end)."""
        key = str(target.resolve())
        with self._lock:
            writer = self._writers.get(key)
            if writer is None:
                if key in self._frames:
                    raise OSError(f"{target}: already finished; write each frame of a video once")
                fourcc = cv2.VideoWriter.fourcc(*("MJPG" if target.suffix.lower() == ".avi" else "mp4v"))
                writer = cv2.VideoWriter(str(target), fourcc, self.fps, (frame.shape[1], frame.shape[0]))
                if not writer.isOpened():
                    raise OSError(f"{target}: OpenCV cannot write this video (try a .mp4 or .avi path)")
                self._writers[key] = writer
                self._frames[key] = 0
            writer.write(frame)
            self._frames[key] += 1
        self.finish_complete(frames_in_video)

    def finish_complete(self, frames_in_video: int | None) -> None:
        """Finish the videos that hold all ``frames_in_video`` frames (``None``: the count is not known yet)."""
        with self._lock:
            for key in [k for k in self._writers if self._frames[k] == frames_in_video]:
                self._writers.pop(key).release()

    def close(self) -> None:
        """Finish every video still open."""
        with self._lock:
            for writer in self._writers.values():
                writer.release()
            self._writers.clear()


_writers: weakref.WeakKeyDictionary[VideoSource, VideoWriters] = weakref.WeakKeyDictionary()
_writers_lock = threading.Lock()


def video_writers(source: VideoSource) -> VideoWriters:
    """The :class:`VideoWriters` of ``source``, created and subscribed to it on first use."""
    with _writers_lock:
        writers = _writers.get(source)
        if writers is None:
            writers = _writers[source] = VideoWriters(source.fps)

            def follow(video: VideoSource) -> None:
                if video.closed:
                    writers.close()
                else:
                    writers.finish_complete(video.frames_read)

            source.subscribe(follow)
        return writers


class VideoJsonWriter:
    """Writes the frames of each video to ``<video stem>_res.json`` as they come (memory stays flat).

    The file is ``{"input_path", "fps", "frames": [{"frame_index", "kpts" | "boxes"}, ...]}``: every
    key and value is encoded by :mod:`json`, and the fixed envelope around them is written as text, so
    the file is valid JSON whatever the path holds. It is complete once the video's last frame has
    been added and :meth:`flush` runs.
    """

    def __init__(self, output: Path) -> None:
        self.output = output
        self.source: VideoSource | None = None
        self.file: TextIO | None = None
        self.count = 0
        self.written: list[Path] = []

    def add(self, source: VideoSource, frame: dict[str, Any]) -> None:
        """Append one frame's JSON-ready dict (``frame_index`` and the people) to the file of ``source``."""
        if source is not self.source:
            self.flush()
            self.file = self._open(source)
            self.source, self.count = source, 0
        assert self.file is not None
        text = json.dumps(frame, indent=4, ensure_ascii=False)
        self.file.write(("," if self.count else "") + "\n" + "\n".join("        " + line for line in text.splitlines()))
        self.count += 1

    def _open(self, source: VideoSource) -> TextIO:
        stem = Path(source.path).stem
        target = self.output / f"{stem}_res.json"
        number = 2
        while target in self.written:
            target = self.output / f"{stem}_{number}_res.json"
            number += 1
        file = target.open("w", encoding="utf-8")
        path, fps = json.dumps(source.path, ensure_ascii=False), json.dumps(source.fps)
        file.write(f'{{\n    "input_path": {path},\n    "fps": {fps},\n    "frames": [')
        self.written.append(target)
        return file

    def flush(self) -> None:
        """Close the current video's file (its JSON is complete from then on)."""
        if self.file is None:
            return
        self.file.write("\n    ]\n}\n")
        self.file.close()
        self.source, self.file = None, None
