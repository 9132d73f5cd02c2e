"""The detector's runtimes: the ONNX Runtime export is batch invariant, agrees with eager torch, is cached,
and ``auto`` picks it; the pipeline and the service use it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tinypose.detect import PersonDetector, create_detector
from tinypose.runtimes.detector import resolve_detector_backend, with_detector_backend

pytest.importorskip("onnxruntime", reason="the onnxruntime detector needs the [onnx] extra")


@pytest.fixture(scope="module")
def weights(openvino_dir: Path) -> Path:
    return openvino_dir / "picodet_s_320_lcnet_pedestrian" / "model.xml"


@pytest.fixture(scope="module")
def images(data_dir: Path) -> list[np.ndarray]:
    files = (
        sorted((data_dir / "photos").glob("*.jpg"))[:4] + sorted((data_dir / "coco_dev" / "images").glob("*.jpg"))[:4]
    )
    return [cv2.imread(str(path)) for path in files]


@pytest.fixture(scope="module")
def ort_detector(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> PersonDetector:
    detector = create_detector(model_dir=weights, device="cpu", threshold=None)
    return with_detector_backend(detector, "onnxruntime", num_threads=2)  # batches: one image per 1-thread call


def test_auto_and_names() -> None:
    assert resolve_detector_backend("auto", "cpu") == "onnxruntime"
    assert resolve_detector_backend("ORT") == "onnxruntime"
    assert resolve_detector_backend("pytorch") == "torch"
    with pytest.raises(ValueError, match="unknown detector backend 'openvino'; choose one of torch, onnxruntime, auto"):
        resolve_detector_backend("openvino")
    with pytest.raises(ValueError, match="unknown detector backend 'yolo'"):
        resolve_detector_backend("yolo")


def test_onnxruntime_is_batch_invariant(ort_detector: PersonDetector, images: list[np.ndarray]) -> None:
    """An image's raw boxes and scores are bit-identical alone and inside a batch of 8 (eager torch:
    up to ~7e-4 px apart), so a service may run one detector forward for a whole batch of requests."""
    assert ort_detector.backend == "onnxruntime" and ort_detector.batch_invariant
    boxes, scores, _ = ort_detector.raw(images)
    for index, image in enumerate(images):
        alone_boxes, alone_scores, _ = ort_detector.raw([image])
        assert np.array_equal(alone_boxes[0], boxes[index])
        assert np.array_equal(alone_scores[0], scores[index])
    batched = ort_detector.detect(images, batch_size=len(images))
    for image, rows in zip(images, batched):
        assert np.array_equal(ort_detector(image), rows)


def test_onnxruntime_agrees_with_torch(ort_detector: PersonDetector, weights: Path, images: list[np.ndarray]) -> None:
    """Raw boxes within 5e-3 input px and scores within 1e-3 of eager torch; the same people after NMS
    (boxes within 0.05 image px)."""
    eager = create_detector(model_dir=weights, device="cpu", threshold=None)
    for image in images:
        ours, reference = ort_detector.raw([image]), eager.raw([image])
        np.testing.assert_allclose(ours[0], reference[0], atol=5e-3, rtol=0)
        np.testing.assert_allclose(ours[1], reference[1], atol=1e-3, rtol=0)
        found, expected = ort_detector(image, threshold=0.5), eager(image, threshold=0.5)
        assert found.shape == expected.shape
        np.testing.assert_allclose(found, expected, atol=0.05, rtol=0)


def test_export_is_cached(ort_detector: PersonDetector, weights: Path) -> None:
    """A second detector with the same weights and versions opens the same file, not a new export."""
    path = Path(ort_detector.forward.path)  # type: ignore[union-attr]
    stamp = path.stat().st_mtime_ns
    again = with_detector_backend(create_detector(model_dir=weights, device="cpu", threshold=None), "ort")
    assert Path(again.forward.path) == path  # type: ignore[union-attr]
    assert path.stat().st_mtime_ns == stamp


def test_pipeline_uses_it_by_default(openvino_dir: Path) -> None:
    import tinypose

    pipeline = tinypose.create_pipeline(
        pose_model_dir=openvino_dir / "tinypose_128x96" / "model.xml",
        detector_model_dir=openvino_dir / "picodet_s_320_lcnet_pedestrian" / "model.xml",
        device="cpu",
    )
    assert isinstance(pipeline.detector, PersonDetector) and pipeline.detector.backend == "onnxruntime"
    torch_pipeline = tinypose.create_pipeline(
        pose=pipeline.pose,
        detector_model_dir=openvino_dir / "picodet_s_320_lcnet_pedestrian" / "model.xml",
        detector_backend="torch",
        device="cpu",
    )
    assert isinstance(torch_pipeline.detector, PersonDetector) and torch_pipeline.detector.backend == "torch"
