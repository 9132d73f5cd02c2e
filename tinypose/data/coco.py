"""COCO person-keypoint annotations: reading, validation with specific messages, and person instances.

The instance lists follow PaddleDetection's ``KeypointTopDownCocoDataset`` exactly
(``ppdet/data/source/keypoint_coco.py``): ground-truth persons are the non-crowd annotations with
any labelled keypoint, their boxes cleaned and turned into a centre and a scale in units of
``pixel_std`` = 200 px with the aspect fixed to the input's and 1.25 padding; detection results
keep ``category_id`` 1 boxes scoring at least ``image_thre``, uncleaned.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..crop import PIXEL_STD, box_xywh_to_center_scale, clean_coco_box
from .layout import DatasetError

__all__ = [
    "PersonInstance",
    "detection_instances",
    "find_problems",
    "gt_instances",
    "load_coco_json",
    "load_detections",
    "validate_coco",
]

MAX_LISTED_PROBLEMS = 20


@dataclass
class PersonInstance:
    """One person to crop: where its image is, its box as centre/scale, and its keypoints."""

    image_file: str
    image_id: int
    center: np.ndarray
    """float32 [2], box centre in pixels."""
    scale: np.ndarray
    """float32 [2], box size (aspect fixed, x1.25) in units of ``PIXEL_STD`` pixels."""
    keypoints: np.ndarray
    """float32 [K, 2] in image pixels (zeros for detection boxes)."""
    visibility: np.ndarray
    """float32 [K], 1 for a labelled keypoint (COCO v > 0), else 0."""
    score: float = 1.0
    """Box score: 1 for ground-truth boxes, the detector's score otherwise."""


def _read_json(path: Path, what: str) -> Any:
    """Parse a JSON file; a :class:`DatasetError` names the file when it is absent or unreadable."""
    if not path.is_file():
        raise DatasetError(f"{path}: {what} does not exist")
    try:
        with path.open("r", encoding="utf-8") as file:
            return json.load(file)
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{path}: unreadable JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read the file: {error}") from None


