"""Result surface (PaddleX's .json/.img/print/save_to_*), output names that never clobber, drawing, boxes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tinypose.crop import box_xyxy_to_center_scale, get_affine_transform, warp_affine
from tinypose.predict import draw_keypoints
from tinypose.predict.draw import line_width_for


@pytest.fixture(scope="module")
def result(predictors, e2e_dir: Path):
    return next(predictors[False].predict(str(e2e_dir / "images" / "demo_5.jpg")))


def test_json_has_paddlex_fields(result, e2e_dir: Path) -> None:
    data = result.json
    assert list(data) == ["res"] and list(data["res"]) == ["input_path", "kpts"]
    assert data["res"]["input_path"] == str(e2e_dir / "images" / "demo_5.jpg")
    person = data["res"]["kpts"][0]
    assert list(person) == ["keypoints", "kpt_score"]
    assert len(person["keypoints"]) == 17 and all(len(k) == 3 and isinstance(k[0], float) for k in person["keypoints"])
    assert isinstance(person["kpt_score"], float)
    assert abs(person["kpt_score"] - np.mean([k[2] for k in person["keypoints"]])) < 1e-6
    json.dumps(data)  # plain types only
    assert result["input_img"].shape == (532, 841, 3)  # the BGR image as read, like PaddleX's input_img


def test_print_and_img(result, capsys) -> None:
    result.print()
    assert json.loads(capsys.readouterr().out) == result.json
    result.print(format_json=False)
    assert "'kpts'" in capsys.readouterr().out
    picture = result.img["res"]
    assert isinstance(picture, Image.Image) and picture.mode == "RGB" and picture.size == (841, 532)
    np.testing.assert_array_equal(np.asarray(picture)[..., ::-1], result.draw())


def test_save_to_json_and_img_in_a_folder(result, tmp_path: Path) -> None:
    json_path = result.save_to_json(tmp_path)
    image_path = result.save_to_img(tmp_path)
    assert (json_path.name, image_path.name) == ("demo_5_res.json", "demo_5_res.jpg")
    assert json.loads(json_path.read_text()) == result.json["res"]
    assert cv2.imread(str(image_path)).shape == (532, 841, 3)
    assert result.save_to_json(tmp_path) == json_path  # the same input overwrites its own file
    explicit = result.save_to_json(tmp_path / "named.json")
    assert explicit.name == "named.json" and result.save_to_img(tmp_path / "pic.png").name == "pic.png"


def test_same_file_name_from_two_folders_never_clobbers(predictors, e2e_dir: Path, tmp_path: Path) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        shutil.copy(e2e_dir / "images" / "demo_3.jpg", tmp_path / folder / "photo.jpg")
    out = tmp_path / "out"
    results = list(predictors[False].predict([str(tmp_path / "x"), str(tmp_path / "y")]))
    names = [r.save_to_json(out).name for r in results]
    assert names == ["photo_res.json", "photo_2_res.json"]
    assert [r.save_to_img(out).name for r in results] == ["photo_res.jpg", "photo_2_res.jpg"]
    owners = [json.loads((out / n).read_text())["input_path"] for n in names]
    assert owners == [str(tmp_path / "x" / "photo.jpg"), str(tmp_path / "y" / "photo.jpg")]

    # another folder holding a result of a different input, written before (e.g. by an earlier run)
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "photo_res.json").write_text(json.dumps({"input_path": "/elsewhere/photo.jpg", "kpts": []}))
    assert results[0].save_to_json(earlier).name == "photo_2_res.json"
    assert json.loads((earlier / "photo_res.json").read_text())["input_path"] == "/elsewhere/photo.jpg"


def test_array_results_get_distinct_names(predictors, e2e_dir: Path, tmp_path: Path) -> None:
    image = cv2.imread(str(e2e_dir / "images" / "demo_3.jpg"))
    first, second = predictors[False].predict([image, image])
    assert first.save_to_json(tmp_path) != second.save_to_json(tmp_path)
    assert len(list(tmp_path.glob("*_res.json"))) == 2


def test_boxes_are_cropped_like_the_paddlex_pipeline(predictors, e2e_dir: Path) -> None:
    image = cv2.imread(str(e2e_dir / "images" / "demo_5.jpg"))
    boxes = [[400.0, 60.0, 560.0, 500.0, 0.93], {"coordinate": [100, 100, 300, 200], "score": 0.5}]
    result = next(predictors[True].predict(image, boxes=boxes))
    assert [p["coordinate"] for p in result["kpts"]] == [[400.0, 60.0, 560.0, 500.0], [100.0, 100.0, 300.0, 200.0]]
    assert [p["det_score"] for p in result["kpts"]] == [0.93, 0.5]
    # each person equals predicting that crop alone with PaddleX's _box_xyxy2cs center/scale
    predictor = predictors[True]
    for person, box in zip(result["kpts"], [boxes[0][:4], boxes[1]["coordinate"]]):
        center, scale = box_xyxy_to_center_scale(box, predictor.spec.aspect_ratio)
        crop = warp_affine(
            image, get_affine_transform(center, scale, 0, predictor.spec.input_size), predictor.spec.input_size
        )
        keypoints, score = predictor.run_crops(predictor.preprocess([crop]), center[None], scale[None])
        np.testing.assert_allclose(person["keypoints"], keypoints[0], atol=1e-3)
        assert abs(person["kpt_score"] - score[0]) < 1e-5
    assert result["kpts"][1]["keypoints"][:, 0].min() >= 100 - 0.25 * 250  # mapped back into the padded box

    no_people = next(predictor.predict(image, boxes=np.zeros((0, 4))))
    assert no_people["kpts"] == [] and no_people.json["res"]["kpts"] == []
    with pytest.raises(ValueError, match="box 0 .* x2 > x1"):
        next(predictor.predict(image, boxes=[[10, 10, 5, 40]]))


def test_boxes_per_image_and_from_a_callable(predictors, e2e_dir: Path) -> None:
    folder = str(e2e_dir / "images")
    per_image = [[[10, 10, 200, 300]], [[50, 50, 400, 500], [0, 0, 100, 100]]]
    results = list(predictors[False].predict(folder, batch_size=2, boxes=per_image))
    assert [len(r["kpts"]) for r in results] == [1, 2]
    seen = []
    called = list(
        predictors[False].predict(
            folder, boxes=lambda image: seen.append(image) or [[0, 0, image.shape[1] / 2, image.shape[0] / 2]]
        )
    )
    assert [r["kpts"][0]["coordinate"][2] for r in called] == [359 / 2, 841 / 2]
    first = sorted(Path(folder).iterdir())[0]
    np.testing.assert_array_equal(seen[0], cv2.imread(str(first)))  # a boxes callable gets BGR images
    with pytest.raises(ValueError, match="boxes has 1 entries"):
        list(predictors[False].predict(folder, boxes=per_image[:1]))


def test_drawing_scales_with_the_image_and_leaves_out_low_scores() -> None:
    assert line_width_for(128, 96) == 1 and line_width_for(1080, 1920) == 10
    blank = np.zeros((200, 200, 3), np.uint8)
    person = np.zeros((17, 3), np.float32)
    person[:, :2] = [100, 100]
    person[5] = [40, 40, 0.9]  # left shoulder, confident
    person[6] = [160, 40, 0.1]  # right shoulder, below the threshold
    drawn = draw_keypoints(blank, [person], [(5, 6)], threshold=0.3)
    assert drawn[40, 40].any() and not drawn[40, 160].any()
    assert not drawn[40, 100].any()  # the limb needs both joints
    person[6, 2] = 0.9
    assert draw_keypoints(blank, [person], [(5, 6)], threshold=0.3)[40, 100].any()
