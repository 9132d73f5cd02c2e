"""Result objects with PaddleX's keypoint result surface (``.json``, ``.img``, ``print``, ``save_to_*``).

A :class:`KeypointResult` is a ``dict`` like PaddleX's ``KptResult``: ``input_path``, ``input_img``
(the BGR image as read) and ``kpts`` (one entry per person: ``keypoints`` float32 ``[17, 3]``
``(x, y, score)``, ``kpt_score``; with given boxes also ``coordinate`` and ``det_score``); video
frames add ``frame_index``.

Saving to a folder names files after the input like PaddleX (``<stem>_res.json``,
``<stem>_res.<ext>``). Two different inputs never write to the same file: within a process a name
is claimed by the first input that uses it and later inputs with the same file name get
``<stem>_2``, ``<stem>_3``...; an existing ``<stem>_res.json`` written for another input is never
overwritten. Saving the same input again overwrites its own files.
"""

from __future__ import annotations

import builtins
import json
import os
import random
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_url
from ..models.tinypose import ModelSpec
from .draw import DEFAULT_DRAW_THRESHOLD, draw_keypoints
from .inputs import VideoSource
from .writers import video_writers

__all__ = ["KeypointResult", "to_builtin"]

_PICTURE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".webp", ".tif", ".tiff")
"""Input suffixes kept for the saved picture (colour formats OpenCV writes); others save as PNG."""
_claims: dict[tuple[str, str], str] = {}
_claims_lock = threading.Lock()


