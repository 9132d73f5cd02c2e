"""``create_model(...).predict(...)``: PaddleX's keypoint module semantics, batched.

Per image (PaddleX ``KptRunnerPredictor``): the whole image as the box (or the given person boxes,
padded as PaddleX's pipeline does), the width-only affine warp with ``cv2.warpAffine``, PaddleX's
normalization, optional flip test, then :class:`tinypose.codec.HeatmapCodec` decoding. Unlike
PaddleX, every crop of a batch of images, and its mirrored twin when flipping, goes through one
forward call of the backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..boxes import parse_boxes
from ..codec import HeatmapCodec
from ..crop import (
    box_xyxy_to_center_scale,
    get_affine_transform,
    get_udp_warp_matrix,
    warp_affine,
    whole_image_center_scale,
)
from ..device import resolve_device
from ..export import create_backend
from ..models.tinypose import ModelSpec, TinyPose, build_model, forward_with_flip, get_spec
from .draw import DEFAULT_DRAW_THRESHOLD
from .inputs import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_URL_TIMEOUT_S,
    VIDEO_SUFFIXES,
    InputError,
    InputItem,
    is_url,
    iter_batches,
    iter_inputs,
    prefetch,
)
from .result import KeypointResult

__all__ = ["Backend", "KeypointPredictor", "create_model", "resolve_device"]

Backend = Callable[[torch.Tensor], torch.Tensor]
"""``backend(batch [N,3,H,W] float32 normalized RGB) -> heatmaps [N,K,H/4,W/4] float32`` on the CPU."""

BoxesArg = Any
"""Person boxes: per image an ``[M, 4|5]`` array/list of ``x1, y1, x2, y2[, score]``, or PaddleX
detection dicts ``{"coordinate": [...], "score": s}`` (see :func:`tinypose.boxes.parse_boxes`); for
several images a sequence of those; or a detector, ``boxes(image_bgr) -> boxes``
(:data:`tinypose.boxes.Detector`), called on each image in BGR order."""


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
    and decoded ahead in a background thread (0: read in the calling thread).
    """

    def __init__(
        self,
        model_name: str = "PP-TinyPose_128x96",
        model_dir: str | os.PathLike | None = None,
        flip: bool = False,
        device: str | torch.device | None = None,
        backend: str = "torch",
        *,
        use_udp: bool = False,
        draw_threshold: float = DEFAULT_DRAW_THRESHOLD,
        on_error: str = "skip",
        url_timeout: float = DEFAULT_URL_TIMEOUT_S,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        model: TinyPose | None = None,
        backend_options: dict[str, Any] | None = None,
        prefetch: int = 2,
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
        self.device = resolve_device(device)
        self.codec = HeatmapCodec.from_spec(self.spec)
        if model is None:
            model = build_model(self.spec.name, pretrained=True if model_dir is None else Path(model_dir))
        self.model = model.eval()
        self.backend_name = backend
        self.backend: Backend = create_backend(backend, self.model, device=self.device, **(backend_options or {}))
        self.errors: list[InputError] = []
        mean = np.asarray(self.spec.mean, dtype=np.float32)
        std = np.asarray(self.spec.std, dtype=np.float32)
        # PaddleX's Normalize: x * (1/255/std) + (-mean/std), per channel in float32
        self._alpha = torch.from_numpy(np.float32(1.0 / 255.0) / std).view(1, 3, 1, 1)
        self._beta = torch.from_numpy(-mean / std).view(1, 3, 1, 1)

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
        batches = iter_batches(stream, int(batch_size), self.on_error, self.errors)
        try:
            for batch in batches:
                yield from self._run([(item, boxes_for(position, item)) for position, item in batch])
        finally:
            batches.close()  # finishes open videos now, not at garbage collection

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
        batch = torch.from_numpy(np.stack(crops_bgr)).flip(-1).permute(0, 3, 1, 2).float().contiguous()
        return batch.mul_(self._alpha).add_(self._beta)

    def run_crops(self, batch: torch.Tensor, centers: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward normalized crops (with their mirrored twins in the same call when flipping) and decode."""
        heatmaps, flipped = forward_with_flip(self.backend, batch, self.flip)
        return self.codec.decode(heatmaps.numpy(), centers, scales, None if flipped is None else flipped.numpy())

    def _run(self, pending: list[tuple[InputItem, np.ndarray | None]]) -> Iterator[KeypointResult]:
        crops, centers, scales, owner = [], [], [], []
        for slot, (item, boxes) in enumerate(pending):
            image = item.decoded()
            height, width = image.shape[:2]
            if boxes is None:
                regions = [whole_image_center_scale(width, height)]
            else:
                regions = [box_xyxy_to_center_scale(box[:4], self.spec.aspect_ratio) for box in boxes]
            for center, scale in regions:
                crops.append(self._crop(image, center, scale))
                centers.append(center)
                scales.append(scale)
                owner.append(slot)
        if crops:
            keypoints, kpt_scores = self.run_crops(self.preprocess(crops), np.stack(centers), np.stack(scales))
        owner_array = np.asarray(owner, dtype=np.int64)
        for slot, (item, boxes) in enumerate(pending):
            people = []
            for row, person in enumerate(np.flatnonzero(owner_array == slot)):
                entry: dict[str, Any] = {"keypoints": keypoints[person], "kpt_score": kpt_scores[person]}
                if boxes is not None:
                    entry["coordinate"] = [float(v) for v in boxes[row, :4]]
                    if np.isfinite(boxes[row, 4]):
                        entry["det_score"] = float(boxes[row, 4])
                people.append(entry)
            data: dict[str, Any] = {"input_path": item.input_path, "input_img": item.image, "kpts": people}
            if item.frame_index is not None:
                data["frame_index"] = item.frame_index
            yield KeypointResult(data, self.spec, self.draw_threshold, item.video)


def create_model(
    model_name: str = "PP-TinyPose_128x96",
    model_dir: str | os.PathLike | None = None,
    flip: bool = False,
    device: str | torch.device | None = None,
    backend: str = "torch",
    **kwargs: Any,
) -> KeypointPredictor:
    """PaddleX-style entry point: a predictor for ``model_name`` with weights from ``model_dir``.

    ``model_dir``: weights in any supported format (``.safetensors``, ``.pdparams``, a Paddle/PaddleX
    inference folder, OpenVINO ``.xml``); ``None`` uses the default released weights.
    ``flip`` turns on the flip test. ``device``: ``"cpu"``, ``"cuda"``, ``"gpu:0"``... (default: CUDA
    when available). ``backend``: ``"torch"`` or a runtime of ``tinypose.export``. Other keyword
    arguments go to :class:`KeypointPredictor` (``use_udp``, ``draw_threshold``, ``on_error``,
    ``url_timeout``, ``max_download_bytes``, ``backend_options``).
    """
    return KeypointPredictor(model_name, model_dir, flip=flip, device=device, backend=backend, **kwargs)
