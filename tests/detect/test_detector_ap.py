"""Keypoint AP with PP-PicoDet 320 boxes instead of ground truth, as PaddleDetection's ``use_gt_bbox: False``.

References: PaddleDetection's own top-down COCO evaluation on ../shared/data/coco_dev fed the same
320-detector boxes (score >= 0.5 kept, the TinyPose configs' ``image_thre``), with the released
weights (the OpenVINO IRs in ../shared/weights/openvino).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinypose.data.coco import validate_coco
from tinypose.detect import create_detector
from tinypose.models import build_model
from tinypose.train.evaluation import detector_results, evaluate

PADDLEDETECTION_AP = {
    ("PP-TinyPose_128x96", True): 0.5156,
    ("PP-TinyPose_128x96", False): 0.4807,
    ("PP-TinyPose_256x192", True): 0.6008,
    ("PP-TinyPose_256x192", False): 0.5935,
}


@pytest.fixture(scope="module")
def coco_dev_files(coco_dev: Path) -> dict[str, Path]:
    """coco_dev's annotation file and image folder, as ``evaluate(annotation_file=, images_dir=)`` takes them."""
    return {"annotation_file": coco_dev / "annotations" / "person_keypoints.json", "images_dir": coco_dev / "images"}


@pytest.fixture(scope="module")
def detections(coco_dev_files: dict[str, Path], openvino_dir: Path) -> list[dict]:
    """COCO detection results of the 320 detector on every coco_dev image (all NMS outputs)."""
    detector = create_detector(
        320, openvino_dir / "picodet_s_320_lcnet_pedestrian" / "model.xml", "cpu", threshold=None
    )
    gt_data, _ = validate_coco(coco_dev_files["annotation_file"], coco_dev_files["images_dir"], 17)
    return detector_results(detector, gt_data, coco_dev_files["images_dir"], progress=False)


@pytest.mark.parametrize(("model_name", "flip"), list(PADDLEDETECTION_AP))
def test_ap_with_detector_boxes_matches_paddledetection(
    model_name: str, flip: bool, detections: list[dict], coco_dev_files: dict[str, Path], openvino_dir: Path
) -> None:
    size = model_name.split("_", 1)[1]
    model = build_model(model_name, pretrained=openvino_dir / f"tinypose_{size}" / "model.xml")
    stats = evaluate(model, **coco_dev_files, boxes=detections, image_thre=0.5, flip=flip, device="cpu", progress=False)
    assert stats["AP"] == pytest.approx(PADDLEDETECTION_AP[(model_name, flip)], abs=0.005)


def test_train_py_evaluate_takes_a_detector(
    coco_dev_files: dict[str, Path], openvino_dir: Path, tmp_path: Path, compose_config
) -> None:
    """``python train.py mode=evaluate evaluate.boxes=320 ...``, composed from conf/train.yaml as Hydra does."""
    from tinypose.train.cli import run_evaluate

    overrides = [
        "mode=evaluate",
        f"dataset_dir={coco_dev_files['images_dir'].parent}",
        "data.val_annotations=annotations/person_keypoints.json",
        f"weights={openvino_dir / 'tinypose_128x96' / 'model.xml'}",
        "evaluate.boxes=320",
        f"evaluate.detector_weights={openvino_dir / 'picodet_s_320_lcnet_pedestrian' / 'model.xml'}",
        "evaluate.flip=false",
        "evaluate.device=cpu",
        f"output_dir={tmp_path}",
    ]
    cfg = compose_config("train", overrides)
    stats = run_evaluate(cfg)
    assert stats["AP"] == pytest.approx(PADDLEDETECTION_AP[("PP-TinyPose_128x96", False)], abs=0.005)
    report = json.loads((tmp_path / "evaluate_result.json").read_text())
    assert report["evaluation"]["boxes"] == "detector" and report["evaluation"]["image_thre"] == 0.5
