"""Re-splitting train/val: nothing lost, originals kept, backups never overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinypose.data.check import check_dataset
from tinypose.data.layout import DatasetError, make_paddlex_layout
from tinypose.data.split import split_dataset


@pytest.fixture
def coco_dev_by_split(coco_dev: Path, tmp_path: Path) -> Path:
    """coco_dev with COCO's own split: train2017 images in the train file, val2017 images in the val file."""
    data = json.loads((coco_dev / "annotations" / "person_keypoints.json").read_text())
    files = {}
    for split in ("train", "val"):
        ids = {image["id"] for image in data["images"] if f"/{split}2017/" in image["coco_url"]}
        part = {
            **data,
            "images": [image for image in data["images"] if image["id"] in ids],
            "annotations": [a for a in data["annotations"] if a["image_id"] in ids],
        }
        files[split] = tmp_path / f"{split}.json"
        files[split].write_text(json.dumps(part))
    make_paddlex_layout(tmp_path / "dataset", coco_dev / "images", files)
    return tmp_path / "dataset"


def _records(paths: list[Path]) -> tuple[dict, dict]:
    images, annotations = {}, {}
    for path in paths:
        data = json.loads(path.read_text())
        images.update({image["id"]: json.dumps(image, sort_keys=True) for image in data["images"]})
        for annotation in data["annotations"]:
            assert annotation["id"] not in annotations, "an annotation appears twice after the split"
            annotations[annotation["id"]] = json.dumps(annotation, sort_keys=True)
    return images, annotations


def test_split_keeps_every_annotation_and_backs_up(coco_dev_by_split: Path) -> None:
    annotations_dir = coco_dev_by_split / "annotations"
    originals = sorted(annotations_dir.glob("*.json"))
    before_text = {path.name: path.read_text() for path in originals}
    before = _records(originals)

    summary = split_dataset(coco_dev_by_split, 70, 30, seed=1)

    after_files = [
        annotations_dir / "person_keypoints_train2017.json",
        annotations_dir / "person_keypoints_val2017.json",
    ]
    after = _records(after_files)
    assert after == before, "the union of the new train and val files is the original dataset"
    assert (summary["train_images"], summary["val_images"]) == (15, 7)  # round(22 * 0.7) images for train
    assert summary["train_annotations"] + summary["val_annotations"] == 116
    train_ids = {i["id"] for i in json.loads(after_files[0].read_text())["images"]}
    val_ids = {i["id"] for i in json.loads(after_files[1].read_text())["images"]}
    assert not train_ids & val_ids
    for name, text in before_text.items():
        assert (annotations_dir / f"{name}.bak").read_text() == text, "originals are kept as .bak"

    split_dataset(coco_dev_by_split, 50, 50, seed=2)  # again: the first backups stay untouched
    for name, text in before_text.items():
        assert (annotations_dir / f"{name}.bak").read_text() == text
        assert (annotations_dir / f"{name}.bak1").exists()
    assert _records(after_files) == before


def test_split_merges_identical_files_without_duplicates(coco_dev_paddlex_copy: Path) -> None:
    """train and val holding the same images: pooled once, not twice."""
    summary = split_dataset(coco_dev_paddlex_copy, 80, 20)
    assert summary["train_images"] + summary["val_images"] == 22
    assert summary["train_annotations"] + summary["val_annotations"] == 116


@pytest.fixture
def coco_dev_paddlex_copy(coco_dev: Path, tmp_path: Path) -> Path:
    annotations = coco_dev / "annotations" / "person_keypoints.json"
    make_paddlex_layout(tmp_path / "d", coco_dev / "images", {"train": annotations, "val": annotations})
    return tmp_path / "d"


@pytest.mark.parametrize("train, val", [(80, 30), (0, 100), (100, 0)])
def test_split_rejects_bad_percentages(coco_dev_paddlex_copy: Path, train: int, val: int) -> None:
    with pytest.raises(DatasetError, match="must be positive and sum to 100"):
        split_dataset(coco_dev_paddlex_copy, train, val)
    assert not list((coco_dev_paddlex_copy / "annotations").glob("*.bak")), "nothing moved on an error"


def test_check_dataset_with_split(coco_dev_by_split: Path, tmp_path: Path) -> None:
    result = check_dataset(
        coco_dev_by_split,
        tmp_path / "out",
        sample_num=2,
        split={"enable": True, "train_percent": 60, "val_percent": 40, "seed": 0},
    )
    assert result["check_pass"] and result["attributes"]["train_samples"] + result["attributes"]["val_samples"] == 22
    assert result["split"]["train_images"] == 13
