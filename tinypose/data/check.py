"""``check_dataset``: validate a keypoint dataset, draw samples and a histogram, write PaddleX's result file.

The result has PaddleX's fields and meanings (``paddlex/modules/keypoint_detection/dataset_checker``
and ``paddlex/utils/result_saver.py``): ``done_flag``, ``check_pass``, ``attributes`` with
``num_classes`` (categories in the annotation file), ``train_samples``/``val_samples`` (number of
*images* in each file) and ``train_sample_paths``/``val_sample_paths`` (drawn samples, relative to the
output folder, under ``check_dataset/``), ``analysis.histogram``, ``dataset_path`` (the folder's
name), ``show_type`` ``"image"`` and ``dataset_type`` ``"KeypointTopDownCocoDetDataset"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..plotting import pyplot, save_figure
from ..vocab import COCO_KEYPOINTS, COCO_SKELETON
from .coco import validate_coco
from .layout import DatasetError, resolve_layout
from .split import split_dataset
from .transforms import read_image

__all__ = ["check_dataset", "draw_annotations", "plot_histogram", "write_result"]

RESULT_FILE = "check_dataset_result.json"
DATASET_TYPE = "KeypointTopDownCocoDetDataset"
_JOINT_COLORS = [
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170),
]  # fmt: skip
"""PaddleX's per-keypoint colours (RGB) in its dataset-check drawings."""


def draw_annotations(
    image: np.ndarray, annotations: Sequence[Mapping[str, Any]], skeleton: Sequence[tuple[int, int]]
) -> np.ndarray:
    """RGB image with each annotation's box, labelled keypoints (filled: visible, ring: occluded) and limbs."""
    canvas = image.copy()
    thickness = max(1, int(round(max(image.shape[:2]) * 0.004)))
    radius = max(2, thickness + 1)
    for annotation in annotations:
        x, y, w, h = (int(round(v)) for v in annotation["bbox"])
        crowd = annotation.get("iscrowd", 0)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (128, 128, 128) if crowd else (255, 255, 255), thickness)
        keypoints = np.asarray(annotation.get("keypoints") or [], dtype=np.float64).reshape(-1, 3)
        for a, b in skeleton:
            if max(a, b) < len(keypoints) and keypoints[a, 2] > 0 and keypoints[b, 2] > 0:
                pa = tuple(int(round(v)) for v in keypoints[a, :2])
                pb = tuple(int(round(v)) for v in keypoints[b, :2])
                cv2.line(canvas, pa, pb, (0, 255, 0), thickness, cv2.LINE_AA)
        for index, (px, py, visibility) in enumerate(keypoints):
            if visibility > 0:
                color = _JOINT_COLORS[index % len(_JOINT_COLORS)]
                fill = -1 if visibility == 2 else max(1, thickness // 2)
                cv2.circle(canvas, (int(round(px)), int(round(py))), radius, color, fill, cv2.LINE_AA)
    return canvas


def _keypoint_stats(data: Mapping[str, Any], num_joints: int) -> tuple[np.ndarray, np.ndarray]:
    """Labelled count per keypoint, and the number of instances per labelled-keypoint count (0..K)."""
    per_joint = np.zeros(num_joints, np.int64)
    per_count = np.zeros(num_joints + 1, np.int64)
    for annotation in data["annotations"]:
        if annotation.get("iscrowd", 0):
            continue
        flags = np.asarray(annotation.get("keypoints") or [0] * 3 * num_joints).reshape(-1, 3)[:, 2] > 0
        per_joint += flags
        per_count[int(flags.sum())] += 1
    return per_joint, per_count


def plot_histogram(datasets: Mapping[str, Mapping[str, Any]], keypoint_names: Sequence[str], path: str | Path) -> Path:
    """Bar charts of labelled keypoints per joint and of instances per labelled-keypoint count, per split."""
    plt = pyplot()
    num_joints = len(keypoint_names)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), dpi=120)
    width = 0.8 / max(1, len(datasets))
    for offset, (split, data) in enumerate(datasets.items()):
        per_joint, per_count = _keypoint_stats(data, num_joints)
        top.bar(np.arange(num_joints) + offset * width, per_joint, width=width, label=split)
        bottom.bar(np.arange(num_joints + 1) + offset * width, per_count, width=width, label=split)
    top.set_xticks(np.arange(num_joints) + width * (len(datasets) - 1) / 2)
    top.set_xticklabels(keypoint_names, rotation=45, ha="right")
    top.set_ylabel("labelled keypoints")
    top.set_title("Labelled keypoints per joint")
    top.legend()
    bottom.set_xticks(np.arange(num_joints + 1) + width * (len(datasets) - 1) / 2)
    bottom.set_xticklabels([str(i) for i in range(num_joints + 1)])
    bottom.set_xlabel("labelled keypoints in the instance (crowd regions excluded)")
    bottom.set_ylabel("instances")
    bottom.set_title("Person instances by number of labelled keypoints")
    bottom.legend()
    return save_figure(fig, path)


