"""The ``openvino`` runtime (our ONNX compiled by OpenVINO for the CPU) and the ``openvino`` (IR)
export format."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from ..export.cache import cache_key, export_cache_dir
from ..export.onnx import DEFAULT_OPSET, INPUT_NAME, export_onnx, onnx_for
from ..export.quantize import calibration_batch, calibration_files, files_sha256
from ..models.tinypose import TinyPose
from .base import CpuMicroBatchRuntime, RuntimeUnavailable

__all__ = ["OpenVinoRuntime", "quantize_openvino", "write_openvino_ir"]

logger = logging.getLogger("tinypose")


_HINTS = {"fp32": "f32", "fp16": "f16", "int8": "f32"}
"""tinypose precision names -> OpenVINO's inference precision hint (int8 comes from the QDQ graph itself)."""


INT8_RECIPE = 3
"""Version of the quantization recipe (calibration crops, NNCF options) in the INT8 cache key: bump it
whenever they change, so a cached model made the old way is not reused."""

INT8_MICRO_BATCH_PIXELS = 128 * 96 * 32
"""Crops per micro-batch of the INT8 model = this // (H * W): 32 at 128x96, 8 at 256x192. Its activations
are a quarter of fp32's, so bigger chunks still fit the caches and amortize the per-layer overhead
of the ~600-node graph; measured single-threaded (docs/export.md) INT8 runs 0.9x fp32 per crop one
crop at a time and 1.4-1.5x in chunks of 8-16."""


class OpenVinoRuntime(CpuMicroBatchRuntime):
    """OpenVINO (the PyPI package) on the CPU, compiled from our ONNX.

    Options: ``num_threads`` (threads for a single crop, default all cores), ``streams`` and
    ``micro_batch`` (batches go through an ``AsyncInferQueue`` on a THROUGHPUT-compiled model with
    that many single-threaded streams; see :class:`~tinypose.runtimes.base.CpuMicroBatchRuntime`),
    ``precision`` (inference precision hint, default ``"f32"`` so results match torch;
    ``"bf16"``/``"f16"`` where the CPU has them, also spelled ``fp32``/``fp16``; ``"int8"``: the
    model quantized by NNCF (:func:`quantize_openvino`, the ``int8`` extra), calibrated on the
    person crops of the images of the folder ``calib_images``, cached; ``calib_detector``: the person
    detector's weights for those crops, default the pipeline's default detector, ``False`` for
    whole-image crops), ``cache_dir``. Single crops run on a model compiled for batch 1.
    """

    name = "openvino"

    def __init__(
        self,
        model: TinyPose,
        device: torch.device,
        *,
        num_threads: int | None = None,
        streams: int | None = None,
        micro_batch: int | None = None,
        precision: str = "f32",
        opset: int = DEFAULT_OPSET,
        cache_dir: str | Path | None = None,
        calib_images: str | Path | None = None,
        calib_detector: str | Path | bool | None = None,
    ) -> None:
        if device.type != "cpu":
            raise RuntimeUnavailable("the openvino backend runs on the CPU here; pass device='cpu'")
        super().__init__(model.spec, device, num_threads, streams, micro_batch)
        if precision == "int8" and micro_batch is None:
            self.micro_batch = max(1, INT8_MICRO_BATCH_PIXELS // (model.spec.input_height * model.spec.input_width))
        try:
            import openvino as ov  # optional extra ([openvino])
        except ImportError as error:
            raise RuntimeUnavailable("the openvino backend needs `pip install openvino`") from error
        self._ov = ov
        hint = _HINTS.get(precision, precision)
        self.path = onnx_for(model, "openvino", ov.__version__, cache_dir=cache_dir, opset=opset)
        self.core = ov.Core()
        if precision == "int8":
            if calib_images is None:
                raise ValueError("precision int8 needs calibration images: pass calib_images=FOLDER (e.g. your photos)")
            self.path = _cached_int8_ir(model, self.path, Path(calib_images), cache_dir, calib_detector)
        elif calib_images is not None or calib_detector is not None:
            raise ValueError("calib_images and calib_detector are for precision='int8'")
        self.model = self.core.read_model(str(self.path))
        self.precision = hint
        single = self.model.clone()
        single.reshape({INPUT_NAME: [1, *self.input_shape]})
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if self.num_threads:
            config["INFERENCE_NUM_THREADS"] = self.num_threads
        self.request = self.core.compile_model(single, "CPU", config).create_infer_request()
        self._queue: Any = None

    def run_latency(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: batch}, share_inputs=True)
        return self.request.get_output_tensor(0).data.copy()

    def run_chunks(self, chunks: list[np.ndarray]) -> list[np.ndarray]:
        if self._queue is None:
            config = {
                "INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "THROUGHPUT",
                "NUM_STREAMS": self.streams, "INFERENCE_NUM_THREADS": self.streams,
            }  # fmt: skip
            compiled = self.core.compile_model(self.model, "CPU", config)
            self._queue = self._ov.AsyncInferQueue(compiled, self.streams)
        results: list[np.ndarray | None] = [None] * len(chunks)

        def done(request: Any, index: int) -> None:
            results[index] = request.get_output_tensor(0).data.copy()

        self._queue.set_callback(done)
        for index, chunk in enumerate(chunks):
            self._queue.start_async({0: chunk}, index)
        self._queue.wait_all()
        return cast("list[np.ndarray]", results)  # wait_all() returns after every callback ran


