"""``create_model(...).predict(...)``: PaddleX's keypoint module semantics, batched.

Per image (PaddleX ``KptRunnerPredictor``): the whole image as the box (or the given person boxes,
padded as PaddleX's pipeline does), the width-only affine warp with ``cv2.warpAffine``, PaddleX's
normalization, optional flip test, then :class:`tinypose.codec.HeatmapCodec` decoding. Unlike
PaddleX, every crop of a batch of images, and its mirrored twin when flipping, goes through one
forward call of the backend.

Two entry points share that path: :meth:`KeypointPredictor.predict` reads inputs (files, URLs,
folders, videos) and yields results; :meth:`KeypointPredictor.predict_batch` takes images already
decoded (and their boxes) and returns results, with no file reading and no threads: the pipeline
and the HTTP service call it. The fields of one person are made in one place,
:meth:`KeypointPredictor.person_result`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..boxes import drop_boxes_outside, parse_boxes
from ..codec import HeatmapCodec
from ..crop import (
    box_xyxy_to_center_scale,
    get_affine_transform,
    get_udp_warp_matrix,
    warp_affine,
    whole_image_center_scale,
)
from ..device import resolve_device, usable_device
from ..images import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_URL_TIMEOUT_S,
    VIDEO_SUFFIXES,
    InputError,
    is_url,
    normalize_bgr8,
    to_bgr8,
)
from ..models.tinypose import ModelSpec, TinyPose, build_model, forward_with_flip, get_spec
from ..runtimes import create_backend, default_backend
from .draw import DEFAULT_DRAW_THRESHOLD
from .inputs import InputItem, VideoSource, iter_batches, iter_inputs, prefetch, run_overlapped
from .result import KeypointResult

__all__ = ["HeatmapFn", "KeypointPredictor", "PreparedCrops", "create_model", "resolve_device"]

HeatmapFn = Callable[[torch.Tensor], torch.Tensor]
"""What the predictor runs crops through: ``fn(batch [N,3,H,W] float32 normalized RGB) -> heatmaps
[N,K,H/4,W/4] float32`` on the CPU. Any runtime from :func:`tinypose.create_backend` is one; this
type says only what the predictor calls (it was called ``Backend``, the name of the runtimes' class)."""

BoxesArg = Any
"""Person boxes: per image an ``[M, 4|5]`` array/list of ``x1, y1, x2, y2[, score]``, or PaddleX
detection dicts ``{"coordinate": [...], "score": s}`` (see :func:`tinypose.boxes.parse_boxes`); for
several images a sequence of those; or a detector, ``boxes(image_bgr) -> boxes``
(:data:`tinypose.boxes.Detector`), called on each image in BGR order."""


@dataclass
class PreparedCrops:
    """The crops of a batch of images, normalized and ready for one forward (:meth:`KeypointPredictor.prepare`).

    ``batch``: float32 ``[N, 3, H, W]`` (in pinned memory on CUDA, so that the copy to the GPU is
    asynchronous), or ``None`` without people; ``centers``/``scales``: ``[N, 2]``; ``owners``: per
    crop, the image's slot and its parsed box row (``None`` for the whole image); ``images``: how many
    images the batch has."""

    batch: torch.Tensor | None
    centers: np.ndarray
    scales: np.ndarray
    owners: list[tuple[int, np.ndarray | None]]
    images: int


def _is_single_image(inputs: Any) -> bool:
    if isinstance(inputs, np.ndarray):
        return True
    if isinstance(inputs, (str, os.PathLike)):
        text = os.fspath(inputs)
        return is_url(text) or (not os.path.isdir(text) and Path(text).suffix.lower() not in VIDEO_SUFFIXES)
    return False


class KeypointPredictor:
    """PP-TinyPose predictor with PaddleX's ``create_model(...).predict(...)`` behaviour (see module docstring).

    ``on_error``: in a folder or list, an input that cannot be read is logged and skipped
    (``"skip"``, its error kept in :attr:`errors`) or stops the run (``"raise"``). A bad single
    input always raises :class:`~tinypose.predict.inputs.InputError`. ``prefetch``: images read
    and decoded ahead in a background thread (0: read in the calling thread). ``backend``: see
    :func:`create_model`; :attr:`backend_name` is the name asked for (``auto`` when defaulted on
    the CPU), ``backend.name`` the runtime that runs.

    Feeding a GPU: ``overlap`` makes :meth:`predict` prepare the next batch (boxes, crops,
    normalization, pinned memory) in a worker thread while the current batch runs through the network
    and is decoded; ``crop_workers`` threads warp the crops of a batch in parallel (OpenCV releases
    the GIL). Both default to on for a CUDA device (``overlap``; ``crop_workers`` = min(8, CPUs)) and
    off on the CPU, where the network already uses the cores. Results are the same either way: the
    same functions run on the same data, only in other threads.
    """

    def __init__(
        self,
        model_name: str = "PP-TinyPose_128x96",
        model_dir: str | os.PathLike | None = None,
        flip: bool = False,
        device: str | torch.device | None = None,
        backend: str | None = None,
        *,
        use_udp: bool = False,
        draw_threshold: float = DEFAULT_DRAW_THRESHOLD,
        on_error: str = "skip",
        url_timeout: float = DEFAULT_URL_TIMEOUT_S,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        model: TinyPose | None = None,
        backend_options: dict[str, Any] | None = None,
        prefetch: int = 2,
        overlap: bool | None = None,
        crop_workers: int | None = None,
    ) -> None:
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', not {on_error!r}")
        self.spec: ModelSpec = get_spec(model_name)
        self.model_name = self.spec.name
        self.flip = bool(flip)
        self.use_udp = bool(use_udp)
        self.draw_threshold = draw_threshold
        self.on_error = on_error
        self.url_timeout = url_timeout
        self.max_download_bytes = max_download_bytes
        self.prefetch = int(prefetch)
        self.device = usable_device(device)  # device="cuda" without a GPU: "use device=cpu"
        on_gpu = self.device.type == "cuda"
        self.overlap = on_gpu if overlap is None else bool(overlap)
        self.crop_workers = min(8, os.cpu_count() or 1) if crop_workers is None and on_gpu else int(crop_workers or 0)
        if self.crop_workers < 0:
            raise ValueError(f"crop_workers must be >= 0, got {crop_workers}")
        self._crop_pool = (
            ThreadPoolExecutor(self.crop_workers, thread_name_prefix="tinypose-crop") if self.crop_workers > 1 else None
        )
        self.codec = HeatmapCodec.from_spec(self.spec)
        if model is None:
            model = build_model(self.spec.name, pretrained=True if model_dir is None else model_dir)
        self.model = model.eval()
        self.backend_name = default_backend(self.device) if backend is None else backend
        self.backend: HeatmapFn = create_backend(
            self.backend_name, self.model, device=self.device, **(backend_options or {})
        )
        self.errors: list[InputError] = []
        mean = np.asarray(self.spec.mean, dtype=np.float32)
        std = np.asarray(self.spec.std, dtype=np.float32)
        # PaddleX's Normalize: x * (1/255/std) + (-mean/std), per channel in float32. A uint8 pixel has
        # 256 values, so the same float32 multiply and add done once per value is a lookup table:
        # bit-identical, and one gather per element instead of several passes over the batch.
        alpha, beta = np.float32(1.0 / 255.0) / std, -mean / std
        self._lut = np.arange(256, dtype=np.float32)[None, :] * alpha[:, None] + beta[:, None]  # [3 RGB, 256]

    @property
    def input_size(self) -> tuple[int, int]:
        """Network input ``(width, height)``, as PaddleX's ``kpt_model.input_size``."""
        return self.spec.input_size

    def __call__(self, input: Any, batch_size: int = 1, boxes: BoxesArg = None) -> Iterator[KeypointResult]:
        return self.predict(input, batch_size=batch_size, boxes=boxes)

    def predict(self, input: Any, batch_size: int = 1, boxes: BoxesArg = None) -> Iterator[KeypointResult]:
        """Yield one :class:`KeypointResult` per image (or video frame) of ``input``, in order.

        ``input``: a BGR numpy image, an image file, an http(s) URL, a folder (image files, sorted),
        a video file, or a list of these. ``batch_size`` images are cropped together and all their
        crops run through one forward. ``boxes``: person boxes (see :data:`BoxesArg`); for a single
        image its boxes, otherwise one entry per image/frame; ``None`` uses the whole image.
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.errors = []
        boxes_for = self._box_provider(input, boxes)
        stream = prefetch(iter_inputs(input, self.url_timeout, self.max_download_bytes), self.prefetch)
        held: list[VideoSource] | None = [] if self.overlap else None
        batches = iter_batches(stream, int(batch_size), self.on_error, self.errors, held=held)

        def prepare(batch: list[tuple[int, InputItem]]) -> tuple[list[InputItem], PreparedCrops]:
            readable = [item for _, item in batch if item.image is not None]
            boxes = [boxes_for(position, item) for position, item in batch if item.image is not None]
            images = [item.image for item in readable if item.image is not None]
            return readable, self.prepare(images, boxes, [item.name for item in readable])

        try:
            if held is None:
                for batch in batches:
                    yield from self._finish_items(*prepare(batch))
                return
            yield from run_overlapped(batches, prepare, lambda job: self._finish_items(*job))
        finally:
            batches.close()  # finishes open videos now, not at garbage collection
            for video in held or ():  # those the overlapped loop still used when the input ran out
                video.close()

    def _finish_items(self, items: list[InputItem], prepared: PreparedCrops) -> Iterator[KeypointResult]:
        for item, persons in zip(items, self.finish(prepared)):
            assert item.image is not None
            yield self._result(item.image, persons, item.input_path, item.frame_index, item.video)

    def predict_batch(
        self,
        images: Sequence[np.ndarray],
        boxes: Sequence[Any] | None = None,
        input_paths: Sequence[str | None] | None = None,
        flip: bool | None = None,
    ) -> list[KeypointResult]:
        """Keypoints of images already decoded: one :class:`KeypointResult` per image, in order.

        ``images``: BGR uint8 ``[H, W, 3]`` arrays as ``cv2.imread`` gives them (other layouts and
        dtypes are converted as :func:`tinypose.images.to_bgr8` says). ``boxes``: ``None`` (each
        whole image is one person) or one entry per image: its person boxes as an ``[M, 4|5]``
        array/list or PaddleX detection dicts (:func:`tinypose.boxes.parse_boxes`; ``None`` or an
        empty entry: no people). ``input_paths``: what each result's ``input_path`` says (``None``
        by default). ``flip``: the flip test for this call (``None``: the predictor's :attr:`flip`; the
        service takes it per request). All crops of all images, and their mirrored twins when flipping,
        go through one forward; nothing is read from files (crops are warped by :attr:`crop_workers`
        threads when there are any, on CUDA by default).
        """
        arrays, parsed, paths, names = self.check_batch(images, boxes, input_paths)
        return self.finish_results(self.prepare(arrays, parsed, names), arrays, paths, flip)

    def check_batch(
        self,
        images: Sequence[np.ndarray],
        boxes: Sequence[Any] | None = None,
        input_paths: Sequence[str | None] | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray | None], list[str | None], list[str]]:
        """:meth:`predict_batch`'s arguments checked: BGR uint8 images, parsed boxes, paths, and the names
        that errors use."""
        count = len(images)
        paths: list[str | None] = list(input_paths) if input_paths is not None else [None] * count
        if len(paths) != count:
            raise ValueError(f"input_paths has {len(paths)} entries for {count} images")
        names = [path if path is not None else f"image {index}" for index, path in enumerate(paths)]
        arrays = [to_bgr8(image, name) for image, name in zip(images, names)]
        parsed: list[np.ndarray | None] = [None] * count
        if boxes is not None:
            entries = list(boxes)
            if len(entries) != count:
                raise ValueError(f"boxes has {len(entries)} entries for {count} images; give one per image")
            parsed = [parse_boxes(entry, name) for entry, name in zip(entries, names)]
        return arrays, parsed, paths, names

    def finish_results(
        self,
        prepared: PreparedCrops,
        images: Sequence[np.ndarray],
        input_paths: Sequence[str | None],
        flip: bool | None = None,
    ) -> list[KeypointResult]:
        """:meth:`finish` as one :class:`KeypointResult` per image."""
        people = self.finish(prepared, flip)
        return [self._result(image, persons, path) for image, persons, path in zip(images, people, input_paths)]

    def _box_provider(self, inputs: Any, boxes: BoxesArg) -> Callable[[int, InputItem], np.ndarray | None]:
        if boxes is None:
            return lambda index, item: None
        if callable(boxes):
            return lambda index, item: parse_boxes(boxes(item.image), item.name)
        if _is_single_image(inputs):
            return lambda index, item: parse_boxes(boxes, item.name)
        per_image = list(boxes)

        def provider(index: int, item: InputItem) -> np.ndarray:
            if index >= len(per_image):
                raise ValueError(
                    f"boxes has {len(per_image)} entries but the input has more images ({item.name} is number {index + 1})"
                )
            return parse_boxes(per_image[index], item.name)

        return provider

    def _crop(self, image: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        size = self.spec.input_size
        if self.use_udp:
            matrix = get_udp_warp_matrix(center, scale, size)
        else:
            matrix = get_affine_transform(center, scale, 0, size)
        return warp_affine(image, matrix, size)

    def preprocess(self, crops_bgr: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 BGR crops ``[H, W, 3]`` -> normalized float32 RGB batch ``[N, 3, H, W]`` (PaddleX's arithmetic)."""
        return torch.from_numpy(normalize_bgr8(np.stack(crops_bgr), self._lut))

    def run_crops(
        self, batch: torch.Tensor, centers: np.ndarray, scales: np.ndarray, flip: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Forward normalized crops (with their mirrored twins in the same call when flipping) and decode;
        ``flip`` ``None`` is the predictor's :attr:`flip`."""
        heatmaps, flipped = forward_with_flip(self.backend, batch, self.flip if flip is None else bool(flip))
        return self.codec.decode(heatmaps.numpy(), centers, scales, None if flipped is None else flipped.numpy())

    def person_result(self, keypoints: np.ndarray, kpt_score: float, box: np.ndarray | None) -> dict[str, Any]:
        """The fields of one person, made here only (the pipeline's and the service's results are these
        dicts too): ``keypoints`` float32 ``[K, 3]`` ``(x, y, score)`` and ``kpt_score``, after
        ``coordinate`` (x1, y1, x2, y2) and ``det_score`` when the person came from a box (as PaddleX's
        pipeline orders them; ``det_score`` only when the box has a score). ``box`` is a parsed
        ``[5]`` row (:func:`tinypose.boxes.parse_boxes`) or ``None`` for the whole image."""
        person: dict[str, Any] = {}
        if box is not None:
            person["coordinate"] = [float(v) for v in box[:4]]
            if np.isfinite(box[4]):
                person["det_score"] = float(box[4])
        person["keypoints"] = keypoints
        person["kpt_score"] = float(kpt_score)
        return person

    def prepare(
        self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray | None], names: Sequence[str]
    ) -> PreparedCrops:
        """Crop and normalize every person of ``images`` (BGR uint8; ``boxes`` parsed rows or ``None``
        for the whole image) for one forward; no network runs here, so it may run in another thread.
        A box entirely outside its image is dropped with a warning naming the image (``names``)."""
        regions: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # image, center, scale
        owners: list[tuple[int, np.ndarray | None]] = []
        for slot, (image, rows, name) in enumerate(zip(images, boxes, names)):
            height, width = image.shape[:2]
            if rows is None:
                center, scale = whole_image_center_scale(width, height)
                regions.append((image, center, scale))
                owners.append((slot, None))
                continue
            for row in drop_boxes_outside(rows, width, height, name):
                center, scale = box_xyxy_to_center_scale(row[:4], self.spec.aspect_ratio)
                regions.append((image, center, scale))
                owners.append((slot, row))
        if not regions:
            empty = np.zeros((0, 2))
            return PreparedCrops(None, empty, empty, owners, len(images))
        if self._crop_pool is not None and len(regions) > 1:
            crops = list(self._crop_pool.map(lambda region: self._crop(*region), regions))
        else:
            crops = [self._crop(*region) for region in regions]
        batch = self.preprocess(crops)
        if self.device.type == "cuda":
            batch = batch.pin_memory()  # the runtime's copy to the GPU (non_blocking) is then asynchronous
        centers = np.stack([center for _, center, _ in regions])
        scales = np.stack([scale for _, _, scale in regions])
        return PreparedCrops(batch, centers, scales, owners, len(images))

    def finish(self, prepared: PreparedCrops, flip: bool | None = None) -> list[list[dict[str, Any]]]:
        """Forward :meth:`prepare`'s crops (with their mirrored twins when flipping) and decode them into
        each image's people; ``flip`` ``None`` is the predictor's :attr:`flip`."""
        people: list[list[dict[str, Any]]] = [[] for _ in range(prepared.images)]
        if prepared.batch is not None:
            keypoints, kpt_scores = self.run_crops(prepared.batch, prepared.centers, prepared.scales, flip)
            for person, (slot, box) in enumerate(prepared.owners):
                people[slot].append(self.person_result(keypoints[person], kpt_scores[person], box))
        return people

    def _result(
        self,
        image: np.ndarray,
        people: list[dict[str, Any]],
        input_path: str | None,
        frame_index: int | None = None,
        video: VideoSource | None = None,
    ) -> KeypointResult:
        data: dict[str, Any] = {"input_path": input_path, "input_img": image, "kpts": people}
        if frame_index is not None:
            data["frame_index"] = frame_index
        return KeypointResult(data, self.spec, self.draw_threshold, video)


