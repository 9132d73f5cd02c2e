"""Where the pieces of a keypoint dataset live: PaddleX's layout, with clear errors when they are absent.

A dataset folder holds ``images/`` and ``annotations/`` with one COCO person-keypoint JSON per split,
named ``person_keypoints_{train,val}2017.json`` (the COCO names PaddleX's documentation uses);
PaddleX 3.x's own checker reads ``instance_{train,val}.json``. Both are accepted, in that order, so
datasets prepared for either work unchanged. A folder whose ``annotations/`` holds a single JSON file
and none of those names (like ``../shared/data/coco_dev``) uses that file for both splits, with a
note saying so (validation then runs on the training images).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ANNOTATION_NAMES",
    "IMAGES_DIR",
    "DatasetError",
    "DatasetLayout",
    "find_annotation",
    "make_paddlex_layout",
    "resolve_layout",
    "single_annotation_file",
]

logger = logging.getLogger("tinypose")
_noted: set[str] = set()
"""Notes already logged in this process (the layout is resolved again by each stage of a run)."""

IMAGES_DIR = "images"
ANNOTATIONS_DIR = "annotations"
ANNOTATION_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("person_keypoints_train2017.json", "instance_train.json"),
    "val": ("person_keypoints_val2017.json", "instance_val.json"),
}


class DatasetError(ValueError):
    """A dataset cannot be used as it is; the message names the file and the record at fault."""


@dataclass(frozen=True)
class DatasetLayout:
    """Resolved paths of one dataset folder (an annotation path is ``None`` when that split is absent)."""

    root: Path
    images_dir: Path
    train_annotations: Path | None
    val_annotations: Path | None
    notes: tuple[str, ...] = ()
    """What the layout assumed that the user should know (e.g. one annotation file serving both splits)."""

    def annotations(self, split: str) -> Path:
        """The annotation file of ``split`` ('train' or 'val'); a clear error when it is absent."""
        path = self.train_annotations if split == "train" else self.val_annotations
        if path is None:
            names = " or ".join(f"{ANNOTATIONS_DIR}/{n}" for n in ANNOTATION_NAMES[split])
            raise DatasetError(f"{self.root}: no {split} annotations; expected {names}")
        return path


def find_annotation(root: Path, split: str) -> Path | None:
    """The first existing annotation file of ``split`` under ``root/annotations``, else ``None``."""
    for name in ANNOTATION_NAMES[split]:
        path = root / ANNOTATIONS_DIR / name
        if path.is_file():
            return path
    return None


def resolve_layout(
    dataset_dir: str | Path,
    train_annotations: str | Path | None = None,
    val_annotations: str | Path | None = None,
    images_dir: str | Path = IMAGES_DIR,
    require: tuple[str, ...] = ("train", "val"),
) -> DatasetLayout:
    """Find images and annotation files of ``dataset_dir``; explicit paths override the defaults.

    Relative overrides are taken relative to ``dataset_dir``. Splits named in ``require`` must exist.
    """
    if dataset_dir is None or str(dataset_dir) in ("", "???"):
        raise DatasetError("no dataset given: pass dataset_dir=PATH (a folder with images/ and annotations/)")
    root = Path(dataset_dir).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    images = Path(images_dir)
    images = images if images.is_absolute() else root / images
    if not images.is_dir():
        raise DatasetError(f"{root}: no image folder {images} (PaddleX layout: images/ and annotations/)")

    def pick(split: str, override: str | Path | None) -> Path | None:
        if override not in (None, ""):
            path = Path(override)
            path = path if path.is_absolute() else root / path
            if not path.is_file():
                raise DatasetError(f"{path}: {split} annotation file does not exist")
            return path
        return find_annotation(root, split)

    train, val = pick("train", train_annotations), pick("val", val_annotations)
    notes: tuple[str, ...] = ()
    single = single_annotation_file(root)
    if single is not None and (train is None or val is None):
        splits = [name for name, path in (("train", train), ("val", val)) if path is None]
        train, val = train or single, val or single
        notes = (
            f"{single.relative_to(root)} is the only annotation file in {root}: it serves as the "
            f"{' and '.join(splits)} split{'s' if len(splits) > 1 else ''}"
            + (" (validation runs on the training images)" if train == val else "")
            + "; give data.train_annotations / data.val_annotations to choose other files",
        )
        if notes[0] not in _noted:
            _noted.add(notes[0])
            logger.warning(notes[0])
    layout = DatasetLayout(root, images, train, val, notes)
    for split in require:
        layout.annotations(split)
    return layout


def single_annotation_file(root: Path) -> Path | None:
    """``annotations/<name>.json`` when it is the only JSON file there and no split has its own file."""
    folder = root / ANNOTATIONS_DIR
    if not folder.is_dir() or any(find_annotation(root, split) for split in ANNOTATION_NAMES):
        return None
    files = [path for path in folder.glob("*.json") if path.is_file()]
    return files[0] if len(files) == 1 else None


def make_paddlex_layout(
    target_dir: str | Path, images_dir: str | Path, annotations: Mapping[str, str | Path], link: bool = True
) -> DatasetLayout:
    """Lay out an image folder and per-split annotation files in PaddleX's structure under ``target_dir``.

    ``annotations`` maps ``train``/``val`` to COCO files (the same file may serve both); they are
    copied to ``annotations/person_keypoints_{split}2017.json``. ``images/`` becomes a symlink to
    ``images_dir`` (a copy when ``link`` is false or links are unavailable). Existing files are
    never replaced.
    """
    target = Path(target_dir)
    (target / ANNOTATIONS_DIR).mkdir(parents=True, exist_ok=True)
    images = target / IMAGES_DIR
    if images.exists() or images.is_symlink():
        raise DatasetError(f"{images} already exists; choose an empty target folder")
    source_images = Path(images_dir).resolve()
    if not source_images.is_dir():
        raise DatasetError(f"{source_images}: image folder does not exist")
    try:
        if not link:
            raise OSError("copy requested")
        os.symlink(source_images, images, target_is_directory=True)
    except OSError:
        shutil.copytree(source_images, images)
    for split, source in annotations.items():
        destination = target / ANNOTATIONS_DIR / ANNOTATION_NAMES[split][0]
        if destination.exists():
            raise DatasetError(f"{destination} already exists; choose an empty target folder")
        shutil.copyfile(source, destination)
    return resolve_layout(target, require=tuple(annotations))