def quantize_openvino(network: Any, calibration: np.ndarray) -> Any:
    """The INT8 version of the OpenVINO model ``network`` (read from our fp32 ONNX): NNCF's
    post-training quantization, activation ranges calibrated on ``calibration`` (normalized crops
    ``[N, 3, H, W]``, one per step), fast bias correction. Left float: the heatmap conv (whose
    sub-pixel shape the decoder reads) and the residual additions (their int8 inputs cost 0.009 AP at
    128x96 and 0.044 at 256x192 on coco_dev). Measured options: docs/export.md."""
    try:
        import nncf  # optional extra ([int8])
    except ImportError as error:
        raise RuntimeUnavailable("INT8 quantization needs NNCF: `pip install nncf` (or tinypose[int8])") from error
    convs = [op.get_friendly_name() for op in network.get_ordered_ops() if op.get_type_name() == "Convolution"]
    dataset = nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))])
    return nncf.quantize(
        network, dataset, preset=nncf.QuantizationPreset.MIXED, subset_size=len(calibration),
        fast_bias_correction=True, ignored_scope=nncf.IgnoredScope(names=convs[-1:], types=["Add"], validate=False),
    )  # fmt: skip


def _calibration_detector(calib_detector: str | Path | bool | None) -> Any:
    """The person detector whose boxes make the calibration crops (the pipeline's default detector and
    threshold; ``calib_detector`` its weights), or ``None`` (``False``: whole-image crops)."""
    if calib_detector is False:
        return None
    from ..detect import create_detector

    weights = None if calib_detector in (None, True) else calib_detector
    return create_detector(model_dir=cast("str | Path | None", weights), device="cpu", threshold=0.5)


def _detector_key(calib_detector: str | Path | bool | None) -> str:
    if calib_detector is False:
        return "none"
    if calib_detector in (None, True):
        return "default"
    path = Path(cast("str | Path", calib_detector))
    return f"{path.resolve()}:{path.stat().st_size if path.is_file() else ''}"


def _int8_model(model: TinyPose, onnx_path: Path, calib_images: Path, calib_detector: str | Path | bool | None) -> Any:
    import openvino as ov

    detector = _calibration_detector(calib_detector)
    calibration = calibration_batch(model.spec, calibration_files(calib_images), detector)
    return quantize_openvino(ov.convert_model(str(onnx_path)), calibration)


def _cached_int8_ir(
    model: TinyPose,
    onnx_path: Path,
    calib_images: Path,
    cache_dir: str | Path | None,
    calib_detector: str | Path | bool | None = None,
) -> Path:
    """The INT8 IR of ``model`` calibrated on ``calib_images``, cached beside the exports: keyed by the
    fp32 ONNX (weights and versions), the calibration images' bytes and the NNCF version. The
    ``.bin`` is moved into place before the ``.xml``, so an ``.xml`` means a complete pair."""
    import nncf
    import openvino as ov

    files = calibration_files(calib_images)
    key = cache_key(
        onnx=onnx_path.name, calib_sha256=files_sha256(files), calib_count=len(files), nncf=nncf.__version__,
        openvino=ov.__version__, recipe=INT8_RECIPE, detector=_detector_key(calib_detector),
    )  # fmt: skip
    xml = export_cache_dir(cache_dir) / f"{model.spec.name}-int8-openvino-{key[:20]}.xml"
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        return xml
    logger.info("quantizing %s to INT8 (NNCF, %d calibration images) into %s", model.spec.name, len(files), xml)
    calibration = calibration_batch(model.spec, files, _calibration_detector(calib_detector))
    quantized = quantize_openvino(ov.convert_model(str(onnx_path)), calibration)
    with tempfile.TemporaryDirectory(dir=xml.parent, prefix=".int8-") as tmp:
        ov.save_model(quantized, str(Path(tmp) / "model.xml"), compress_to_fp16=False)
        os.replace(Path(tmp) / "model.bin", xml.with_suffix(".bin"))
        os.replace(Path(tmp) / "model.xml", xml)
    return xml


def write_openvino_ir(
    model: TinyPose,
    output: Path,
    *,
    precision: str,
    opset: int,
    exporter: str,
    check_batch: Tensor | None,
    report: Callable[[str], None],
    calib_images: Path | None = None,
    calib_detector: str | Path | bool | None = None,
) -> None:
    """``export.py --format openvino``: our ONNX converted to an OpenVINO IR (``.xml`` + ``.bin``;
    ``fp16`` compresses the weights; ``int8`` quantizes with NNCF, calibrated on the images of the
    folder ``calib_images``); with ``check_batch``, compare OpenVINO's heatmaps with PyTorch's."""
    try:
        import openvino as ov  # optional extra ([openvino])
    except ImportError as error:
        raise RuntimeUnavailable("writing an OpenVINO IR needs `pip install openvino`") from error
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, onnx_path, opset=opset, precision="fp32", exporter=exporter)
        if precision == "int8":
            if calib_images is None:
                raise ValueError("--precision int8 needs --calib-images FOLDER (images to calibrate on)")
            ir = _int8_model(model, onnx_path, calib_images, calib_detector)
        else:
            ir = ov.convert_model(str(onnx_path))
        output.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(ir, str(output), compress_to_fp16=precision == "fp16")
    report(
        f"wrote {output} and {output.with_suffix('.bin')} ({precision} weights) in {time.perf_counter() - start:.1f} s"
    )
    if check_batch is None:
        return
    compiled = ov.Core().compile_model(str(output), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ours = compiled(check_batch.numpy())[0]
    with torch.inference_mode():
        diff = float(np.abs(ours - model(check_batch).numpy()).max())
    report(f"openvino vs torch on a random batch of {len(check_batch)}: max |diff| = {diff:.2e}")