def create_model(
    model_name: str = "PP-TinyPose_128x96",
    model_dir: str | os.PathLike | None = None,
    flip: bool = False,
    device: str | torch.device | None = None,
    backend: str | None = None,
    **kwargs: Any,
) -> KeypointPredictor:
    """PaddleX-style entry point: a predictor for ``model_name`` with weights from ``model_dir``.

    ``model_dir``: weights in any supported format (``.safetensors``, ``.pdparams``, a Paddle/PaddleX
    inference folder, OpenVINO ``.xml``); ``None`` uses the default released weights.
    ``flip`` turns on the flip test. ``device``: ``"cpu"``, ``"cuda"``, ``"gpu:0"``... (default: CUDA
    when available). ``backend``: a runtime name (``"torch"``, ``"onnxruntime"``, ``"openvino"``,
    ``"tensorrt"``, ``"auto"``); ``None`` (default): :func:`tinypose.runtimes.default_backend`, ONNX
    Runtime with non-spinning threads on the CPU (same keypoints as torch within 0.01 px), torch
    float32 on CUDA. ``backend_options`` go to the runtime. Other keyword
    arguments go to :class:`KeypointPredictor` (``use_udp``, ``draw_threshold``, ``on_error``,
    ``url_timeout``, ``max_download_bytes``, ``backend_options``).
    """
    return KeypointPredictor(model_name, model_dir, flip=flip, device=device, backend=backend, **kwargs)
