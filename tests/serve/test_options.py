"""Beyond PaddleX, for clients such as the page: ``GET /info`` (what the server loaded, its defaults),
and the optional request fields ``flip`` and ``model`` (null: the server's setting), each checked
against the pipeline built with that setting in this process."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tinypose
from tinypose.serve.cli import settings_from_config

from .conftest import Client, ServeProcess, b64
from .test_contract import assert_error

INFER = "/human-keypoint-detection"
BOXES = "/keypoint-detection"


def make_pipeline(openvino_dir: Path, model: str, flip: bool) -> Any:
    size = model.split("_")[-1]
    return tinypose.create_pipeline(
        pose_model=model,
        pose_model_dir=openvino_dir / f"tinypose_{size}" / "model.xml",
        detector_model_dir=openvino_dir / "picodet_s_320_lcnet_pedestrian" / "model.xml",
        flip=flip,
        device="cpu",
        smoothing=False,
    )


def assert_same_people(persons: list[dict[str, Any]], reference: Any) -> None:
    """The service's persons equal ``pipeline.predict``'s people (the tolerances of test_contract)."""
    assert len(persons) == len(reference["boxes"]) > 0
    for got, want in zip(persons, reference["boxes"]):
        np.testing.assert_allclose(got["bbox"], want["coordinate"], atol=1e-3)
        points = np.asarray(got["kpts"])
        np.testing.assert_allclose(points[:, :2], np.asarray(want["keypoints"])[:, :2], atol=1e-4, rtol=0)
        np.testing.assert_allclose(points[:, 2], np.asarray(want["keypoints"])[:, 2], atol=1e-5)


def test_info_says_what_the_server_loaded(client: Client) -> None:
    status, _, body = client.get("/info")
    assert status == 200
    assert list(body) == ["logId", "result", "errorCode", "errorMsg"]
    assert body["errorCode"] == 0 and body["errorMsg"] == "Success"
    assert str(uuid.UUID(body["logId"])) == body["logId"]
    assert body["result"] == {
        "models": ["PP-TinyPose_128x96"],
        "model": "PP-TinyPose_128x96",
        "detector": "picodet_s_320_lcnet_pedestrian",
        "detectorBackend": "onnxruntime",
        "flip": False,
        "detThreshold": 0.5,
        "visualize": True,
        "drawThreshold": 0.3,
        "maxBodyBytes": 3 * 1024 * 1024,
        "maxPixels": 4_000_000,
        "maxBoxes": 100,
        "version": tinypose.__version__,
    }


def test_flip_per_request(client: Client, photos: list[Path], openvino_dir: Path) -> None:
    """``flip: true`` answers as a pipeline built with ``flip=True``; null and false as the server's
    default (off); the answer differs, so the field is not ignored."""
    photo = next(p for p in photos if p.name == "demo_7.jpg")
    image = b64(photo.read_bytes())
    flipped = next(make_pipeline(openvino_dir, "PP-TinyPose_128x96", True).predict(str(photo)))
    plain = next(make_pipeline(openvino_dir, "PP-TinyPose_128x96", False).predict(str(photo)))
    answers = {}
    for flip in (True, False, None):
        status, _, body = client.post(INFER, {"image": image, "visualize": False, "flip": flip})
        assert status == 200, body
        answers[flip] = body["result"]["persons"]
    assert_same_people(answers[True], flipped)
    assert_same_people(answers[False], plain)
    assert answers[None] == answers[False]
    assert answers[True] != answers[False]
    boxes = [[90, 78, 152, 262]]
    status, _, body = client.post(BOXES, {"image": image, "boxes": boxes, "visualize": False, "flip": True})
    assert status == 200, body
    reference = next(make_pipeline(openvino_dir, "PP-TinyPose_128x96", True).pose.predict(str(photo), boxes=boxes))
    np.testing.assert_allclose(
        np.asarray(body["result"]["persons"][0]["kpts"]), np.asarray(reference["kpts"][0]["keypoints"]), atol=1e-4
    )
    status, _, body = client.post(INFER, {"image": image, "flip": "sideways"})
    assert_error(status, body, 422, "body.flip")


def test_a_model_not_loaded_is_refused(client: Client, photos: list[Path]) -> None:
    image = b64(photos[0].read_bytes())
    for endpoint, extra in ((INFER, {}), (BOXES, {"boxes": [[0, 0, 50, 50]]})):
        status, _, body = client.post(endpoint, {"image": image, "model": "PP-TinyPose_256x192", **extra})
        assert_error(status, body, 400, "model 'PP-TinyPose_256x192' is not loaded by this service")
        assert "PP-TinyPose_128x96" in body["errorMsg"]
    status, _, body = client.post(INFER, {"image": image, "model": "PP-TinyPose_128x96", "visualize": False})
    assert status == 200, body


@pytest.mark.slow
def test_two_models_picked_per_request(two_model_server: ServeProcess, photos: list[Path], openvino_dir: Path) -> None:
    """``extra_models`` loads both sizes: /info lists them, ``model`` picks one (each answer equals that
    model's pipeline), null is ``model``; requests for both in one batch are each answered by their own."""
    client = two_model_server.client
    status, _, body = client.get("/info")
    assert status == 200 and body["result"]["models"] == ["PP-TinyPose_128x96", "PP-TinyPose_256x192"]
    assert body["result"]["model"] == "PP-TinyPose_128x96"
    photo = next(p for p in photos if p.name == "demo_7.jpg")
    image = b64(photo.read_bytes())
    asked = ["PP-TinyPose_256x192", "PP-TinyPose_128x96", None, "PP-TinyPose_256x192"]
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda model: client.post(INFER, {"image": image, "visualize": False, "model": model}), asked)
        )
    references = {
        name: next(make_pipeline(openvino_dir, name, False).predict(str(photo)))
        for name in ("PP-TinyPose_128x96", "PP-TinyPose_256x192")
    }
    for model, (status, _, body) in zip(asked, answers):
        assert status == 200, body
        assert_same_people(body["result"]["persons"], references[model or "PP-TinyPose_128x96"])
    status, _, body = client.post(INFER, {"image": image, "model": "256x192"})
    assert_error(status, body, 400, "it serves PP-TinyPose_128x96, PP-TinyPose_256x192")


def test_extra_models_option(compose_config: Any, openvino_dir: Path, tmp_path: Path) -> None:
    """``extra_models``: a list of names or a mapping name -> weights; each model once; names checked."""
    weights = openvino_dir / "tinypose_256x192" / "model.xml"
    settings, _ = settings_from_config(compose_config("serve", [f"extra_models={{PP-TinyPose_256x192: {weights}}}"]))
    assert settings["models"] == [("PP-TinyPose_128x96", None), ("PP-TinyPose_256x192", str(weights))]
    settings, _ = settings_from_config(compose_config("serve", ["model=PP-TinyPose_256x192", "extra_models=[128x96]"]))
    assert settings["models"] == [("PP-TinyPose_256x192", None), ("PP-TinyPose_128x96", None)]
    settings, _ = settings_from_config(compose_config("serve", []))
    assert settings["models"] == [("PP-TinyPose_128x96", None)]
    for overrides, message in (
        (["extra_models=[PP-TinyPose_128x96]"], "extra_models: PP-TinyPose_128x96 is loaded already"),
        (["extra_models=[PP-TinyPose_64x48]"], "extra_models: unknown model 'PP-TinyPose_64x48'"),
        ([f"extra_models={{256x192: {tmp_path / 'missing.xml'}}}"], "missing.xml: no such file or folder"),
    ):
        with pytest.raises(SystemExit, match=message):
            settings_from_config(compose_config("serve", overrides))
