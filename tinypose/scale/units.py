"""What a batch job has to do: inputs (folders, globs, manifests, videos) expanded into work units.

A unit is one image file, or a run of frames of one video (``frames_per_unit`` frames, the last one
open-ended so that a wrong frame count in a video's header loses nothing). Each unit has a ``key``
that names it in the output (:mod:`tinypose.scale.shards` records the keys of the units a shard
holds), so a re-run knows what is done. Planning reads no pixels: it lists files and reads video
headers only. Needs nothing beyond the base install.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2

from ..images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, InputError, is_url
from ..predict.inputs import list_image_files

__all__ = ["MANIFEST_SUFFIXES", "WorkUnit", "expand_inputs", "plan_units"]

MANIFEST_SUFFIXES = (".txt", ".lst")
"""An input with one of these suffixes is a manifest: one path per line (relative paths are relative
to the manifest's folder), blank lines and lines starting with ``#`` skipped."""

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class WorkUnit:
    """One image (``start == -1``) or the frames ``start <= i < stop`` of one video (``stop == -1``: to
    its end). ``key`` is unique within a job: the path, plus ``#start-stop`` for a video."""

    key: str
    path: str
    start: int = -1
    stop: int = -1

    @property
    def is_video(self) -> bool:
        """True for a run of video frames."""
        return self.start >= 0

    def as_row(self) -> dict[str, Any]:
        """The unit as a plain dict (a row of the Ray dataset of units)."""
        return asdict(self)


def _is_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_SUFFIXES


def _manifest(path: Path) -> Iterator[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(str(path), f"manifest cannot be read ({error})") from None
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            yield entry if os.path.isabs(entry) else str(path.parent / entry)


def expand_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Every image or video file named by ``inputs``, in order, each once: a file, a folder (its image
    and video files, recursively, sorted), a glob pattern (``photos/**/*.jpg``, sorted), a manifest
    (:data:`MANIFEST_SUFFIXES`), or a list of these. A missing file stays in the list (its unit becomes
    an error row); a folder, glob or manifest that names nothing is an :class:`InputError`."""
    entries = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    found: list[str] = []
    for entry in entries:
        text = os.fspath(entry)
        if is_url(text):
            raise InputError(text, "URLs are not read by batch jobs; list local (or shared-filesystem) files")
        if os.path.isdir(text):
            videos = [os.path.join(root, name) for root, _, names in os.walk(text) for name in names if _is_video(name)]
            files = sorted(list_image_files(text) + videos)
            if not files:
                raise InputError(text, f"folder holds no image or video files ({', '.join(IMAGE_SUFFIXES)}, ...)")
            found.extend(files)
        elif _GLOB_CHARS & set(text) and not os.path.exists(text):
            matches = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
            if not matches:
                raise InputError(text, "glob pattern matches no files")
            found.extend(matches)
        elif os.path.splitext(text)[1].lower() in MANIFEST_SUFFIXES:
            listed = list(_manifest(Path(text)))
            if not listed:
                raise InputError(text, "manifest lists no files")
            found.extend(listed)
        else:
            found.append(text)
    return list(dict.fromkeys(found))  # each input once, first place kept


def _frame_count(path: str) -> int:
    capture = cv2.VideoCapture(path)
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if capture.isOpened() else 0
    finally:
        capture.release()


def plan_units(inputs: str | os.PathLike | Iterable[str | os.PathLike], frames_per_unit: int = 256) -> list[WorkUnit]:
    """The work units of ``inputs`` (:func:`expand_inputs`): one per image, one per ``frames_per_unit``
    frames of each video (from the frame count its header gives; the last unit reads to the end)."""
    if int(frames_per_unit) < 1:
        raise ValueError(f"frames_per_unit must be >= 1, got {frames_per_unit}")
    units: list[WorkUnit] = []
    for path in expand_inputs(inputs):
        if not _is_video(path):
            units.append(WorkUnit(path, path))
            continue
        count = _frame_count(path)
        starts = list(range(0, max(count, 1), frames_per_unit))
        for index, start in enumerate(starts):
            stop = -1 if index == len(starts) - 1 else start + frames_per_unit
            units.append(WorkUnit(f"{path}#{start}-{'end' if stop < 0 else stop}", path, start, stop))
    return units