def load_coco_json(path: str | Path) -> dict[str, Any]:
    """Read a COCO annotation file; a clear error names the file when it is absent or not COCO JSON."""
    path = Path(path)
    data = _read_json(path, "annotation file")
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a COCO JSON object, found a {type(data).__name__}")
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(data.get(key), list)]
    if missing:
        raise DatasetError(f"{path}: not a COCO keypoint file: no list {', '.join(repr(k) for k in missing)}")
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def find_problems(
    data: Mapping[str, Any],
    path: str | Path,
    images_dir: str | Path | None = None,
    num_joints: int = 17,
) -> tuple[list[str], list[str]]:
    """Check a COCO keypoint file record by record; returns (errors, warnings), each naming file and record.

    Errors make the dataset unusable (missing image file, unknown image id, keypoints of the wrong
    length, invalid box, ...); warnings are inconsistencies that evaluation tolerates (``num_keypoints``
    disagreeing with the labelled keypoints).
    """
    path = Path(path)
    errors: list[str] = []
    warnings: list[str] = []

    categories: dict[Any, int] = {}
    for index, category in enumerate(data["categories"]):
        where = f"{path}: categories[{index}]"
        if not isinstance(category, dict) or not _is_int(category.get("id")):
            errors.append(f"{where}: a category needs an integer 'id'")
            continue
        names = category.get("keypoints")
        if names is not None and (not isinstance(names, list) or len(names) != num_joints):
            count = len(names) if isinstance(names, list) else type(names).__name__
            errors.append(f"{where} (id {category['id']}): {count} keypoint names, expected {num_joints}")
        categories[category["id"]] = num_joints
    if not categories:
        errors.append(f"{path}: no categories (a keypoint dataset needs the 'person' category)")

    image_ids: dict[Any, Mapping[str, Any]] = {}
    images_dir = Path(images_dir) if images_dir is not None else None
    for index, image in enumerate(data["images"]):
        if not isinstance(image, dict):
            errors.append(f"{path}: images[{index}]: expected an object, found {type(image).__name__}")
            continue
        image_id, file_name = image.get("id"), image.get("file_name")
        where = f"{path}: images[{index}] (id {image_id!r}, file_name {file_name!r})"
        if not _is_int(image_id):
            errors.append(f"{where}: 'id' must be an integer")
            continue
        if image_id in image_ids:
            errors.append(f"{where}: duplicate image id {image_id}")
            continue
        image_ids[image_id] = image
        if not isinstance(file_name, str) or not file_name:
            errors.append(f"{where}: 'file_name' must be a non-empty string")
        elif images_dir is not None and not (images_dir / file_name).is_file():
            errors.append(f"{where}: image file {images_dir / file_name} does not exist")
        for key in ("width", "height"):
            if not _is_number(image.get(key)) or image[key] <= 0:
                errors.append(f"{where}: '{key}' must be a positive number, found {image.get(key)!r}")

    annotation_ids: set[Any] = set()
    for index, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict):
            errors.append(f"{path}: annotations[{index}]: expected an object, found {type(annotation).__name__}")
            continue
        image_id = annotation.get("image_id")
        where = f"{path}: annotations[{index}] (id {annotation.get('id')!r}, image_id {image_id!r})"
        if not _is_int(annotation.get("id")):
            errors.append(f"{where}: 'id' must be an integer")
        elif annotation["id"] in annotation_ids:
            errors.append(f"{where}: duplicate annotation id {annotation['id']}")
        else:
            annotation_ids.add(annotation["id"])
        image = image_ids.get(image_id)
        if image is None:
            errors.append(f"{where}: unknown image id {image_id!r} (no such entry in 'images')")
        if annotation.get("category_id") not in categories:
            errors.append(f"{where}: unknown category id {annotation.get('category_id')!r}")
        if annotation.get("iscrowd", 0) not in (0, 1):
            errors.append(f"{where}: 'iscrowd' must be 0 or 1, found {annotation.get('iscrowd')!r}")
        if not _is_number(annotation.get("area")) or annotation["area"] < 0:
            errors.append(f"{where}: 'area' must be a non-negative number (COCOeval scales OKS by it)")

        bbox = annotation.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            errors.append(f"{where}: invalid bbox {bbox!r}: expected [x, y, width, height] of 4 finite numbers")
        elif bbox[2] <= 0 or bbox[3] <= 0:
            errors.append(f"{where}: invalid bbox {bbox!r}: width and height must be positive")
        elif (
            image is not None
            and _is_number(image.get("width"))
            and _is_number(image.get("height"))
            and (
                bbox[0] >= image["width"]
                or bbox[1] >= image["height"]
                or bbox[0] + bbox[2] <= 0
                or bbox[1] + bbox[3] <= 0
            )
        ):
            errors.append(f"{where}: invalid bbox {bbox!r}: outside the {image['width']}x{image['height']} image")

        keypoints = annotation.get("keypoints")
        expected = 3 * categories.get(annotation.get("category_id"), num_joints)
        if keypoints is None:
            if not annotation.get("iscrowd", 0):
                errors.append(f"{where}: no 'keypoints' (a person annotation needs {expected} numbers)")
            continue
        if not isinstance(keypoints, list) or len(keypoints) != expected:
            count = len(keypoints) if isinstance(keypoints, list) else type(keypoints).__name__
            errors.append(f"{where}: keypoints has {count} values, expected {expected} ({expected // 3} keypoints x 3)")
            continue
        if not all(_is_number(v) for v in keypoints):
            errors.append(f"{where}: keypoints contain values that are not finite numbers")
            continue
        flags = keypoints[2::3]
        if any(v not in (0, 1, 2) for v in flags):
            errors.append(f"{where}: keypoint visibility flags must be 0, 1 or 2, found {sorted(set(flags))}")
            continue
        labelled = sum(1 for v in flags if v > 0)
        if "num_keypoints" in annotation and annotation["num_keypoints"] != labelled:
            warnings.append(f"{where}: num_keypoints is {annotation['num_keypoints']} but {labelled} are labelled")
    return errors, warnings


def validate_coco(
    path: str | Path, images_dir: str | Path | None = None, num_joints: int = 17
) -> tuple[dict[str, Any], list[str]]:
    """Load and check a COCO keypoint file; raises :class:`DatasetError` listing the problems found.

    Returns the data and the warnings.
    """
    data = load_coco_json(path)
    errors, warnings = find_problems(data, path, images_dir, num_joints)
    if errors:
        listed = "\n  ".join(errors[:MAX_LISTED_PROBLEMS])
        more = f"\n  ... and {len(errors) - MAX_LISTED_PROBLEMS} more" if len(errors) > MAX_LISTED_PROBLEMS else ""
        raise DatasetError(f"{path}: {len(errors)} problem(s) in the dataset:\n  {listed}{more}")
    return data, warnings


