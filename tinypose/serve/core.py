"""The engine-agnostic core of the keypoint service: PaddleX's contract, limits, decoding, batched inference.

Everything a serving engine needs except the engine itself, so that the LitServe adapter
(:mod:`tinypose.serve.litserve_app`) and a later Ray Serve deployment share it:

* the request and response schema of PaddleX 3.7.2's ``human_keypoint_detection`` service
  (``paddlex/inference/serving/schemas/human_keypoint_detection.py`` and ``infra/models.py``):
  :class:`InferRequest`, the ``{"logId", "errorCode", "errorMsg"[, "result"]}`` envelopes; two
  optional request fields beyond PaddleX (``flip``, ``model``: null is the server's setting) and
  :class:`ServiceInfo` (``GET /info``: what the server loaded, so a client such as the page can offer it);
* :class:`Limits` and :class:`RequestError` (an HTTP status and a one-line message for the client);
* :func:`image_bytes` (base64 or a guarded URL fetch), :func:`inspect_image` (format and pixel count
  from the header, before anything is decoded) and :func:`decode_job`;
* :class:`KeypointService`: the models, and :meth:`KeypointService.run` that answers a whole batch of
  requests with one detector forward and one pose forward, each answer independent of its batch;
  :func:`build_service` makes it from plain settings in every engine's model process.

A request travels as a :class:`Job` (small and picklable: the file bytes, not the decoded image) from
the HTTP side to the model side, and comes back as a plain dict (:func:`answer`).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import re
import uuid
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel

from .._version import __version__
from ..boxes import parse_boxes
from ..detect import PersonDetector, create_detector
from ..device import usable_device
from ..images import InputError, decode_image_bytes
from ..pipeline import KeypointPipeline, PipelineResult, clip_boxes, create_pipeline
from ..predict import KeypointResult
from ..runtimes import thread_options
from ..runtimes.detector import resolve_detector_backend, with_detector_backend

__all__ = [
    "BOXES_ENDPOINT",
    "HEALTH_ENDPOINT",
    "INFER_ENDPOINT",
    "INFO_ENDPOINT",
    "METRICS_ENDPOINT",
    "PAGE_ENDPOINT",
    "BoxesRequest",
    "InferRequest",
    "Job",
    "KeypointService",
    "Limits",
    "OneImageDetector",
    "RequestError",
    "ServiceInfo",
    "answer",
    "build_service",
    "decode_job",
    "error_envelope",
    "inspect_image",
    "new_log_id",
    "predict_images",
    "result_envelope",
]

INFER_ENDPOINT = "/human-keypoint-detection"
"""PaddleX's endpoint: detector + pose on one image."""
BOXES_ENDPOINT = "/keypoint-detection"
"""Beyond PaddleX: pose only, on the person boxes the request gives."""
HEALTH_ENDPOINT = "/health"
METRICS_ENDPOINT = "/metrics"
INFO_ENDPOINT = "/info"
"""Beyond PaddleX: the models loaded and the defaults of the optional request fields (:class:`ServiceInfo`)."""
PAGE_ENDPOINT = "/"
"""The web page (``tinypose/serve/static/``): a client of the routes above, like any other."""

IMAGE_FORMATS = frozenset({"JPEG", "PNG", "BMP", "TIFF", "WEBP", "PPM", "JPEG2000", "GIF"})
"""Formats whose header Pillow reads and OpenCV decodes; anything else is refused before decoding."""


class InferRequest(BaseModel):
    """PaddleX's ``human_keypoint_detection`` ``InferRequest``, field for field, then two optional
    fields beyond it: ``flip`` (the flip test) and ``model`` (one of the pose models the server
    loaded, :class:`ServiceInfo`). Null or absent means the server's setting, so that a PaddleX client
    is answered exactly as PaddleX answers it."""

    image: str
    detThreshold: float | None = None
    visualize: bool | None = None
    flip: bool | None = None
    model: str | None = None


class BoxesRequest(BaseModel):
    """Pose only on given boxes: ``boxes`` rows ``[x1, y1, x2, y2]`` or ``[x1, y1, x2, y2, score]``;
    ``flip`` and ``model`` as in :class:`InferRequest`."""

    image: str
    boxes: list[list[float]]
    visualize: bool | None = None
    flip: bool | None = None
    model: str | None = None


