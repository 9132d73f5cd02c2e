"""One batch-job worker: builds the pose model (or the detector + pose pipeline) once, then turns
batches of work units into output shards.

:class:`PoseWorker` is a plain callable class: Ray Data runs it as the actor of ``map_batches``
(:mod:`tinypose.scale.ray_data`), and it runs as it is in one process too (the baseline of
``benchmarks/bench_ray.py``). Pictures and video frames go through the same ``predict_batch`` call
as :meth:`KeypointPredictor.predict <tinypose.predict.KeypointPredictor.predict>` and
:meth:`KeypointPipeline.predict <tinypose.pipeline.KeypointPipeline.predict>` make, ``batch_size``
images per forward, so the keypoints are theirs. Frames are posed independently: no tracking and no
smoothing across a video (they need the frames in order in one process).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..detect import get_detector_spec
from ..images import InputError, read_image_file, to_bgr8
from ..models.tinypose import get_spec
from ..pipeline import KeypointPipeline, create_pipeline
from ..predict import KeypointPredictor, create_model
from ..runtimes import thread_options
from .shards import write_shard
from .units import WorkUnit

__all__ = ["PoseWorker", "build_runner", "check_settings", "result_rows"]


def check_settings(settings: Mapping[str, Any]) -> None:
    """Refuse, with one line, what would fail in every actor: an unknown model or detector name, weights
    that do not exist, a batch size below 1. Called by the driver before any actor starts."""
    get_spec(str(settings.get("model", "PP-TinyPose_128x96")))
    if settings.get("detector") is not None:
        get_detector_spec(settings["detector"])
    for key in ("model_dir", "detector_model_dir"):
        value = settings.get(key)
        if value is not None and not Path(str(value)).exists():
            raise ValueError(f"{key}={value}: no such file or folder")
    if int(settings.get("batch_size", 1)) < 1:
        raise ValueError(f"batch_size must be >= 1, got {settings.get('batch_size')}")


def build_runner(settings: Mapping[str, Any]) -> KeypointPredictor | KeypointPipeline:
    """The pose model, or the pipeline around it when ``settings["detector"]`` names a detector.

    ``settings``: ``model``, ``model_dir``, ``flip``, ``device``, ``backend`` (``None``: the project's
    default, as ``create_model``), ``threads`` (the pose runtime's CPU threads), ``detector``,
    ``detector_model_dir``, ``det_threshold``, ``batch_size`` (all but ``model`` optional)."""
    pose = create_model(
        str(settings.get("model", "PP-TinyPose_128x96")),
        model_dir=settings.get("model_dir"),
        flip=bool(settings.get("flip", False)),
        device=settings.get("device"),
        backend=None if settings.get("backend") is None else str(settings["backend"]),
        backend_options=thread_options(settings.get("threads"), settings.get("device")),
        prefetch=0,
    )
    if settings.get("detector") is None:
        return pose
    return create_pipeline(
        pose=pose,
        detector=settings["detector"],
        detector_model_dir=settings.get("detector_model_dir"),
        det_threshold=settings.get("det_threshold", 0.5),
        batch_size=int(settings.get("batch_size", 1)),
        smoothing=False,
    )


def result_rows(result: Mapping[str, Any], path: str, frame_index: int | None) -> list[dict[str, Any]]:
    """The output rows (:func:`tinypose.scale.shards.shard_schema`) of one image's result, one per person."""
    people = result["boxes"] if "boxes" in result else result["kpts"]
    rows = []
    for index, person in enumerate(people):
        box = person.get("coordinate")
        rows.append(
            {
                "input_path": path,
                "frame_index": frame_index,
                "person_index": index,
                "box": None if box is None else [float(v) for v in box],
                "det_score": person.get("det_score"),
                "keypoints": np.asarray(person["keypoints"], dtype=np.float32).tolist(),
                "kpt_score": float(person["kpt_score"]),
                "error": None,
            }
        )
    return rows


def error_row(path: str, frame_index: int | None, message: str) -> dict[str, Any]:
    """The row that reports an input (or a video's run of frames) that could not be read."""
    return {
        "input_path": path,
        "frame_index": frame_index,
        "person_index": None,
        "box": None,
        "det_score": None,
        "keypoints": None,
        "kpt_score": None,
        "error": message,
    }


class PoseWorker:
    """Work units in, one output shard per call out (see the module docstring).

    ``settings``: as :func:`build_runner`; ``output``: the shard folder; ``threads``: the CPU threads of
    this worker, torch's and OpenCV's (``None``: their defaults, one per core)."""

    def __init__(self, settings: Mapping[str, Any], output: str, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(int(threads))
            cv2.setNumThreads(int(threads))  # OpenCV's pool too: the crops' warps and the detector's resize
        self.settings = {"threads": threads, **settings}
        self.output = output
        self.batch_size = max(1, int(self.settings.get("batch_size", 1)))
        self.runner = build_runner(self.settings)

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        """A Ray Data batch of units (columns of :meth:`WorkUnit.as_row`) -> its shard written, and per
        unit: its key, rows written and whether it was an error."""
        units = [
            WorkUnit(str(key), str(path), int(start), int(stop))
            for key, path, start, stop in zip(batch["key"], batch["path"], batch["start"], batch["stop"])
        ]
        rows, counts, failed = self.run(units)
        write_shard(self.output, [unit.key for unit in units], rows)
        return {
            "key": np.array([unit.key for unit in units], dtype=object),
            "rows": np.array(counts, dtype=np.int64),
            "error": np.array(failed, dtype=bool),
        }

    def run(self, units: Sequence[WorkUnit]) -> tuple[list[dict[str, Any]], list[int], list[bool]]:
        """Rows of all ``units`` (pictures posed ``batch_size`` at a time), and per unit its row count and
        whether it failed."""
        rows: list[dict[str, Any]] = []
        counts, failed = [], []
        for unit in units:
            produced = list(self._unit_rows(unit))
            rows.extend(produced)
            counts.append(len(produced))
            failed.append(any(row["error"] is not None for row in produced))
        return rows, counts, failed

    def _unit_rows(self, unit: WorkUnit) -> Iterator[dict[str, Any]]:
        if not unit.is_video:
            try:
                image = read_image_file(unit.path)
            except InputError as error:
                yield error_row(unit.path, None, str(error))
                return
            yield from self._pose([image], unit.path, [None])
            return
        try:
            for frames, indices in self._frame_batches(unit):
                yield from self._pose(frames, unit.path, indices)
        except InputError as error:
            yield error_row(unit.path, unit.start, str(error))

    def _pose(self, images: list[np.ndarray], path: str, frames: list[int | None]) -> Iterator[dict[str, Any]]:
        results = self.runner.predict_batch(images, input_paths=[path] * len(images))
        for result, frame_index in zip(results, frames):
            yield from result_rows(result, path, frame_index)

    def _frame_batches(self, unit: WorkUnit) -> Iterator[tuple[list[np.ndarray], list[int | None]]]:
        """The unit's frames, ``batch_size`` at a time; earlier frames are decoded and dropped (grab), as
        seeking by frame number is not exact in every container."""
        capture = cv2.VideoCapture(unit.path)
        try:
            if not capture.isOpened():
                raise InputError(unit.path, "cannot open as a video")
            index = 0
            while index < unit.start and capture.grab():
                index += 1
            if index < unit.start:
                return  # the header counted more frames than the video has: nothing left for this unit
            frames: list[np.ndarray] = []
            indices: list[int | None] = []
            while unit.stop < 0 or index < unit.stop:
                ok, frame = capture.read()
                if not ok:
                    break
                frames.append(to_bgr8(frame, f"{unit.path} frame {index}"))
                indices.append(index)
                index += 1
                if len(frames) == self.batch_size:
                    yield frames, indices
                    frames, indices = [], []
            if frames:
                yield frames, indices
            if index == 0:
                raise InputError(unit.path, "video has no readable frames")
        finally:
            capture.release()
