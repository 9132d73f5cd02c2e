"""PaddleX's HTTP contract, field by field, on a real ``python serve.py``; PaddleX's own schema classes
accept the answers; concurrent clients get exactly what ``pipeline.predict`` gives for the same image."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from .conftest import Client, b64

PEERS_PYTHON = Path(os.environ.get("TINYPOSE_PEERS_PYTHON", "/work/peers/bin/python"))
INFER = "/human-keypoint-detection"
BOXES = "/keypoint-detection"


def assert_log_id(body: dict[str, Any]) -> None:
    assert isinstance(body["logId"], str)
    assert str(uuid.UUID(body["logId"])) == body["logId"]


def assert_person(person: dict[str, Any]) -> None:
    assert list(person) == ["bbox", "kpts", "detScore", "kptScore"]
    assert len(person["bbox"]) == 4 and all(isinstance(v, float) for v in person["bbox"])
    assert len(person["kpts"]) == 17
    assert all(len(point) == 3 and all(isinstance(v, float) for v in point) for point in person["kpts"])
    assert isinstance(person["detScore"], float) and isinstance(person["kptScore"], float)


def assert_error(status: int, body: Any, expected: int, fragment: str = "") -> None:
    """A PaddleX error envelope with ``errorCode`` = HTTP status, one line, no trace or server path."""
    assert status == expected, body
    assert isinstance(body, dict) and list(body) == ["logId", "errorCode", "errorMsg"], body
    assert body["errorCode"] == expected
    assert_log_id(body)
    message = body["errorMsg"]
    assert fragment in message, message
    assert "\n" not in message and "Traceback" not in message and ".py" not in message
    assert "/work/" not in message and str(Path.home()) not in message


@pytest.fixture(scope="module")
def pipeline(openvino_dir: Path) -> Any:
    """The same models in this process, for the parity checks."""
    import tinypose

    return tinypose.create_pipeline(
        pose_model_dir=openvino_dir / "tinypose_128x96" / "model.xml",
        detector_model_dir=openvino_dir / "picodet_s_320_lcnet_pedestrian" / "model.xml",
        device="cpu",
        smoothing=False,
    )


def test_health_is_paddlex_envelope(client: Client) -> None:
    status, _, body = client.get("/health")
    assert status == 200
    assert list(body) == ["logId", "errorCode", "errorMsg"]
    assert body["errorCode"] == 0 and body["errorMsg"] == "Healthy"
    assert_log_id(body)


def test_infer_field_by_field(client: Client, photos: list[Path]) -> None:
    photo = next(p for p in photos if p.name == "demo_7.jpg")
    status, headers, body = client.post(
        INFER, {"image": b64(photo.read_bytes()), "detThreshold": None, "visualize": True}
    )
    assert status == 200 and headers["content-type"] == "application/json"
    assert list(body) == ["logId", "result", "errorCode", "errorMsg"]
    assert body["errorCode"] == 0 and body["errorMsg"] == "Success"
    assert_log_id(body)
    result = body["result"]
    assert list(result) == ["persons", "image"]
    assert len(result["persons"]) == 4  # the four people of demo_7.jpg
    for person in result["persons"]:
        assert_person(person)
        assert person["detScore"] > 0.5
    drawing = cv2.imdecode(np.frombuffer(base64.b64decode(result["image"]), np.uint8), cv2.IMREAD_COLOR)
    assert drawing is not None and drawing.shape == cv2.imread(str(photo)).shape
    # visualize false: PaddleX leaves "image" out (response_model_exclude_none=True)
    status, _, plain = client.post(INFER, {"image": b64(photo.read_bytes()), "visualize": False})
    assert status == 200 and list(plain["result"]) == ["persons"]
    assert plain["result"]["persons"] == result["persons"]


def test_det_threshold_per_request(client: Client, photos: list[Path], pipeline: Any) -> None:
    photo = photos[0]
    image = b64(photo.read_bytes())
    for threshold in (0.3, 0.6, 0.9):
        status, _, body = client.post(INFER, {"image": image, "detThreshold": threshold, "visualize": False})
        assert status == 200
        expected = next(pipeline.predict(str(photo), det_threshold=threshold))
        assert len(body["result"]["persons"]) == len(expected["boxes"])
        assert all(p["detScore"] > threshold for p in body["result"]["persons"])


def test_concurrent_clients_equal_pipeline_predict(
    client: Client, photos: list[Path], coco_images: list[Path], pipeline: Any
) -> None:
    """16 clients at once: every answer equals ``pipeline.predict`` on that file within 1e-4 px,
    whatever it was batched with (the metrics prove batches of more than one ran). The server's
    detector is the batch-invariant ONNX Runtime one, so each batch of requests went through ONE
    detector forward as well as one pose forward; ``pipeline`` uses the same (``detector_backend=auto``)."""
    _, _, info = client.get("/info")
    assert info["result"]["detectorBackend"] == "onnxruntime"
    assert pipeline.detector.backend == "onnxruntime"
    files = (photos + coco_images[:11]) * 2
    expected = {path: next(pipeline.predict(str(path))) for path in set(files)}

    def call(path: Path) -> tuple[Path, int, Any]:
        status, _, body = client.post(INFER, {"image": b64(path.read_bytes()), "visualize": False})
        return path, status, body

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, files))
    for path, status, body in answers:
        assert status == 200, body
        persons, reference = body["result"]["persons"], expected[path]["boxes"]
        assert len(persons) == len(reference), path.name
        for got, want in zip(persons, reference):
            np.testing.assert_allclose(got["bbox"], want["coordinate"], atol=1e-3)
            points = np.asarray(got["kpts"])
            np.testing.assert_allclose(points[:, :2], np.asarray(want["keypoints"])[:, :2], atol=1e-4, rtol=0)
            np.testing.assert_allclose(points[:, 2], np.asarray(want["keypoints"])[:, 2], atol=1e-5)
            assert abs(got["detScore"] - want["det_score"]) < 1e-5
            assert abs(got["kptScore"] - want["kpt_score"]) < 1e-5
    _, _, metrics = client.get("/metrics")
    counts = {
        float(line.split('le="')[1].split('"')[0]): float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("tinypose_batch_size_bucket") and "+Inf" not in line
    }
    assert counts[1.0] < max(counts.values()), "no batch of more than one request ran"


def test_keypoints_on_given_boxes(client: Client, photos: list[Path], pipeline: Any) -> None:
    photo = next(p for p in photos if p.name == "demo_7.jpg")
    boxes = [[90, 78, 152, 262], [150, 90, 205, 262, 0.8]]
    status, _, body = client.post(BOXES, {"image": b64(photo.read_bytes()), "boxes": boxes, "visualize": False})
    assert status == 200 and list(body) == ["logId", "result", "errorCode", "errorMsg"]
    persons = body["result"]["persons"]
    assert len(persons) == 2
    for person in persons:
        assert_person(person)
    assert [p["detScore"] for p in persons] == [1.0, 0.8]
    reference = next(pipeline.pose.predict(str(photo), boxes=boxes))
    for got, want in zip(persons, reference["kpts"]):
        np.testing.assert_allclose(np.asarray(got["kpts"]), np.asarray(want["keypoints"]), atol=1e-4)
    status, _, body = client.post(BOXES, {"image": b64(photo.read_bytes()), "boxes": [[10, 10, 5, 5]]})
    assert_error(status, body, 400, "boxes")


def test_malformed_body_is_paddlex_422(client: Client) -> None:
    status, _, body = client.post(INFER, b"{not json")
    assert_error(status, body, 422)
    errors = json.loads(body["errorMsg"])
    assert errors[0]["type"] == "json_invalid" and errors[0]["loc"] == "body[1]"
    status, _, body = client.post(INFER, {"image": 12, "detThreshold": "high", "logId": "abc"})
    assert status == 422 and body["logId"] == "abc"  # PaddleX echoes a logId found in the body
    assert json.loads(body["errorMsg"]) == [
        {"type": "string_type", "loc": "body.image", "msg": "Input should be a valid string"},
        {
            "type": "float_parsing",
            "loc": "body.detThreshold",
            "msg": "Input should be a valid number, unable to parse string as a number",
        },
    ]
    status, _, body = client.post(INFER, {"detThreshold": 0.5})
    assert status == 422 and json.loads(body["errorMsg"])[0] == {
        "type": "missing",
        "loc": "body.image",
        "msg": "Field required",
    }


def test_metrics_are_prometheus_text(client: Client) -> None:
    status, headers, text = client.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    for name in ("tinypose_requests_total", "tinypose_request_seconds_bucket", "tinypose_batch_size_bucket"):
        assert name in text
    assert 'tinypose_requests_total{endpoint="/human-keypoint-detection",status="200"}' in text
    # every request of the tests before (good, malformed, refused) was counted out of "arriving"
    assert "\ntinypose_arriving 0.0\n" in text and "\ntinypose_in_flight 0.0\n" in text


MALFORMED = (
    b"{not json",
    b'{"image": 12, "detThreshold": "high", "logId": "abc"}',
    b'{"detThreshold": 0.5}',
    b'{"image": "x", "visualize": "maybe"}',
    b"[1]",
    b"",
)

PADDLEX_CHECK = """
import json, sys
from fastapi.testclient import TestClient
from paddlex.inference.serving.basic_serving._pipeline_apps.human_keypoint_detection import create_pipeline_app
from paddlex.inference.serving.infra.config import AppConfig
from paddlex.inference.serving.infra.models import AIStudioNoResultResponse, AIStudioResultResponse
from paddlex.inference.serving.schemas.human_keypoint_detection import InferRequest, InferResult

