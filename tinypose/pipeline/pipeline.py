"""``create_pipeline("human_keypoint_detection")``: person detector + PP-TinyPose, PaddleX's pipeline surface.

Per image, as PaddleX's ``human_keypoint_detection`` pipeline: detect people, keep boxes scoring
above ``det_threshold``, clip them to the image (dropping empty ones), pad each to the pose
model's aspect ratio x1.25 (``_box_xyxy2cs``) and run PP-TinyPose on the crop. Unlike PaddleX, the
crops of all people of ``batch_size`` images (and their mirrored twins when flipping) go through
one forward, and the detector takes the images of a batch in one forward too.

:meth:`KeypointPipeline.predict_batch` does this for images already decoded (one detector forward,
one pose forward, no tracking), and :meth:`KeypointPipeline.predict` reads inputs and calls the same
path per batch. Each person is the pose predictor's own dict
(:meth:`~tinypose.predict.KeypointPredictor.person_result`), so a field the predictor adds is in the
pipeline's results too.

Videos are read frame by frame (memory stays flat), ``batch_size`` frames at a time. People are
tracked across frames (:class:`~tinypose.pipeline.tracking.PoseTracker`, box IoU or keypoint OKS)
and each track's keypoints are smoothed with a One-Euro filter; both the raw keypoints
(``keypoints``) and the smoothed ones (``keypoints_smoothed``) are in each frame's result, with
the person's ``track_id``. Pictures and annotated videos show boxes, ids and (smoothed) skeletons.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from ..boxes import Detector, parse_boxes
from ..detect import PersonDetector, create_detector, get_detector_spec
from ..images import DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_URL_TIMEOUT_S, InputError, to_bgr8
from ..models.tinypose import ModelSpec
from ..options import parse_bool
from ..predict import KeypointPredictor, KeypointResult, create_model
from ..predict.draw import DEFAULT_DRAW_THRESHOLD, draw_keypoints, line_width_for
from ..predict.inputs import InputItem, VideoSource, iter_batches, iter_inputs, prefetch, run_overlapped
from ..runtimes.detector import with_detector_backend
from .smoothing import OneEuroConfig
from .tracking import PoseTracker

__all__ = ["PIPELINES", "Detector", "KeypointPipeline", "PipelineResult", "clip_boxes", "create_pipeline"]

_DEFAULT: Any = object()

PIPELINES = ("human_keypoint_detection",)
"""Pipeline names :func:`create_pipeline` knows (PaddleX's)."""


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """PaddleX's detection post-processing: clip to ``[0, w] x [0, h]``, drop boxes left empty."""
    boxes = boxes.copy()
    boxes[:, 0] = np.maximum(boxes[:, 0], 0)
    boxes[:, 1] = np.maximum(boxes[:, 1], 0)
    boxes[:, 2] = np.minimum(boxes[:, 2], width)
    boxes[:, 3] = np.minimum(boxes[:, 3], height)
    return boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]