@dataclass(frozen=True)
class Limits:
    """What one request may cost. ``url_allow``: host names, addresses or networks (CIDR) that image
    URLs may reach even though they are private, loopback or link-local."""

    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 25_000_000
    max_boxes: int = 100
    url_timeout_s: float = 10.0
    max_download_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 3
    url_allow: tuple[str, ...] = ()
    max_queue: int = 64
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_pixels", "max_download_bytes", "max_queue", "retry_after_s"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.max_boxes) < 0 or int(self.max_redirects) < 0:
            raise ValueError("max_boxes and max_redirects must be >= 0")
        if not float(self.url_timeout_s) > 0:
            raise ValueError(f"url_timeout_s must be > 0, got {self.url_timeout_s}")


class RequestError(Exception):
    """A request the service refuses: ``status`` (4xx/503) and a one-line ``message`` for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message


def new_log_id() -> str:
    """A request id as PaddleX makes them (a UUID4 string)."""
    return str(uuid.uuid4())


def result_envelope(log_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """PaddleX's ``AIStudioResultResponse``: ``logId``, ``result``, ``errorCode`` 0, ``errorMsg`` "Success"."""
    return {"logId": log_id, "result": result, "errorCode": 0, "errorMsg": "Success"}


def error_envelope(log_id: str, status: int, message: str) -> dict[str, Any]:
    """PaddleX's ``AIStudioNoResultResponse``: ``errorCode`` is the HTTP status."""
    return {"logId": log_id, "errorCode": int(status), "errorMsg": message}


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_WHITESPACE = re.compile(rb"\s+")


def is_url(text: str) -> bool:
    """PaddleX's rule: an ``image`` starting with ``http://`` or ``https://`` is a URL, anything else base64."""
    return text.startswith(("http://", "https://"))


def _strict_base64(raw: bytes) -> bytes | None:
    """``raw`` decoded when it is canonical base64 on one line (Python >= 3.11), else ``None``."""
    try:
        return binascii.a2b_base64(raw, strict_mode=True)  # type: ignore[call-arg,unused-ignore]  # 3.11+
    except (binascii.Error, TypeError):  # TypeError: Python 3.10 has no strict mode
        return None