saved = json.load(open(sys.argv[1]))
for body in saved["result"]:
    parsed = AIStudioResultResponse[InferResult].model_validate(body)
    assert json.loads(parsed.model_dump_json(exclude_none=True)) == body, "fields beyond PaddleX schema"
for body in saved["error"]:
    AIStudioNoResultResponse.model_validate(body)
for body in saved["request"]:
    InferRequest.model_validate(body)
# PaddleX's own app (its FastAPI handlers; the pipeline is never reached) on the same malformed bodies
client = TestClient(create_pipeline_app(object(), AppConfig()))
for sent, (status, ours) in zip(saved["malformed"], saved["malformed_answers"]):
    theirs = client.post("/human-keypoint-detection", content=sent.encode(), headers={"Content-Type": "application/json"})
    paddlex = theirs.json()
    assert theirs.status_code == status, (sent, theirs.status_code, status)
    assert paddlex["errorCode"] == ours["errorCode"] and paddlex["errorMsg"] == ours["errorMsg"], (sent, paddlex, ours)
    assert ("logId" in sent) == (paddlex["logId"] == ours["logId"] == "abc")
print("ok", len(saved["result"]), len(saved["error"]), len(saved["malformed"]))
"""


@pytest.mark.skipif(
    not PEERS_PYTHON.exists(), reason=f"needs PaddleX's Python ({PEERS_PYTHON}; set TINYPOSE_PEERS_PYTHON)"
)
def test_paddlex_accepts_answers_and_gives_the_same_422s(client: Client, photos: list[Path], tmp_path: Path) -> None:
    """In PaddleX 3.7.2's Python: its pydantic models validate every kind of answer, and its own
    FastAPI app answers the same malformed bodies with the same status and ``errorMsg``."""
    image = b64(photos[-1].read_bytes())
    answers = [client.post(INFER, body) for body in MALFORMED]
    saved = {
        "result": [
            client.post(INFER, {"image": image})[2],
            client.post(INFER, {"image": image, "visualize": False, "detThreshold": 0.4})[2],
            client.post(BOXES, {"image": image, "boxes": [[90, 78, 152, 262]]})[2],
        ],
        "error": [client.post(INFER, {"image": "aGVsbG8="})[2], client.get("/health")[2]] + [a[2] for a in answers],
        "request": [
            {"image": image, "detThreshold": 0.4, "visualize": False},
            {"image": image, "flip": True, "model": "PP-TinyPose_128x96"},  # ours beyond PaddleX: ignored there
        ],
        "malformed": [body.decode() for body in MALFORMED],
        "malformed_answers": [(status, body) for status, _, body in answers],
    }
    (tmp_path / "answers.json").write_text(json.dumps(saved))
    done = subprocess.run(
        [str(PEERS_PYTHON), "-c", PADDLEX_CHECK, str(tmp_path / "answers.json")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith(f"ok 3 {2 + len(MALFORMED)} {len(MALFORMED)}")