def _image_size_problems(data: Mapping[str, Any], images_dir: Path) -> list[str]:
    """Images that cannot be opened or whose stored size differs from the record (header read only)."""
    from PIL import Image, UnidentifiedImageError

    problems = []
    for index, image in enumerate(data["images"]):
        file = images_dir / image["file_name"]
        where = f"images[{index}] (id {image['id']}, file_name {image['file_name']!r})"
        try:
            with Image.open(file) as picture:
                width, height = picture.size
        except (UnidentifiedImageError, OSError) as error:
            problems.append(f"{where}: {file} is not a readable image ({error.__class__.__name__})")
            continue
        if (width, height) != (image["width"], image["height"]):
            problems.append(
                f"{where}: {file} is {width}x{height} but the record says {image['width']}x{image['height']}"
            )
    return problems


def _draw_samples(
    data: Mapping[str, Any], images_dir: Path, check_dir: Path, sample_num: int, skeleton: Sequence[tuple[int, int]]
) -> list[str]:
    """Draw the first ``sample_num`` images with their annotations into ``check_dir/demo_img``."""
    by_image: dict[Any, list] = {}
    for annotation in data["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    paths = []
    for image in data["images"][:sample_num]:
        file = images_dir / image["file_name"]
        try:
            picture = read_image(str(file))
        except FileNotFoundError:
            raise DatasetError(f"images (id {image['id']}): {file} cannot be decoded as an image") from None
        drawn = draw_annotations(picture, by_image.get(image["id"], []), skeleton)
        target = check_dir / "demo_img" / image["file_name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        paths.append((Path("check_dataset") / target.relative_to(check_dir)).as_posix())
    return paths


def write_result(result: Mapping[str, Any], output_dir: str | Path, name: str = RESULT_FILE) -> Path:
    """Write a result JSON (indent 2, as PaddleX's ``save_result``) into ``output_dir``."""
    path = Path(output_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def check_dataset(
    dataset_dir: str | Path,
    output_dir: str | Path,
    sample_num: int = 10,
    keypoint_names: Sequence[str] | None = None,
    skeleton: Sequence[tuple[int, int]] | None = None,
    split: Mapping[str, Any] | None = None,
    train_annotations: str | Path | None = None,
    val_annotations: str | Path | None = None,
) -> dict[str, Any]:
    """Check ``dataset_dir`` (PaddleX layout), optionally re-split it first; write and return the result.

    ``split`` is ``{"enable": bool, "train_percent": .., "val_percent": .., "seed": ..}``. On a
    problem the result file records ``check_pass: false`` with the message, and
    :class:`DatasetError` is raised with the same message.
    """
    keypoint_names = tuple(keypoint_names or COCO_KEYPOINTS)
    skeleton = tuple(skeleton or COCO_SKELETON)
    output_dir = Path(output_dir)
    check_dir = output_dir / "check_dataset"
    try:
        split_summary = None
        if split and split.get("enable", False):
            split_summary = split_dataset(
                dataset_dir, float(split["train_percent"]), float(split["val_percent"]), int(split.get("seed", 0))
            )
        layout = resolve_layout(dataset_dir, train_annotations, val_annotations)
        datasets: dict[str, dict[str, Any]] = {}
        warnings: list[str] = list(layout.notes)
        for tag in ("train", "val"):  # every check before anything is drawn
            data, found = validate_coco(layout.annotations(tag), layout.images_dir, len(keypoint_names))
            problems = _image_size_problems(data, layout.images_dir)
            if problems:
                listed = "\n  ".join(problems[:20])
                raise DatasetError(
                    f"{layout.annotations(tag)}: {len(problems)} image(s) do not match their records:\n  {listed}"
                )
            datasets[tag] = data
            warnings += found
        attributes: dict[str, Any] = {"num_classes": len(datasets["val"]["categories"])}
        for tag, data in datasets.items():
            attributes[f"{tag}_samples"] = len(data["images"])
            attributes[f"{tag}_sample_paths"] = _draw_samples(data, layout.images_dir, check_dir, sample_num, skeleton)
        plot_histogram(datasets, keypoint_names, check_dir / "histogram.png")
    except DatasetError as error:
        write_result(
            {"done_flag": False, "check_pass": False, "err_type": "DatasetError", "err_msg": str(error)}, output_dir
        )
        raise
    result: dict[str, Any] = {
        "done_flag": True,
        "check_pass": True,
        "attributes": attributes,
        "analysis": {"histogram": "check_dataset/histogram.png"},
        "dataset_path": layout.root.name,
        "show_type": "image",
        "dataset_type": DATASET_TYPE,
    }
    if warnings:
        result["warnings"] = warnings
    if split_summary is not None:
        result["split"] = split_summary
    write_result(result, output_dir)
    return result