def decode_base64(text: str) -> bytes:
    """The file bytes of a base64 ``image`` (line breaks allowed, as ``base64`` wraps them)."""
    if _SCHEME.match(text):
        raise RequestError(400, f"image URL scheme {text.split('://', 1)[0]!r} is not served: use http or https")
    try:
        raw = text.encode("ascii")
        data = _strict_base64(raw)  # the usual request: one line of canonical base64, ~5x faster
        if data is None:
            data = base64.b64decode(_WHITESPACE.sub(b"", raw), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as error:
        raise RequestError(400, f"image is neither an http(s) URL nor valid base64 ({error})") from None
    if not data:
        raise RequestError(400, "image is empty")
    return data


def inspect_image(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """``(format, width, height)`` read from the header only: refuses non-images and images over
    ``max_pixels`` (a decompression bomb is refused here, before any pixel is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind, (width, height) = str(image.format), image.size
    except Image.DecompressionBombError as error:
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        count = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
        raise RequestError(413, f"image has {count}, more than the limit of {max_pixels:,}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise RequestError(
            400, f"image is not an image file ({len(data)} bytes in no format this service reads)"
        ) from None
    if kind not in IMAGE_FORMATS:
        raise RequestError(400, f"image format {kind} is not served (use JPEG, PNG, BMP, TIFF or WEBP)")
    if width < 1 or height < 1:
        raise RequestError(400, f"image is empty ({width}x{height})")
    if width * height > max_pixels:
        raise RequestError(
            413, f"image is {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}"
        )
    return kind, width, height


def parse_request_boxes(boxes: Sequence[Sequence[float]], max_boxes: int) -> np.ndarray:
    """The ``boxes`` of a :class:`BoxesRequest` -> ``[M, 5]`` (a missing score is 1.0)."""
    if len(boxes) > max_boxes:
        raise RequestError(400, f"boxes has {len(boxes)} entries, more than the limit of {max_boxes}")
    try:
        return parse_boxes([list(box) for box in boxes], "boxes", default_score=1.0)
    except ValueError as error:
        raise RequestError(400, str(error)) from None


@dataclass(frozen=True)
class ServiceInfo:
    """What the server loaded and its defaults for the optional request fields: the answer of
    ``GET /info`` (:meth:`result`), read by clients such as the page to offer what the server has.

    ``models``: the pose models loaded, the first one answering requests whose ``model`` is null;
    ``flip``, ``det_threshold`` and ``visualize``: what a null ``flip``, ``detThreshold`` and
    ``visualize`` mean; ``draw_threshold``: joints scoring below it are not drawn."""

    models: tuple[str, ...]
    detector: str
    detector_backend: str = "torch"
    """What runs the detector: ``onnxruntime`` (one forward per batch of requests) or ``torch``."""
    flip: bool = False
    det_threshold: float | None = 0.5
    visualize: bool = True
    draw_threshold: float = 0.3

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ServiceInfo:
        """From the checked settings of ``python serve.py`` (:func:`tinypose.serve.cli.settings_from_config`)."""
        threshold = settings.get("det_threshold")
        return cls(
            models=tuple(name for name, _ in settings["models"]),
            detector=str(settings["detector"]),
            detector_backend=resolve_detector_backend(
                str(settings.get("detector_backend", "auto")), settings.get("device")
            ),
            flip=bool(settings.get("flip", False)),
            det_threshold=None if threshold is None else float(threshold),
            visualize=bool(settings.get("visualize", True)),
            draw_threshold=float(settings.get("draw_threshold", 0.3)),
        )

    def result(self, limits: Limits) -> dict[str, Any]:
        """The ``result`` of ``GET /info`` (camelCase, as PaddleX names its fields)."""
        return {
            "models": list(self.models),
            "model": self.models[0],
            "detector": self.detector,
            "detectorBackend": self.detector_backend,
            "flip": self.flip,
            "detThreshold": self.det_threshold,
            "visualize": self.visualize,
            "drawThreshold": self.draw_threshold,
            "maxBodyBytes": limits.max_body_bytes,
            "maxPixels": limits.max_pixels,
            "maxBoxes": limits.max_boxes,
            "version": __version__,
        }


@dataclass
class Job:
    """One request on its way to the model: the encoded file (never decoded on the HTTP side).
    ``flip`` and ``model`` ``None``: the server's setting and its first model."""

    kind: Literal["pipeline", "boxes"]
    data: bytes
    visualize: bool
    det_threshold: float | None = None
    boxes: np.ndarray | None = None
    flip: bool | None = None
    model: str | None = None
    log_id: str = field(default_factory=new_log_id)


@dataclass
class _Decoded:
    job: Job
    image: np.ndarray | None = None
    error: RequestError | None = None


def decode_job(job: Job, max_pixels: int) -> _Decoded:
    """Header check, then OpenCV decoding (as ``predict`` reads a file); never raises: a bad image
    becomes that request's error, so that it cannot fail the other requests of its batch."""
    try:
        inspect_image(job.data, max_pixels)
        try:
            image = decode_image_bytes(job.data, "image")
        except InputError:
            raise RequestError(400, "image could not be decoded (corrupt or truncated file)") from None
        return _Decoded(job, image)
    except RequestError as error:
        return _Decoded(job, error=error)


def answer(status: int, body: dict[str, Any], batch_size: int = 0, batch_index: int = 0) -> dict[str, Any]:
    """What the model side sends back for one request: HTTP status, envelope, and the size of the
    batch it ran in (0 when it did not reach the model) with its place in that batch."""
    return {"status": int(status), "body": body, "batch_size": int(batch_size), "batch_index": int(batch_index)}


class OneImageDetector:
    """A person detector that runs one image per forward, so that a request's boxes do not depend on
    the requests it is batched with: used when the detector's runtime is not batch invariant.

    Eager torch's float32 convolutions over a batch of N images are not bit-identical to the same
    images one at a time (oneDNN picks kernels by batch size): PP-PicoDet boxes move by up to 7e-4 px,
    and a crop shifted that much moves an ambiguous joint by up to 6 px (measured on coco_dev). The
    ``onnxruntime`` detector (``detector_backend=auto`` when installed) is batch invariant, so the
    service then runs ONE detector forward per batch of requests and this wrapper is not used.
    The pipeline takes any callable detector (``tinypose.boxes.Detector``) and filters by
    ``det_threshold`` itself, exactly as it does for a :class:`~tinypose.detect.PersonDetector`.
    """

    def __init__(self, detector: PersonDetector) -> None:
        self.detector = detector

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        return self.detector(image_bgr, threshold=None)


def predict_images(
    pipeline: KeypointPipeline, images: Sequence[np.ndarray], det_threshold: float | None, flip: bool | None = None
) -> list[PipelineResult]:
    """The one call into the pipeline: one detector forward over all ``images`` (one per image when the
    detector is a :class:`OneImageDetector`), every person of all of them in one pose forward."""
    return pipeline.predict_batch(list(images), det_threshold=det_threshold, flip=flip)


def predict_on_boxes(
    pipeline: KeypointPipeline, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray], flip: bool | None = None
) -> list[KeypointResult]:
    """The one call into the pose model for given boxes: every crop of every image in one forward."""
    return pipeline.pose.predict_batch(list(images), boxes=list(boxes), flip=flip)


def _jpeg_base64(image_bgr: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 75])  # PIL's default, as PaddleX
    if not ok:
        raise RuntimeError("JPEG encoding of the drawing failed")
    return base64.b64encode(encoded.tobytes()).decode("ascii")