def to_builtin(value: Any) -> Any:
    """numpy scalars/arrays, paths, tuples -> plain JSON types (as PaddleX's ``_format_data``)."""
    if isinstance(value, np.ndarray):
        return [to_builtin(v) for v in value.tolist()]
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, dict):
        return {k: to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    return value


def _existing_owner(json_path: Path) -> str | None:
    """``input_path`` recorded in a result JSON on disk ('' when unreadable)."""
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    owner = data.get("input_path") if isinstance(data, dict) else None
    frame = data.get("frame_index") if isinstance(data, dict) else None
    return "" if owner is None else f"{owner}#{frame}" if frame is not None else str(owner)


class KeypointResult(dict):
    """Keypoints of one image (or video frame); see the module docstring for its keys and files."""

    def __init__(
        self,
        data: dict[str, Any],
        spec: ModelSpec,
        draw_threshold: float = DEFAULT_DRAW_THRESHOLD,
        video: VideoSource | None = None,
    ) -> None:
        super().__init__(data)
        self.spec = spec
        self.draw_threshold = draw_threshold
        self.video = video
        self._anonymous_stem: str | None = None
        self._token = uuid.uuid4().hex

    # ----- representations -------------------------------------------------------------------
    def _public(self) -> dict[str, Any]:
        return to_builtin({k: v for k, v in self.items() if k != "input_img"})

    @property
    def json(self) -> dict[str, dict[str, Any]]:
        """``{"res": {"input_path": ..., "kpts": [{"keypoints": [[x, y, score], ...], "kpt_score": s}]}}``."""
        return {"res": self._public()}

    def draw(self, threshold: float | None = None) -> np.ndarray:
        """The input image (BGR) with skeletons, joints scoring below ``threshold`` left out."""
        people = [np.asarray(p["keypoints"]) for p in self["kpts"]]
        boxes = [p.get("coordinate") for p in self["kpts"]]
        return draw_keypoints(
            self["input_img"],
            people,
            self.spec.skeleton,
            self.spec.keypoint_names,
            self.draw_threshold if threshold is None else threshold,
            boxes if any(b is not None for b in boxes) else None,
        )

    @property
    def img(self) -> dict[str, Any]:
        """``{"res": PIL.Image}``: the RGB picture with the skeletons drawn (as PaddleX)."""
        from PIL import Image

        return {"res": Image.fromarray(cv2.cvtColor(self.draw(), cv2.COLOR_BGR2RGB))}

    @property
    def str(self) -> dict[str, Any]:
        """``{"res": <this result without the image>}`` (PaddleX's ``.str``)."""
        return {"res": self._public()}

    def print(
        self, format_json: bool = True, indent: int = 4, ensure_ascii: bool = False, json_format: bool | None = None
    ) -> None:
        """Print the result (as JSON by default); ``json_format`` is PaddleX's code name of ``format_json``."""
        as_json = format_json if json_format is None else json_format
        if as_json:
            print(json.dumps(self.json, indent=indent, ensure_ascii=ensure_ascii))
        else:
            print(self.str)

    # ----- file names ----------------------------------------------------------------------------
    def _owner(self) -> builtins.str:
        path = self.get("input_path")
        if path is None:
            return f"<array {self._token}>"
        owner = path if is_url(path) else os.path.abspath(path)
        frame = self.get("frame_index")
        return f"{owner}#{frame}" if frame is not None else owner

    def _disk_owner(self) -> builtins.str | None:
        path, frame = self.get("input_path"), self.get("frame_index")
        if path is None:
            return None
        return f"{path}#{frame}" if frame is not None else str(path)

    def _base_stem(self) -> builtins.str:
        path = self.get("input_path")
        if path is None:
            if self._anonymous_stem is None:  # PaddleX names results of arrays by time and a random number
                self._anonymous_stem = f"{int(time.time())}_{random.randint(1000, 9999)}"
            return self._anonymous_stem
        name = Path(urllib.parse.unquote(urllib.parse.urlparse(path).path)).name if is_url(path) else Path(path).name
        stem = Path(name).stem or "download"
        frame = self.get("frame_index")
        return f"{stem}_{frame:06d}" if frame is not None else stem

    def _input_suffix(self) -> builtins.str:
        path = self.get("input_path") or ""
        suffix = Path(urllib.parse.urlparse(path).path if is_url(path) else path).suffix.lower()
        return suffix if suffix in _PICTURE_SUFFIXES and self.get("frame_index") is None else ".png"

    def _claim_stem(self, folder: Path) -> builtins.str:
        """A file stem in ``folder`` that belongs to this input only (see the module docstring)."""
        folder_key = str(folder.resolve())
        base, owner, disk_owner = self._base_stem(), self._owner(), self._disk_owner()
        with _claims_lock:
            number = 1
            while True:
                stem = base if number == 1 else f"{base}_{number}"
                holder = _claims.get((folder_key, stem))
                if holder == owner:
                    return stem
                if holder is None:
                    json_path = folder / f"{stem}_res.json"
                    on_disk = _existing_owner(json_path) if json_path.exists() else None
                    if on_disk is None or (disk_owner is not None and on_disk == disk_owner):
                        _claims[(folder_key, stem)] = owner
                        return stem
                number += 1

    # ----- saving ---------------------------------------------------------------------------------
    def save_to_json(self, save_path: builtins.str | os.PathLike, indent: int = 4, ensure_ascii: bool = False) -> Path:
        """Write the JSON (``json["res"]``) to ``save_path``: a ``.json`` file, or a folder (``<stem>_res.json``)."""
        target = Path(save_path)
        if target.suffix.lower() != ".json":
            target.mkdir(parents=True, exist_ok=True)
            target = target / f"{self._claim_stem(target)}_res.json"
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self._public(), indent=indent, ensure_ascii=ensure_ascii), encoding="utf-8")
        return target

    def save_to_img(self, save_path: builtins.str | os.PathLike) -> Path:
        """Write the picture to ``save_path``: an image file, or a folder (``<stem>_res.<input suffix>``)."""
        target = Path(save_path)
        if target.suffix.lower() not in IMAGE_SUFFIXES:
            target.mkdir(parents=True, exist_ok=True)
            target = target / f"{self._claim_stem(target)}_res{self._input_suffix()}"
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode(target.suffix, self.draw())
        if not ok:
            raise OSError(f"{target}: OpenCV cannot encode an image with suffix {target.suffix!r}")
        target.write_bytes(encoded.tobytes())
        return target

    def save_to_video(self, save_path: builtins.str | os.PathLike) -> Path:
        """Append this video frame's picture to an annotated video: a video file path, or a folder
        (``<video stem>_res.mp4``). The file is finished with the video's last frame, or when
        ``predict`` has gone past the video."""
        if self.video is None:
            raise ValueError(f"{self.get('input_path') or '<numpy image>'}: not a video frame; use save_to_img")
        target = Path(save_path)
        if target.suffix.lower() not in VIDEO_SUFFIXES:
            target = target / f"{Path(self.video.path).stem}_res.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        video_writers(self.video).write(target, self.draw(), self.video.frames_read)
        return target

    def save_all(self, save_path: builtins.str | os.PathLike) -> None:
        """Save the JSON and the picture into the folder ``save_path``."""
        self.save_to_json(save_path)
        self.save_to_img(save_path)

    def __repr__(self) -> builtins.str:
        people = len(self.get("kpts", []))
        return f"KeypointResult(input_path={self.get('input_path')!r}, people={people})"
