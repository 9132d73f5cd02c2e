"""A dataset with one annotation file (../shared/data/coco_dev's layout) is accepted with a note, and
check_dataset.split cuts it into PaddleX's two files (issue 9: the README's commands failed on it)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from tinypose.data import layout as layout_module
from tinypose.data.layout import resolve_layout
from tinypose.data.split import split_dataset


@pytest.fixture
def single_file_dataset(coco_dev: Path, tmp_path: Path) -> Path:
    root = tmp_path / "dataset"
    (root / "annotations").mkdir(parents=True)
    (root / "images").symlink_to(coco_dev / "images", target_is_directory=True)
    shutil.copyfile(coco_dev / "annotations" / "person_keypoints.json", root / "annotations" / "person_keypoints.json")
    return root


def test_one_annotation_file_serves_both_splits_with_a_note(coco_dev: Path, caplog, monkeypatch) -> None:
    monkeypatch.setattr(layout_module, "_noted", set())
    with caplog.at_level(logging.WARNING, logger="tinypose"):
        layout = resolve_layout(coco_dev)
        assert resolve_layout(coco_dev).notes == layout.notes
    single = coco_dev.resolve() / "annotations" / "person_keypoints.json"
    assert layout.train_annotations == layout.val_annotations == single
    (note,) = layout.notes
    assert note.startswith("annotations/person_keypoints.json is the only annotation file")
    assert "serves as the train and val splits (validation runs on the training images)" in note
    assert caplog.messages == [note], "logged once per process, however often the layout is resolved"


def test_split_files_win_and_two_json_files_are_not_guessed(single_file_dataset: Path) -> None:
    annotations = single_file_dataset / "annotations"
    shutil.copyfile(annotations / "person_keypoints.json", annotations / "other.json")
    with pytest.raises(ValueError, match="no train annotations"):
        resolve_layout(single_file_dataset)


def test_split_cuts_the_single_file_into_paddlex_files(single_file_dataset: Path) -> None:
    summary = split_dataset(single_file_dataset, 80, 20, seed=0)
    annotations = single_file_dataset / "annotations"
    assert sorted(p.name for p in annotations.iterdir()) == [
        "person_keypoints.json.bak",
        "person_keypoints_train2017.json",
        "person_keypoints_val2017.json",
    ]
    assert (summary["train_images"], summary["val_images"]) == (18, 4)
    layout = resolve_layout(single_file_dataset)
    assert layout.notes == () and layout.train_annotations != layout.val_annotations
    total = sum(len(json.loads(p.read_text())["annotations"]) for p in annotations.glob("*2017.json"))
    assert total == 116, "every annotation kept"