class PipelineResult(KeypointResult):
    """One image's (or video frame's) people, as PaddleX's pipeline result.

    Keys: ``input_path``, ``boxes`` (per person ``coordinate`` xyxy, ``det_score``, ``keypoints``
    ``[17, 3]``, ``kpt_score``; on video also ``track_id`` and ``keypoints_smoothed``), and
    ``frame_index`` for video frames. ``.json``, ``.img``, ``print()``, ``save_to_json``,
    ``save_to_img`` and ``save_to_video`` behave as for :class:`~tinypose.predict.KeypointResult`.
    """

    @classmethod
    def from_pose(cls, result: KeypointResult) -> PipelineResult:
        """The pipeline's view of a pose result on detected boxes: the same fields, with the people
        under PaddleX's pipeline key ``boxes`` instead of ``kpts``."""
        data = {("boxes" if key == "kpts" else key): value for key, value in result.items()}
        return cls(data, result.spec, result.draw_threshold, result.video)

    def draw(self, threshold: float | None = None) -> np.ndarray:
        """The input image (BGR) with each person's box, track id and (smoothed) skeleton."""
        people = [np.asarray(p.get("keypoints_smoothed", p["keypoints"])) for p in self["boxes"]]
        boxes = [p["coordinate"] for p in self["boxes"]]
        canvas = draw_keypoints(
            self["input_img"],
            people,
            self.spec.skeleton,
            self.spec.keypoint_names,
            self.draw_threshold if threshold is None else threshold,
            boxes,
        )
        thickness = line_width_for(*canvas.shape[:2])
        for person in self["boxes"]:
            if "track_id" not in person:
                continue
            x1, y1 = (int(round(v)) for v in person["coordinate"][:2])
            label = f"id {person['track_id']}"
            scale = max(0.4, thickness * 0.35)
            (text_w, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thickness // 2))
            top = max(y1 - text_h - 2 * thickness, 0)
            cv2.rectangle(
                canvas, (x1, top), (x1 + text_w + 2 * thickness, top + text_h + 2 * thickness), (40, 40, 40), -1
            )
            cv2.putText(
                canvas,
                label,
                (x1 + thickness, top + text_h + thickness),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (255, 255, 255),
                max(1, thickness // 2),
                cv2.LINE_AA,
            )
        return canvas

    def __repr__(self) -> str:
        return f"PipelineResult(input_path={self.get('input_path')!r}, people={len(self.get('boxes', []))})"


class KeypointPipeline:
    """Detector + PP-TinyPose on images, folders, URLs and videos (see the module docstring).

    ``detector``: a :class:`~tinypose.detect.PersonDetector` or any callable ``image_bgr -> boxes``
    (:data:`Detector`). ``det_threshold``: boxes must score above it (``None`` keeps all).
    ``smoothing``: One-Euro parameters for video, or ``None``; ``tracking``: ``"iou"`` or ``"oks"``.
    """

    def __init__(
        self,
        pose: KeypointPredictor,
        detector: PersonDetector | Detector,
        det_threshold: float | None = 0.5,
        batch_size: int = 1,
        clip: bool = True,
        tracking: str = "iou",
        smoothing: OneEuroConfig | None = OneEuroConfig(),
        match_threshold: float = 0.3,
        max_age: int = 30,
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        PoseTracker(tracking, match_threshold, max_age, smoothing)  # validates the tracking options now
        self.pose = pose
        self.detector = detector
        self.det_threshold = det_threshold
        self.batch_size = int(batch_size)
        self.clip = clip
        self.tracking = tracking
        self.smoothing = smoothing
        self.match_threshold = match_threshold
        self.max_age = max_age
        self.errors: list[InputError] = []

    @property
    def spec(self) -> ModelSpec:
        """The pose model's spec."""
        return self.pose.spec

    def __call__(self, input: Any, **kwargs: Any) -> Iterator[PipelineResult]:
        return self.predict(input, **kwargs)

    def detect(
        self, images: Sequence[np.ndarray], det_threshold: float | None, names: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        """``[M, 5]`` boxes (x1, y1, x2, y2, score) per BGR image, above ``det_threshold``.

        A callable detector's output is read by :func:`~tinypose.boxes.parse_boxes` (a missing score
        counts as 1); ``names`` say which input a bad output came from.
        """
        if isinstance(self.detector, PersonDetector):
            found = self.detector.detect(list(images), threshold=det_threshold, batch_size=len(images))
            return [rows.astype(np.float64) for rows in found]
        out = []
        for index, image in enumerate(images):
            name = names[index] if names is not None else f"image {index}"
            boxes = parse_boxes(
                self.detector(image), f"{name}: detector output", default_score=1.0, require_extent=False
            )
            out.append(boxes if det_threshold is None else boxes[boxes[:, 4] > det_threshold])
        return out

    def predict_batch(
        self,
        images: Sequence[np.ndarray],
        det_threshold: float | None = _DEFAULT,
        input_paths: Sequence[str | None] | None = None,
        flip: bool | None = None,
    ) -> list[PipelineResult]:
        """People and their keypoints in images already decoded: one :class:`PipelineResult` per image.

        ``images``: BGR uint8 ``[H, W, 3]`` arrays (as ``cv2.imread`` gives them). One detector forward
        over all images, one pose forward over all their people; no tracking (that is for video
        streams, :meth:`predict`). ``det_threshold`` overrides the pipeline's for this call, and
        ``flip`` the pose predictor's flip test (``None``: its own setting); ``input_paths`` is what
        each result's ``input_path`` says (``None`` by default).
        """
        threshold = self.det_threshold if det_threshold is _DEFAULT else det_threshold
        count = len(images)
        paths: list[str | None] = list(input_paths) if input_paths is not None else [None] * count
        if len(paths) != count:
            raise ValueError(f"input_paths has {len(paths)} entries for {count} images")
        names = [path if path is not None else f"image {index}" for index, path in enumerate(paths)]
        arrays = [to_bgr8(image, name) for image, name in zip(images, names)]
        return self._pose_people(arrays, threshold, paths, names, flip)[0]

    def _pose_people(
        self,
        images: list[np.ndarray],
        threshold: float | None,
        paths: list[str | None],
        names: list[str],
        flip: bool | None = None,
    ) -> tuple[list[PipelineResult], list[np.ndarray]]:
        """Detect, clip, pose (:meth:`KeypointPredictor.predict_batch`); the results and the boxes used."""
        detections = self.detect(images, threshold, names)
        if self.clip:
            detections = [clip_boxes(d, img.shape[1], img.shape[0]) for d, img in zip(detections, images)]
        posed = self.pose.predict_batch(images, boxes=detections, input_paths=paths, flip=flip)
        return [PipelineResult.from_pose(result) for result in posed], detections

    def predict(
        self, input: Any, det_threshold: Any = _DEFAULT, batch_size: int | None = None
    ) -> Iterator[PipelineResult]:
        """Yield one :class:`PipelineResult` per image or video frame of ``input``, in order.

        ``input``: a BGR numpy image, an image file, a URL, a folder, a video file, or a list of
        these. ``det_threshold`` overrides the pipeline's for this call; ``batch_size`` images (or
        frames) are detected and their people posed in one forward each (:meth:`predict_batch`'s
        path); people in videos are tracked and smoothed.
        """
        threshold = self.det_threshold if det_threshold is _DEFAULT else det_threshold
        size = self.batch_size if batch_size is None else int(batch_size)
        if size < 1:
            raise ValueError(f"batch_size must be >= 1, got {size}")
        self.errors = []
        trackers: dict[int, PoseTracker] = {}
        pose = self.pose
        held: list[VideoSource] | None = [] if pose.overlap else None
        batches = iter_batches(
            prefetch(iter_inputs(input, pose.url_timeout, pose.max_download_bytes), pose.prefetch),
            size,
            pose.on_error,
            self.errors,
            on_video_done=lambda video: trackers.pop(id(video), None),
            held=held,
        )

        def prepare(batch: list[tuple[int, InputItem]]) -> tuple[list[InputItem], list[np.ndarray], Any]:
            """Detect, clip and crop (no pose network): the part that overlaps the previous batch's forward."""
            items = [item for _, item in batch if item.image is not None]
            images, _, _, names = pose.check_batch(
                [item.image for item in items if item.image is not None], None, [item.input_path for item in items]
            )
            detections = self.detect(images, threshold, [item.name for item in items])
            if self.clip:
                detections = [clip_boxes(d, img.shape[1], img.shape[0]) for d, img in zip(detections, images)]
            _, parsed, _, _ = pose.check_batch(images, detections, [item.input_path for item in items])
            return items, detections, pose.prepare(images, parsed, names)

        try:
            if held is None:
                for batch in batches:
                    yield from self._finish(*prepare(batch), trackers)
                return
            yield from run_overlapped(batches, prepare, lambda job: self._finish(*job, trackers))
        finally:
            batches.close()  # finishes open videos now, not at garbage collection
            for video in held or ():
                video.close()
                trackers.pop(id(video), None)

    def _finish(
        self, items: list[InputItem], detections: list[np.ndarray], prepared: Any, trackers: dict[int, PoseTracker]
    ) -> Iterator[PipelineResult]:
        """Pose forward and decoding of a prepared batch, then tracking, in input order."""
        images = [item.image for item in items if item.image is not None]
        posed = self.pose.finish_results(prepared, images, [item.input_path for item in items])
        for item, boxes, pose_result in zip(items, detections, posed):
            result = PipelineResult.from_pose(pose_result)
            if item.frame_index is not None:
                result["frame_index"] = item.frame_index
            result.video = item.video
            if item.video is not None and result["boxes"]:
                self._track(item, boxes, result["boxes"], trackers)
            yield result

    def _track(
        self, item: InputItem, boxes: np.ndarray, people: list[dict[str, Any]], trackers: dict[int, PoseTracker]
    ) -> None:
        video = item.video
        assert video is not None and item.frame_index is not None
        tracker = trackers.get(id(video))
        if tracker is None:
            tracker = trackers[id(video)] = PoseTracker(
                self.tracking, self.match_threshold, self.max_age, self.smoothing
            )
        keypoints = np.stack([np.asarray(p["keypoints"], np.float64) for p in people])
        ids, smoothed = tracker.update(boxes, keypoints, item.frame_index, item.frame_index / video.fps)
        for person, track_id, points in zip(people, ids, smoothed if smoothed is not None else [None] * len(people)):
            person["track_id"] = int(track_id)
            if self.smoothing is not None and points is not None:
                person["keypoints_smoothed"] = points.astype(np.float32)


def _detector_from(
    detector: str | int | PersonDetector | Detector,
    detector_model_dir: str | os.PathLike | None,
    device: str | torch.device | None,
    batch_size: int,
    backend: str = "auto",
) -> PersonDetector | Detector:
    if isinstance(detector, PersonDetector) or (callable(detector) and not isinstance(detector, (str, int))):
        return detector
    get_detector_spec(detector)  # a clear error for unknown names before any weights are read
    built = create_detector(detector, detector_model_dir, device=device, threshold=None, batch_size=max(batch_size, 1))
    return with_detector_backend(built, backend)


def create_pipeline(
    pipeline: str = "human_keypoint_detection",
    config: Mapping[str, Any] | None = None,
    *,
    pose_model: str = "PP-TinyPose_128x96",
    pose_model_dir: str | os.PathLike | None = None,
    flip: bool = False,
    detector: str | int | PersonDetector | Detector = "picodet_s_320_lcnet_pedestrian",
    detector_model_dir: str | os.PathLike | None = None,
    det_threshold: float | None = 0.5,
    device: str | torch.device | None = None,
    backend: str | None = None,
    backend_options: dict[str, Any] | None = None,
    batch_size: int = 1,
    tracking: str = "iou",
    smoothing: bool | OneEuroConfig = True,
    min_cutoff: float | None = None,
    beta: float | None = None,
    draw_threshold: float = DEFAULT_DRAW_THRESHOLD,
    on_error: str = "skip",
    url_timeout: float = DEFAULT_URL_TIMEOUT_S,
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    pose: KeypointPredictor | None = None,
    detector_weights: str | os.PathLike | None = None,
    detector_backend: str = "auto",
) -> KeypointPipeline:
    """PaddleX-style entry point: ``create_pipeline("human_keypoint_detection")``.

    ``config`` may be PaddleX's pipeline dict (``SubModules.ObjectDetection`` ``model_name``/``model_dir``/
    ``threshold`` and ``SubModules.KeypointDetection`` ``model_name``/``model_dir``/``flip``); keyword
    arguments fill in what it does not say. ``detector``: a detector name (``picodet_s_320_lcnet_pedestrian``
    default, ``picodet_s_192_lcnet_pedestrian``), a :class:`~tinypose.detect.PersonDetector`, or any
    callable ``image_bgr -> boxes``. ``smoothing``: ``True`` (One-Euro defaults, overridable by
    ``min_cutoff``/``beta``), ``False``, or a :class:`OneEuroConfig`; it only acts on video.
    ``backend``: the pose model's runtime (``None``: :func:`tinypose.runtimes.default_backend`, as
    :func:`~tinypose.predict.create_model`), ``backend_options`` its options; the detector's runtime is its own.
    ``pose``: an existing predictor to reuse (then ``pose_model``, ``flip``, ``backend`` are ignored).
    Weights come from ``pose_model_dir`` and ``detector_model_dir`` (PaddleX's ``model_dir`` of each
    sub-module; ``None``: the default release); ``detector_weights`` is the old name of
    ``detector_model_dir`` (still accepted, with a warning). ``detector_backend``: what runs a named
    detector's network: ``auto`` (ONNX Runtime on the CPU when installed: ~7x faster than eager torch
    and batch invariant, see :mod:`tinypose.runtimes.detector`; else torch), ``onnxruntime``, ``torch``.
    """
    if detector_weights is not None:
        if detector_model_dir is not None:
            raise TypeError("create_pipeline: give detector_model_dir only (detector_weights is its old name)")
        warnings.warn(
            "create_pipeline(detector_weights=...) is now detector_model_dir=...", DeprecationWarning, stacklevel=2
        )
        detector_model_dir = detector_weights
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}; tinypose has {', '.join(PIPELINES)}")
    if config is not None:
        modules = config.get("SubModules", config)
        det_cfg, kpt_cfg = modules.get("ObjectDetection", {}) or {}, modules.get("KeypointDetection", {}) or {}
        if det_cfg.get("model_name"):
            detector = det_cfg["model_name"]
        detector_model_dir = det_cfg.get("model_dir") or detector_model_dir
        if det_cfg.get("threshold") is not None:
            det_threshold = float(det_cfg["threshold"])
        pose_model = kpt_cfg.get("model_name") or pose_model
        pose_model_dir = kpt_cfg.get("model_dir") or pose_model_dir
        if kpt_cfg.get("flip") is not None:
            flip = parse_bool(kpt_cfg["flip"], "SubModules.KeypointDetection.flip")  # a YAML "no" is no flip
    if smoothing is True:
        defaults = OneEuroConfig()
        smoothing_config: OneEuroConfig | None = OneEuroConfig(
            min_cutoff=defaults.min_cutoff if min_cutoff is None else min_cutoff,
            beta=defaults.beta if beta is None else beta,
            d_cutoff=defaults.d_cutoff,
        )
    elif smoothing is False or smoothing is None:
        smoothing_config = None
    else:
        smoothing_config = smoothing
    if pose is None:
        pose = create_model(
            pose_model,
            model_dir=pose_model_dir,
            flip=flip,
            device=device,
            backend=backend,
            backend_options=backend_options,
            draw_threshold=draw_threshold,
            on_error=on_error,
            url_timeout=url_timeout,
            max_download_bytes=max_download_bytes,
        )
    person_detector = _detector_from(
        detector, detector_model_dir, pose.device if device is None else device, batch_size, detector_backend
    )
    return KeypointPipeline(
        pose, person_detector, det_threshold, batch_size, tracking=tracking, smoothing=smoothing_config
    )
