"""PaddleDetection's top-down COCO evaluation: AP of the real weights, rescoring + OKS-NMS, detector boxes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tinypose import build_model
from tinypose.codec import HeatmapCodec
from tinypose.data.coco import validate_coco
from tinypose.data.transforms import read_image
from tinypose.models.tinypose import get_spec
from tinypose.train.evaluation import (
    KeypointEvaluator,
    coco_keypoint_stats,
    decode_batch,
    evaluate,
    iter_heatmaps,
    oks_nms,
    person_instances,
    rescore_and_nms,
)

# PaddleDetection's own evaluation of the same weights on the same 22 images (issue 4)
REFERENCE_AP = {
    ("PP-TinyPose_128x96", True): {"AP": 0.6106, "AP50": 0.8903, "AP75": 0.6692},
    ("PP-TinyPose_128x96", False): {"AP": 0.5712},
    ("PP-TinyPose_256x192", True): {"AP": 0.7379, "AP50": 0.9198, "AP75": 0.8244},
    ("PP-TinyPose_256x192", False): {"AP": 0.7109},
}


@pytest.mark.parametrize("model_name", ["PP-TinyPose_128x96", "PP-TinyPose_256x192"])
def test_real_weights_reproduce_paddledetection_ap(model_name: str, coco_dev_paddlex: Path, real_weights: dict) -> None:
    """GT boxes, UDP crop, flip with shift, DARK, non-UDP inverse, rescoring, OKS-NMS: AP within 0.005.

    One pass computes plain and mirrored heatmaps; decoding with and without the mirrored half gives
    the flip and no-flip AP (the same functions ``evaluate`` runs).
    """
    spec = get_spec(model_name)
    model = build_model(model_name, pretrained=real_weights[model_name])
    data, _ = validate_coco(
        coco_dev_paddlex / "annotations" / "person_keypoints_val2017.json", coco_dev_paddlex / "images"
    )
    instances = person_instances(data, coco_dev_paddlex / "images", spec)
    codec = HeatmapCodec.from_spec(spec)
    evaluators = {flip: KeypointEvaluator(data) for flip in (True, False)}
    for indices, heatmaps, flipped in iter_heatmaps(model, instances, spec, flip=True, batch_size=65, progress=False):
        batch = [instances[i] for i in indices]
        evaluators[True].update(indices, decode_batch(codec, heatmaps, flipped, batch), instances)
        evaluators[False].update(indices, decode_batch(codec, heatmaps, None, batch), instances)
    for flip, evaluator in evaluators.items():
        stats = evaluator.compute()
        for name, expected in REFERENCE_AP[(model_name, flip)].items():
            assert stats[name] == pytest.approx(expected, abs=0.005), (model_name, flip, name, stats)


def test_rescoring_and_oks_nms_match_paddledetection(coco_dev: Path, upstream_reference: dict) -> None:
    """Constructed persons with duplicates through KeyPointTopDownCOCOEval (PaddleDetection's code, stored
    in tests/data/upstream): the same persons survive OKS-NMS in the same order with the same scores."""
    reference = upstream_reference["nms"]
    preds = np.array(reference["preds"], dtype=np.float32)
    boxes = np.array(reference["boxes"], dtype=np.float64)
    results = rescore_and_nms(
        preds, boxes[:, 0:2].astype(np.float32), boxes[:, 2:4].astype(np.float32), boxes[:, 5], reference["image_ids"]
    )
    kept = reference["kept"]
    assert len(preds) - len(kept) >= 17, "the case removes duplicate persons"
    assert [r["image_id"] for r in results] == [k["image_id"] for k in kept]
    assert [r["score"] for r in results] == [k["score"] for k in kept]
    for mine, theirs in zip(results, kept):
        np.testing.assert_array_equal(np.float32(mine["keypoints"]), np.float32(theirs["keypoints"]))
    data = json.loads((coco_dev / "annotations" / "person_keypoints.json").read_text())
    stats = coco_keypoint_stats(data, results)
    np.testing.assert_allclose(list(stats.values()), reference["stats"], rtol=0, atol=1e-12)


def test_oks_nms_drops_a_near_copy_and_keeps_a_distinct_person() -> None:
    rng = np.random.default_rng(0)
    person = np.concatenate([rng.uniform(100, 200, (17, 2)), np.full((17, 1), 0.9)], axis=1).astype(np.float32)
    near_copy = person + np.float32([0.5, 0.5, 0])
    elsewhere = person + np.float32([150, 0, 0])
    keypoints = np.stack([near_copy, person, elsewhere])
    keep = oks_nms(keypoints, np.array([0.8, 0.9, 0.7]), np.full(3, 100.0 * 133.0), 0.9)
    assert keep == [1, 2]


def _jittered_detections(data: dict) -> list[dict]:
    rng = np.random.default_rng(5)
    detections = []
    for annotation in data["annotations"]:
        if annotation["iscrowd"]:
            continue
        x, y, w, h = annotation["bbox"]
        x, y, w, h = np.array([x, y, w, h]) + rng.normal(0, 0.03, 4) * [w, h, w, h]
        detections.append(
            {
                "image_id": annotation["image_id"],
                "category_id": 1,
                "bbox": [x, y, w, h],
                "score": float(rng.uniform(0.3, 1.0)),
            }
        )
    return detections


def test_detector_boxes_from_file_and_from_a_callable_agree(
    coco_dev_paddlex: Path, real_weights: dict, tmp_path: Path
) -> None:
    """use_gt_bbox=False: a COCO detection-results file and a detector callable returning the same boxes
    give the same persons and AP; boxes under image_thre are dropped."""
    model_name = "PP-TinyPose_128x96"
    spec = get_spec(model_name)
    annotation_file = coco_dev_paddlex / "annotations" / "person_keypoints_val2017.json"
    data = json.loads(annotation_file.read_text())
    detections = _jittered_detections(data)
    det_file = tmp_path / "detections.json"
    det_file.write_text(json.dumps(detections))
    by_pixels = {
        hashlib.sha1(
            read_image(str(coco_dev_paddlex / "images" / image["file_name"]), bgr=True).tobytes()
        ).hexdigest(): image["id"]
        for image in data["images"]
    }
    calls = []

    def detector(image: np.ndarray) -> np.ndarray:
        """Returns the detections of the image it is shown (recognised by its BGR pixels, the convention
        of every detector callable) as an [N,5] (x1, y1, x2, y2, score) array."""
        image_id = by_pixels[hashlib.sha1(image.tobytes()).hexdigest()]
        calls.append(image_id)
        rows = [d for d in detections if d["image_id"] == image_id]
        return np.array([[x, y, x + w, y + h, d["score"]] for d in rows for x, y, w, h in [d["bbox"]]])

    from_file = person_instances(data, coco_dev_paddlex / "images", spec, det_file, image_thre=0.5)
    from_callable = person_instances(data, coco_dev_paddlex / "images", spec, detector, 0.5, progress=False)
    kept = [d for d in detections if d["score"] >= 0.5]
    assert len(calls) == len(data["images"]) and len(from_file) == len(from_callable) == len(kept) < len(detections)
    for a, b in zip(from_file, from_callable):
        assert (a.image_id, a.score) == (b.image_id, b.score)
        np.testing.assert_allclose(a.center, b.center, atol=1e-3)
        np.testing.assert_allclose(a.scale, b.scale, rtol=1e-5)

    model = build_model(model_name, pretrained=real_weights[model_name])
    stats = evaluate(
        model, coco_dev_paddlex, boxes=det_file, flip=False, batch_size=64, progress=False, output_dir=tmp_path / "out"
    )
    report = json.loads((tmp_path / "out" / "evaluate_result.json").read_text())
    assert report["metrics"] == stats and report["evaluation"]["persons"] == len(kept)
    assert 0.3 < stats["AP"] < 0.6, "jittered boxes, lower box scores: a real but lower AP than with GT boxes"