def _person(bbox: Sequence[float], keypoints: np.ndarray, det_score: float, kpt_score: float) -> dict[str, Any]:
    return {
        "bbox": [float(v) for v in bbox],
        "kpts": np.asarray(keypoints).tolist(),
        "detScore": float(det_score),
        "kptScore": float(kpt_score),
    }


class KeypointService:
    """The models behind the service, and the batched answer to a list of requests.

    ``pipeline``: a :class:`~tinypose.pipeline.KeypointPipeline`, or several with different pose models
    (sharing one detector): a request's ``model`` picks one by its pose model name, the first answers
    requests without one. A pipeline's ``det_threshold`` and flip setting are the defaults for requests
    whose ``detThreshold`` and ``flip`` are null, as in PaddleX. ``max_pixels``: the decoding limit.
    """

    def __init__(
        self, pipeline: KeypointPipeline | Sequence[KeypointPipeline], max_pixels: int = Limits.max_pixels
    ) -> None:
        pipelines = [pipeline] if isinstance(pipeline, KeypointPipeline) else list(pipeline)
        if not pipelines:
            raise ValueError("KeypointService needs at least one pipeline")
        self.pipelines: dict[str, KeypointPipeline] = {}
        for each in pipelines:
            if each.pose.model_name in self.pipelines:
                raise ValueError(f"two pipelines for the pose model {each.pose.model_name}")
            self.pipelines[each.pose.model_name] = each
        self.pipeline = pipelines[0]
        self.max_pixels = int(max_pixels)
        self._pool: ThreadPoolExecutor | None = None

    def run(self, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        """One :func:`answer` per job, in order. Images are decoded here; the requests for the same pose
        model and flip setting go through one pose forward, the pipeline requests after one detector
        pass (at the lowest threshold asked, each request then keeps the boxes above its own)."""
        if len(jobs) > 1:  # OpenCV and Pillow release the GIL: a batch's files are decoded on all cores
            if self._pool is None:
                self._pool = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="tinypose-decode")
            decoded = list(self._pool.map(lambda job: decode_job(job, self.max_pixels), jobs))
        else:
            decoded = [decode_job(job, self.max_pixels) for job in jobs]
        answers: list[dict[str, Any] | None] = [None] * len(jobs)
        size = len(jobs)
        groups: dict[tuple[str, str, bool], list[int]] = {}
        for slot, item in enumerate(decoded):
            try:
                if item.error is not None:
                    raise item.error
                pipeline = self._pipeline_for(item.job)
            except RequestError as error:
                answers[slot] = answer(error.status, error_envelope(item.job.log_id, error.status, error.message), size)
                continue
            flip = pipeline.pose.flip if item.job.flip is None else bool(item.job.flip)
            groups.setdefault((item.job.kind, pipeline.pose.model_name, flip), []).append(slot)
        for (kind, model, flip), slots in groups.items():
            pipeline = self.pipelines[model]
            images = [self._image(decoded[i]) for i in slots]
            if kind == "pipeline":
                thresholds = [self._threshold(pipeline, decoded[i].job) for i in slots]
                lowest = None if any(t is None for t in thresholds) else min(t for t in thresholds if t is not None)
                posed = predict_images(pipeline, images, lowest, flip)
                for slot, threshold, result in zip(slots, thresholds, posed):
                    answers[slot] = self._pipeline_answer(decoded[slot].job, result, threshold, size)
            else:
                boxes = [self._clipped(decoded[i]) for i in slots]
                given = predict_on_boxes(pipeline, images, boxes, flip)
                for slot, rows, pose in zip(slots, boxes, given):
                    answers[slot] = self._boxes_answer(decoded[slot].job, rows, pose, size)
        done = [a for a in answers if a is not None]
        assert len(done) == len(jobs), "every request of the batch is answered"
        for index, reply in enumerate(done):
            reply["batch_index"] = index
        return done

    def _pipeline_for(self, job: Job) -> KeypointPipeline:
        """The pipeline of the job's pose model; a model this service did not load is the request's error."""
        if job.model is None:
            return self.pipeline
        found = self.pipelines.get(job.model)
        if found is None:
            served = ", ".join(self.pipelines)
            raise RequestError(400, f"model {job.model!r} is not loaded by this service; it serves {served}")
        return found

    @staticmethod
    def _image(item: _Decoded) -> np.ndarray:
        assert item.image is not None
        return item.image

    @staticmethod
    def _threshold(pipeline: KeypointPipeline, job: Job) -> float | None:
        return pipeline.det_threshold if job.det_threshold is None else float(job.det_threshold)

    @staticmethod
    def _clipped(item: _Decoded) -> np.ndarray:
        assert item.image is not None and item.job.boxes is not None
        height, width = item.image.shape[:2]
        return clip_boxes(np.asarray(item.job.boxes, dtype=np.float64).reshape(-1, 5), width, height)

    def _pipeline_answer(self, job: Job, result: PipelineResult, threshold: float | None, size: int) -> dict[str, Any]:
        people = [p for p in result["boxes"] if threshold is None or p["det_score"] > threshold]
        persons = [_person(p["coordinate"], p["keypoints"], p["det_score"], p["kpt_score"]) for p in people]
        image = None
        if job.visualize:
            kept = PipelineResult({**result, "boxes": people}, result.spec, result.draw_threshold)
            image = _jpeg_base64(kept.draw())
        return answer(200, result_envelope(job.log_id, _result(persons, image)), size)

    def _boxes_answer(self, job: Job, rows: np.ndarray, result: KeypointResult, size: int) -> dict[str, Any]:
        persons = [
            _person(box[:4], person["keypoints"], box[4] if math.isfinite(box[4]) else 1.0, person["kpt_score"])
            for box, person in zip(rows, result["kpts"])
        ]
        image = _jpeg_base64(result.draw()) if job.visualize else None
        return answer(200, result_envelope(job.log_id, _result(persons, image)), size)


