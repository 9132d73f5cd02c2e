"""COCO keypoint loading against PaddleDetection's own dataset code, and clear errors on broken datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinypose.data.check import check_dataset
from tinypose.data.coco import detection_instances, gt_instances, load_detections, validate_coco
from tinypose.data.layout import DatasetError, make_paddlex_layout, resolve_layout
from tinypose.models.tinypose import get_spec


@pytest.mark.parametrize("size", ["128x96", "256x192"])
def test_gt_instances_match_paddledetection(coco_dev: Path, upstream_reference: dict, size: str) -> None:
    """GT persons, box cleaning, centre and pixel_std-200 scale equal KeypointTopDownCocoDataset's records."""
    spec = get_spec(size)
    data, warnings = validate_coco(coco_dev / "annotations" / "person_keypoints.json", coco_dev / "images")
    assert warnings == []
    instances = gt_instances(data, coco_dev / "images", spec.input_size)
    reference = upstream_reference["instances"][size]
    assert len(instances) == len(reference) == 65
    for mine, theirs in zip(instances, reference):
        assert mine.image_id == theirs["image_id"] and Path(mine.image_file).name == theirs["file"]
        assert mine.center.dtype == np.float32 and mine.scale.dtype == np.float32
        np.testing.assert_array_equal(mine.center, np.float32(theirs["center"]))
        np.testing.assert_array_equal(mine.scale, np.float32(theirs["scale"]))


def test_detection_instances_match_paddledetection(coco_dev: Path, upstream_reference: dict) -> None:
    """use_gt_bbox=False: category 1 only, boxes under image_thre=0.5 dropped, uncleaned boxes, box scores kept."""
    detections = upstream_reference["detections"]["input"]
    data = json.loads((coco_dev / "annotations" / "person_keypoints.json").read_text())
    instances = detection_instances(detections, data, coco_dev / "images", (96, 128), image_thre=0.5)
    reference = upstream_reference["detections"]["kept"]
    assert 0 < len(instances) == len(reference) < len(detections)
    for mine, theirs in zip(instances, reference):
        assert (mine.image_id, Path(mine.image_file).name, mine.score) == (
            theirs["image_id"],
            theirs["file"],
            theirs["score"],
        )
        np.testing.assert_array_equal(mine.center, np.float32(theirs["center"]))
        np.testing.assert_array_equal(mine.scale, np.float32(theirs["scale"]))


def test_load_detections_rejects_bad_records(tmp_path: Path) -> None:
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10], "score": 0.9}]))
    with pytest.raises(DatasetError, match=r"dets\.json: \[0\] \(image_id 1\): invalid bbox"):
        load_detections(path)


# --- broken datasets: each kind fails with a message that names the file and the record ---------------


def _small_dataset(coco_dev: Path, root: Path) -> tuple[Path, dict]:
    """Three coco_dev images in PaddleX's layout (copied, so a test may delete one), train = val."""
    source = json.loads((coco_dev / "annotations" / "person_keypoints.json").read_text())
    keep = [image["id"] for image in source["images"][:3]]
    data = {
        **source,
        "images": [image for image in source["images"] if image["id"] in keep],
        "annotations": [a for a in source["annotations"] if a["image_id"] in keep],
    }
    images = root / "source_images"
    images.mkdir(parents=True)
    for image in data["images"]:
        shutil.copy(coco_dev / "images" / image["file_name"], images / image["file_name"])
    annotation_file = root / "source.json"
    annotation_file.write_text(json.dumps(data))
    dataset = root / "dataset"
    make_paddlex_layout(dataset, images, {"train": annotation_file, "val": annotation_file}, link=False)
    return dataset, data


def _break_val(dataset: Path, data: dict, change) -> Path:
    broken = json.loads(json.dumps(data))
    change(broken)
    path = dataset / "annotations" / "person_keypoints_val2017.json"
    path.write_text(json.dumps(broken))
    return path


def _first_keypoint_annotation(data: dict) -> dict:
    return next(a for a in data["annotations"] if a.get("num_keypoints", 0) > 0)


