"""Where the pieces of a keypoint dataset live: PaddleX's layout, with clear errors when they are absent.

A dataset folder holds ``images/`` and ``annotations/`` with one COCO person-keypoint JSON per split.
DESIGN.md names the files ``person_keypoints_{train,val}2017.json`` (the COCO names PaddleX's
documentation uses); PaddleX 3.x's own checker reads ``instance_{train,val}.json``. Both are accepted,
in that order, so datasets prepared for either work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DatasetError", "DatasetLayout", "ANNOTATION_NAMES", "IMAGES_DIR", "resolve_layout", "find_annotation"]

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
            path = Path(override)  # type: ignore[arg-type]
            path = path if path.is_absolute() else root / path
            if not path.is_file():
                raise DatasetError(f"{path}: {split} annotation file does not exist")
            return path
        return find_annotation(root, split)

    layout = DatasetLayout(root, images, pick("train", train_annotations), pick("val", val_annotations))
    for split in require:
        layout.annotations(split)
    return layout