def gt_instances(
    data: Mapping[str, Any],
    images_dir: str | Path,
    input_size: tuple[int, int],
    num_joints: int = 17,
    pixel_std: float = PIXEL_STD,
) -> list[PersonInstance]:
    """Ground-truth persons to crop, exactly as PaddleDetection's ``_load_coco_keypoint_annotations``.

    ``input_size`` is (width, height) of the model input (it fixes the box aspect). Images are taken
    in file order, their non-crowd annotations in file order; boxes are cleaned
    (``x1 = max(0, x)``, ``x2 = min(width - 1, x1 + max(0, w - 1))``, same for y) and kept if the
    annotation's area is positive; persons without any labelled keypoint are skipped.
    """
    images_dir = Path(images_dir)
    aspect_ratio = input_size[0] * 1.0 / input_size[1]
    by_image: dict[Any, list[Mapping[str, Any]]] = {}
    for annotation in data["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    instances = []
    for image in data["images"]:
        width, height = image["width"], image["height"]
        for annotation in by_image.get(image["id"], []):
            if annotation.get("iscrowd", 0) != 0:
                continue
            box = clean_coco_box(annotation["bbox"], width, height)
            if box is None or not annotation["area"] > 0:
                continue
            keypoints = annotation.get("keypoints") or [0]
            if max(keypoints) == 0:
                continue
            joints = np.asarray(keypoints, dtype=np.float32).reshape(num_joints, 3)
            center, scale = box_xywh_to_center_scale(box, aspect_ratio, pixel_std=pixel_std)
            instances.append(
                PersonInstance(
                    image_file=str(images_dir / image["file_name"]),
                    image_id=int(image["id"]),
                    center=center,
                    scale=scale,
                    keypoints=joints[:, :2].copy(),
                    visibility=np.minimum(joints[:, 2], 1.0),
                )
            )
    return instances


def load_detections(path: str | Path) -> list[dict[str, Any]]:
    """Read a COCO detection-results JSON (a list of {image_id, category_id, bbox [x,y,w,h], score})."""
    path = Path(path)
    detections = _read_json(path, "detection results file")
    if not isinstance(detections, list):
        raise DatasetError(f"{path}: expected a list of COCO detection results, found a {type(detections).__name__}")
    for index, det in enumerate(detections):
        where = f"{path}: [{index}]"
        if not isinstance(det, dict):
            raise DatasetError(f"{where}: expected an object with image_id, category_id, bbox, score")
        missing = [key for key in ("image_id", "category_id", "bbox", "score") if key not in det]
        if missing:
            raise DatasetError(f"{where}: missing {', '.join(missing)}")
        bbox = det["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            raise DatasetError(f"{where} (image_id {det['image_id']}): invalid bbox {bbox!r}, expected [x, y, w, h]")
        if not _is_number(det["score"]):
            raise DatasetError(f"{where} (image_id {det['image_id']}): score {det['score']!r} is not a number")
    return detections


def detection_instances(
    detections: Iterable[Mapping[str, Any]],
    data: Mapping[str, Any] | None,
    images_dir: str | Path,
    input_size: tuple[int, int],
    image_thre: float = 0.0,
    num_joints: int = 17,
    pixel_std: float = PIXEL_STD,
    source: str = "detections",
) -> list[PersonInstance]:
    """Persons from detector boxes, as PaddleDetection's ``_load_coco_person_detection_results``.

    Only ``category_id`` 1 is kept and boxes scoring under ``image_thre`` are dropped; boxes are used
    as given ([x, y, w, h], not cleaned). The image file is the detection's ``filename``, else the
    annotation file's ``file_name`` for its ``image_id`` (upstream assumes ``%012d.jpg``).
    """
    images_dir = Path(images_dir)
    aspect_ratio = input_size[0] * 1.0 / input_size[1]
    file_names = {image["id"]: image["file_name"] for image in (data or {}).get("images", [])}
    instances = []
    for index, det in enumerate(detections):
        if det["category_id"] != 1:
            continue
        score = det["score"]
        if score < image_thre:
            continue
        image_id = int(det["image_id"])
        if "filename" in det:
            file_name = det["filename"]
        elif data is not None:
            if image_id not in file_names:
                raise DatasetError(f"{source}: [{index}] refers to image_id {image_id}, not in the annotation file")
            file_name = file_names[image_id]
        else:
            file_name = f"{image_id:012d}.jpg"
        center, scale = box_xywh_to_center_scale(det["bbox"], aspect_ratio, pixel_std=pixel_std)
        instances.append(
            PersonInstance(
                image_file=str(images_dir / file_name),
                image_id=image_id,
                center=center,
                scale=scale,
                keypoints=np.zeros((num_joints, 2), np.float32),
                visibility=np.ones(num_joints, np.float32),
                score=float(score),
            )
        )
    return instances