def _result(persons: list[dict[str, Any]], image: str | None) -> dict[str, Any]:
    """PaddleX's ``InferResult``; ``image`` is left out when there is none (PaddleX serializes with
    ``response_model_exclude_none=True``)."""
    return {"persons": persons} if image is None else {"persons": persons, "image": image}


def build_service(settings: Mapping[str, Any]) -> KeypointService:
    """The models, loaded, from plain settings (:func:`tinypose.serve.cli.settings_from_config`): one
    pipeline per pose model of ``settings["models"]``, all sharing one detector; every engine's model
    process calls this once."""
    weights = settings.get("detector_weights")
    threads = settings.get("threads")
    options = {} if threads is None else {"num_threads": int(threads)}
    person_detector = with_detector_backend(
        create_detector(
            settings["detector"], True if weights is None else weights, device=settings.get("device"), threshold=None
        ),
        str(settings.get("detector_backend", "auto")),
        **options,
    )
    detector: PersonDetector | OneImageDetector = (
        person_detector if person_detector.batch_invariant else OneImageDetector(person_detector)
    )
    pipelines = [
        create_pipeline(
            pose_model=model,
            pose_model_dir=model_dir,
            flip=bool(settings.get("flip", False)),
            detector=detector,
            det_threshold=settings.get("det_threshold"),
            device=settings.get("device"),
            backend=settings.get("backend"),
            backend_options=thread_options(settings.get("threads"), usable_device(settings.get("device"))),
            batch_size=int(settings.get("max_batch_size", 1)),
            draw_threshold=float(settings.get("draw_threshold", 0.3)),
            smoothing=False,
        )
        for model, model_dir in settings["models"]
    ]
    return KeypointService(pipelines, int(settings["max_pixels"]))
