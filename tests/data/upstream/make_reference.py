"""Produce the small upstream references the data/train tests compare against (run once, by hand).

Runs PaddleDetection's own code (commit 666f597 of the mirror) under the peers interpreter. How it
was run (the peers environment lacks pycocotools, scipy and cv2; they were linked from the project's
venv, same Python 3.11):

    M=/work/.mirror/PaddlePaddle+PaddleDetection/repo; mkdir -p /tmp/ppdet_src && cd /tmp/ppdet_src
    for f in $(git -C $M ls-tree -r --name-only HEAD ppdet | grep '\\.py$'); do
        mkdir -p $(dirname $f); git -C $M show HEAD:$f > $f; done
    mkdir -p /tmp/peerextra && for p in pycocotools scipy scipy.libs cv2 opencv_python_headless.libs; do
        ln -sf /work/main/.venv/lib/python3.11/site-packages/$p /tmp/peerextra/; done
    cd /work/wt/train && PYTHONPATH=tests/data/upstream:/tmp/peerextra /work/peers/bin/python \\
        tests/data/upstream/make_reference.py /tmp/ppdet_src ../shared/data/coco_dev tests/data/upstream

Writes ``reference_coco_dev.json`` with, for coco_dev:

* ``instances``: ``KeypointTopDownCocoDataset(use_gt_bbox=True)`` records (centre, scale, image id);
* ``detections``: a constructed detection-results list and the records upstream keeps from it
  (``use_gt_bbox=False``, ``image_thre=0.5``);
* ``augment``: training samples through ``RandomFlipHalfBodyTransform``,
  ``AugmentationbyInformantionDropping``, ``TopDownAffine(use_udp=True)`` and
  ``ToHeatmapsTopDown_DARK`` with the recipe's settings, each after ``np.random.seed(seed)``;
* ``nms``: constructed predictions (including duplicate persons) through
  ``KeyPointTopDownCOCOEval`` (rescoring, ``oks_nms`` at 0.9, pycocotools), with the kept results
  and the ten stats;
* ``lr``: the recipe's learning rate (``LinearWarmup`` + ``PiecewiseDecay``) at chosen steps.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from ppdet_loader import load_ppdet_module

FLIP_PERM = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]
SIZES = {"128x96": ([96, 128], [24, 32], 1), "256x192": ([192, 256], [48, 64], 2)}


def thumbnail(image: np.ndarray) -> list:
    """8x6 block means of a crop (robust to one-grey-level OpenCV rounding differences)."""
    h, w, c = image.shape
    pooled = image.reshape(8, h // 8, 6, w // 6, c).astype(np.float64).mean(axis=(1, 3))
    return np.round(pooled, 2).tolist()


def short32(values) -> list:
    """float32 values as the shortest decimals that read back to the same float32."""
    array = np.asarray(values, dtype=np.float32)
    flat = [float(np.format_float_positional(np.float32(v), unique=True)) for v in array.reshape(-1)]
    return np.array(flat, dtype=np.float64).reshape(array.shape).tolist()


def instances_of(kc, coco_dir: Path, trainsize, **kwargs):
    dataset = kc.KeypointTopDownCocoDataset(
        str(coco_dir), "images", "annotations/person_keypoints.json", 17, trainsize, pixel_std=200, **kwargs
    )
    dataset.parse_dataset()
    return dataset.db


def augment_reference(ops, db, trainsize, hmsize, sigma, seeds):
    flip_half = ops.RandomFlipHalfBodyTransform(
        trainsize=trainsize,
        upper_body_ids=list(range(11)),
        flip_pairs=FLIP_PERM,
        pixel_std=200,
        scale=0.25,
        rot=30,
        num_joints_half_body=8,
        prob_half_body=0.3,
    )
    dropping = ops.AugmentationbyInformantionDropping(
        trainsize=trainsize, prob_cutout=0.5, offset_factor=0.05, num_patch=1
    )
    affine = ops.TopDownAffine(trainsize=trainsize, use_udp=True)
    heatmaps = ops.ToHeatmapsTopDown_DARK(hmsize=hmsize, sigma=sigma)
    out = []
    for index, seed in seeds:
        record = copy.deepcopy(db[index])
        image = cv2.imread(record["image_file"], cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        record["image"] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        record["score"] = 1
        np.random.seed(seed)
        record = flip_half(record)
        center, scale, rotate = record["center"].tolist(), record["scale"].tolist(), float(record["rotate"])
        record = dropping(record)
        record = affine(record)
        joints = record["gt_joints"][:, :2].tolist()
        crop = record["image"]
        record = heatmaps(record)
        target = record["target"]
        out.append(
            {
                "index": index,
                "seed": seed,
                "center": center,
                "scale": scale,
                "rotate": rotate,
                "joints": short32(joints),
                "visibility": record.get("joints_vis", np.zeros(0)).tolist(),
                "target_weight": record["target_weight"][:, 0].tolist(),
                "target_sum": target.astype(np.float64).sum(axis=(1, 2)).tolist(),
                "target_argmax": target.reshape(17, -1).argmax(axis=1).tolist(),
                "crop_sum": int(crop.astype(np.int64).sum()),
                "crop_thumbnail": thumbnail(crop),
            }
        )
    return out


def nms_case(db, rng):
    """GT-like predictions plus duplicates: near copies (OKS > 0.9, removed) and offset twins (kept)."""
    preds, boxes, image_ids = [], [], []

    def add(joints, scores, record, box_score):
        kpts = np.concatenate([joints, scores[:, None]], axis=1).astype(np.float32)
        preds.append(kpts)
        center, scale = record["center"], record["scale"]
        boxes.append([center[0], center[1], scale[0], scale[1], float(np.prod(scale * 200)), box_score])
        image_ids.append(int(record["im_id"]))

    for i, record in enumerate(db):
        joints = record["gt_joints"][:, :2].astype(np.float64)
        vis = record["joints_vis"][:, 0]
        size = float(np.sqrt(np.prod(record["scale"] * 200)))
        noisy = joints + rng.normal(0, 0.02 * size, joints.shape)
        scores = np.where(vis > 0, rng.uniform(0.3, 0.95, 17), rng.uniform(0.0, 0.3, 17))
        box_score = 1.0 if i % 3 else float(rng.uniform(0.5, 1.0))
        add(noisy, scores, record, box_score)
        if i % 4 == 0:  # a near copy with lower scores: OKS-NMS at 0.9 removes it
            add(noisy + rng.normal(0, 0.002 * size, joints.shape), scores * 0.9, record, box_score)
        if i % 5 == 1:  # a shifted twin: lower OKS, kept, and a false positive for COCOeval
            add(noisy + 0.25 * size, scores * 0.8, record, box_score)
        if i % 11 == 2:  # every score under in_vis_thre: rescored to 0
            add(noisy, np.full(17, 0.1), record, box_score)
    return np.stack(preds), np.array(boxes, dtype=np.float64), image_ids


def main(ppdet_root: str, coco_dir: str, out_dir: str) -> None:
    coco_dir, out_dir = Path(coco_dir), Path(out_dir)
    kc = load_ppdet_module(ppdet_root, "data.source.keypoint_coco")
    ops = load_ppdet_module(ppdet_root, "data.transform.keypoint_operators")
    metrics = load_ppdet_module(ppdet_root, "metrics.keypoint_metrics")
    reference = {
        "source": "PaddleDetection 666f597 (PaddlePaddle/PaddleDetection mirror), numpy "
        f"{np.__version__}, OpenCV {cv2.__version__}"
    }

    reference["instances"] = {}
    for name, (trainsize, _, _) in SIZES.items():
        db = instances_of(kc, coco_dir, trainsize)
        reference["instances"][name] = [
            {
                "image_id": int(r["im_id"]),
                "file": Path(r["image_file"]).name,
                "center": r["center"].tolist(),
                "scale": r["scale"].tolist(),
            }
            for r in db
        ]

    # detection results: GT boxes jittered, scores on both sides of image_thre, one non-person box
    gt = json.loads((coco_dir / "annotations" / "person_keypoints.json").read_text())
    rng = np.random.default_rng(7)
    detections = []
    for annotation in gt["annotations"]:
        x, y, w, h = annotation["bbox"]
        jitter = rng.normal(0, 0.05, 4) * [w, h, w, h]
        detections.append(
            {
                "image_id": annotation["image_id"],
                "category_id": 1 if annotation["id"] % 7 else 2,
                "bbox": [float(v) for v in np.array([x, y, w, h]) + jitter],
                "score": float(rng.uniform(0.2, 1.0)),
            }
        )
    with tempfile.TemporaryDirectory() as tmp:
        det_file = Path(tmp) / "dets.json"
        det_file.write_text(json.dumps(detections))
        db = instances_of(kc, coco_dir, [96, 128], use_gt_bbox=False, bbox_file=str(det_file), image_thre=0.5)
    reference["detections"] = {
        "input": detections,
        "kept": [
            {
                "image_id": int(r["im_id"]),
                "file": Path(r["image_file"]).name,
                "center": r["center"].tolist(),
                "scale": r["scale"].tolist(),
                "score": float(r["score"]),
            }
            for r in db
        ],
    }

    reference["augment"] = {}
    seed_rng = np.random.default_rng(3)
    for name, (trainsize, hmsize, sigma) in SIZES.items():
        db = instances_of(kc, coco_dir, trainsize)
        count = 24 if name == "128x96" else 8
        seeds = [(int(seed_rng.integers(len(db))), int(seed_rng.integers(2**31 - 1))) for _ in range(count)]
        reference["augment"][name] = augment_reference(ops, db, trainsize, hmsize, sigma, seeds)

    db = instances_of(kc, coco_dir, [96, 128])
    preds, boxes, image_ids = nms_case(db, np.random.default_rng(11))
    with tempfile.TemporaryDirectory() as tmp:
        evaluator = metrics.KeyPointTopDownCOCOEval(
            str(coco_dir / "annotations" / "person_keypoints.json"), len(preds), 17, tmp
        )
        evaluator.results = {"all_preds": preds, "all_boxes": boxes, "image_path": image_ids}
        evaluator.accumulate()
        kept = json.loads((Path(tmp) / "keypoints_results.json").read_text())
    reference["nms"] = {
        "preds": short32(preds),
        "boxes": boxes.tolist(),
        "image_ids": image_ids,
        "kept": [{"image_id": r["image_id"], "keypoints": short32(r["keypoints"]), "score": r["score"]} for r in kept],
        "stats": [float(v) for v in evaluator.eval_results["keypoint"]],
    }

    reference["lr"] = lr_reference(ppdet_root)
    (out_dir / "reference_coco_dev.json").write_text(json.dumps(reference, separators=(",", ":")))


def lr_reference(ppdet_root: str) -> dict:
    """The 128x96 recipe's schedule with 10 steps per epoch and milestones scaled to [38, 41] epochs."""
    import paddle  # noqa: F401  (ppdet's optimizer module builds paddle schedulers)

    opt = load_ppdet_module(ppdet_root, "optimizer.optimizer")
    schedule = opt.LearningRate(
        base_lr=0.008,
        schedulers=[opt.PiecewiseDecay(milestones=[38, 41], gamma=0.1), opt.LinearWarmup(start_factor=0.001, steps=50)],
    )(step_per_epoch=10)
    values = []
    for _ in range(450):
        values.append(float(schedule.get_lr()))
        schedule.step()
    return {
        "base_lr": 0.008,
        "milestones": [38, 41],
        "gamma": 0.1,
        "warmup_steps": 50,
        "start_factor": 0.001,
        "steps_per_epoch": 10,
        "values": values,
    }


if __name__ == "__main__":
    main(*sys.argv[1:4])
    print("written", Path(sys.argv[3]) / "reference_coco_dev.json", file=sys.stderr)