BROKEN = {
    "missing image": (
        None,
        r"images\[0\] \(id 785, file_name '000000000785.jpg'\): image file .*000000000785\.jpg does not exist",
    ),
    "keypoints of the wrong length": (
        lambda d: _first_keypoint_annotation(d).update(keypoints=_first_keypoint_annotation(d)["keypoints"][:48]),
        r"annotations\[\d+\] \(id \d+, image_id \d+\): keypoints has 48 values, expected 51",
    ),
    "negative box": (
        lambda d: d["annotations"][1].update(bbox=[10, 10, -5, 20]),
        r"annotations\[1\] \(id \d+, image_id \d+\): invalid bbox \[10, 10, -5, 20\]: width and height must be positive",
    ),
    "box outside the image": (
        lambda d: d["annotations"][0].update(bbox=[5000, 10, 50, 20]),
        r"annotations\[0\] \(id 442619, image_id 785\): invalid bbox \[5000, 10, 50, 20\]: outside the 640x425 image",
    ),
    "box of three numbers": (
        lambda d: d["annotations"][0].update(bbox=[5, 10, 50]),
        r"annotations\[0\] \(id 442619, image_id 785\): invalid bbox \[5, 10, 50\]",
    ),
    "unknown image id": (
        lambda d: d["annotations"][2].update(image_id=999999),
        r"annotations\[2\] \(id \d+, image_id 999999\): unknown image id 999999",
    ),
    "visibility flag out of range": (
        lambda d: _first_keypoint_annotation(d)["keypoints"].__setitem__(2, 7),
        r"keypoint visibility flags must be 0, 1 or 2",
    ),
    "duplicate annotation id": (
        lambda d: d["annotations"][1].update(id=d["annotations"][0]["id"]),
        r"annotations\[1\] \(id 442619, image_id \d+\): duplicate annotation id 442619",
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_check_dataset_rejects_broken_dataset(coco_dev: Path, tmp_path: Path, kind: str) -> None:
    dataset, data = _small_dataset(coco_dev, tmp_path)
    change, message = BROKEN[kind]
    if change is None:
        (dataset / "images" / "000000000785.jpg").unlink()
        path = dataset / "annotations" / "person_keypoints_train2017.json"
    else:
        path = _break_val(dataset, data, change)
    output = tmp_path / "output"
    with pytest.raises(DatasetError, match=message) as error:
        check_dataset(dataset, output, sample_num=1)
    assert str(path) in str(error.value)
    result = json.loads((output / "check_dataset_result.json").read_text())
    assert result["done_flag"] is False and result["check_pass"] is False
    assert str(path) in result["err_msg"] and result["err_type"] == "DatasetError"
    assert not (output / "check_dataset" / "demo_img").exists(), "nothing is drawn for a dataset that fails"


def test_check_dataset_rejects_unreadable_json(coco_dev: Path, tmp_path: Path) -> None:
    dataset, _ = _small_dataset(coco_dev, tmp_path)
    path = dataset / "annotations" / "person_keypoints_val2017.json"
    path.write_text('{"images": [], "annotations": [,]}')
    with pytest.raises(
        DatasetError, match=r"person_keypoints_val2017\.json: unreadable JSON \(line 1, column 32: Expecting value\)"
    ):
        check_dataset(dataset, tmp_path / "output")


def test_check_dataset_rejects_image_that_is_not_an_image(coco_dev: Path, tmp_path: Path) -> None:
    dataset, _ = _small_dataset(coco_dev, tmp_path)
    (dataset / "images" / "000000040083.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"id 40083, file_name '000000040083.jpg'\): .* is not a readable image"):
        check_dataset(dataset, tmp_path / "output")


def test_layout_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset folder does not exist"):
        resolve_layout(tmp_path / "nowhere")
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match=r"no train annotations; expected annotations/person_keypoints_train2017"):
        resolve_layout(tmp_path)
    with pytest.raises(DatasetError, match="no dataset given"):
        resolve_layout(None)


def test_paddlex3_annotation_names_are_accepted(coco_dev: Path, tmp_path: Path) -> None:
    """PaddleX 3's checker reads annotations/instance_{train,val}.json: those work too."""
    (tmp_path / "annotations").mkdir()
    (tmp_path / "images").symlink_to(coco_dev / "images")
    for split in ("train", "val"):
        shutil.copy(
            coco_dev / "annotations" / "person_keypoints.json", tmp_path / "annotations" / f"instance_{split}.json"
        )
    layout = resolve_layout(tmp_path)
    assert layout.annotations("val").name == "instance_val.json"
