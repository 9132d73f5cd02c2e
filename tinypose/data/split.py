"""Re-split a keypoint dataset into train/val by image, keeping the original files as backups.

PaddleX's ``CheckDataset.split`` (``train_percent`` + ``val_percent`` = 100): all images of the
existing annotation files are pooled, shuffled and cut by percentage; every annotation follows its
image. Unlike PaddleX, image and annotation ids are kept (renumbered only where two files disagree),
an existing backup is never overwritten, and the new files are written before the old ones move.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write
from .coco import find_problems, load_coco_json
from .layout import ANNOTATION_NAMES, ANNOTATIONS_DIR, DatasetError, find_annotation, single_annotation_file

__all__ = ["merge_annotation_files", "split_dataset"]


def _backup_path(path: Path) -> Path:
    """``file.json.bak``, or ``.bak1``, ``.bak2``, ... when earlier backups exist (never overwritten)."""
    candidate = path.with_name(path.name + ".bak")
    number = 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.bak{number}")
    return candidate


def merge_annotation_files(files: list[Path]) -> tuple[dict[str, Any], list[dict], dict[Any, list[dict]]]:
    """Pool images and annotations of several COCO files without losing any record.

    An image id seen again with the same ``file_name`` is the same image; with another file name it
    gets a new id. An annotation id seen again with identical content is the same annotation;
    otherwise it gets a new id. Returns (the first file's other top-level entries with the merged
    categories, images, annotations by image id).
    """
    header: dict[str, Any] = {}
    categories: dict[Any, dict] = {}
    images: dict[Any, dict] = {}
    annotations: dict[Any, dict] = {}
    by_image: dict[Any, list[dict]] = {}
    for path in files:
        data = load_coco_json(path)
        errors, _ = find_problems(data, path)
        if errors:
            listed = "\n  ".join(errors[:20])
            raise DatasetError(f"{path}: refusing to split a dataset with problems (fix them first):\n  {listed}")
        for key, value in data.items():
            if key not in ("images", "annotations", "categories"):
                header.setdefault(key, value)
        for category in data["categories"]:
            known: dict | None = categories.setdefault(category["id"], category)
            if known != category:
                raise DatasetError(f"{path}: category id {category['id']} differs from the one in {files[0]}")
        next_image_id = max([*images, *(i["id"] for i in data["images"]), 0]) + 1
        image_ids: dict[Any, Any] = {}
        for original in data["images"]:
            image = original
            known = images.get(original["id"])
            if known is not None and known["file_name"] != original["file_name"]:
                image = {**original, "id": next_image_id}
                next_image_id += 1
            image_ids[original["id"]] = image["id"]
            images.setdefault(image["id"], image)
        next_annotation_id = max([*annotations, *(a["id"] for a in data["annotations"]), 0]) + 1
        for annotation in data["annotations"]:
            annotation = {**annotation, "image_id": image_ids[annotation["image_id"]]}
            known = annotations.get(annotation["id"])
            if known is not None:
                if known == annotation:
                    continue
                annotation = {**annotation, "id": next_annotation_id}
                next_annotation_id += 1
            annotations[annotation["id"]] = annotation
            by_image.setdefault(annotation["image_id"], []).append(annotation)
    header["categories"] = list(categories.values())
    return header, list(images.values()), by_image


def _write_json(data: Mapping[str, Any], path: Path) -> None:
    with atomic_write(path) as temporary, temporary.open("w", encoding="utf-8") as file:
        json.dump(data, file, ensure_ascii=False)


def split_dataset(dataset_dir: str | Path, train_percent: float, val_percent: float, seed: int = 0) -> dict[str, Any]:
    """Pool the train/val annotation files of ``dataset_dir`` and cut them again by image.

    Each original file is moved to ``<name>.bak`` (``.bak1``, ... if that exists); the new files keep
    the original names (PaddleX's ``instance_*`` or COCO's ``person_keypoints_*2017``). A dataset with
    a single annotation file (:func:`~tinypose.data.layout.single_annotation_file`) is split into
    ``person_keypoints_{train,val}2017.json``. Returns a summary with the counts and the backup paths.
    """
    if train_percent <= 0 or val_percent <= 0 or abs(train_percent + val_percent - 100) > 1e-9:
        raise DatasetError(
            f"split: train_percent ({train_percent}) and val_percent ({val_percent}) must be positive and sum to 100"
        )
    root = Path(dataset_dir).expanduser().resolve()
    existing = {split: find_annotation(root, split) for split in ("train", "val")}
    files = [path for path in existing.values() if path is not None]
    single = single_annotation_file(root)
    if not files and single is not None:  # e.g. annotations/person_keypoints.json: split it into two files
        files = [single]
    if not files:
        names = ", ".join(f"{ANNOTATIONS_DIR}/{n}" for names in ANNOTATION_NAMES.values() for n in names)
        raise DatasetError(f"{root}: nothing to split; none of {names} exists")
    header, images, by_image = merge_annotation_files(files)
    if len(images) < 2:
        raise DatasetError(f"{root}: {len(images)} image(s) cannot be split into train and val")

    order = np.random.default_rng(seed).permutation(len(images))
    num_train = min(max(int(round(len(images) * train_percent / 100)), 1), len(images) - 1)
    family = 1 if files[0].name in (ANNOTATION_NAMES["train"][1], ANNOTATION_NAMES["val"][1]) else 0
    targets = {split: root / ANNOTATIONS_DIR / ANNOTATION_NAMES[split][family] for split in ("train", "val")}
    parts = {"train": [images[i] for i in order[:num_train]], "val": [images[i] for i in order[num_train:]]}

    written: dict[str, Path] = {}
    summary: dict[str, Any] = {"seed": seed, "train_percent": train_percent, "val_percent": val_percent}
    for split, split_images in parts.items():
        split_images = sorted(split_images, key=lambda image: image["id"])
        split_annotations = [a for image in split_images for a in by_image.get(image["id"], [])]
        tmp = targets[split].with_name(targets[split].name + ".new")
        _write_json({**header, "images": split_images, "annotations": split_annotations}, tmp)
        written[split] = tmp
        summary[f"{split}_images"] = len(split_images)
        summary[f"{split}_annotations"] = len(split_annotations)
    backups = []
    for path in [*files, *(t for t in targets.values() if t.exists() and t not in files)]:
        backup = _backup_path(path)
        os.replace(path, backup)
        backups.append(str(backup))
    for split, tmp in written.items():
        os.replace(tmp, targets[split])
    summary["files"] = {split: str(path) for split, path in targets.items()}
    summary["backups"] = backups
    return summary
