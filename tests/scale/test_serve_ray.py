"""The HTTP service on real Ray Serve (two replicas on the folder's local Ray instance): PaddleX's
contract as LitServe serves it, every answer equal to the service core's answer for that request alone,
concurrent requests batched by ``@serve.batch``."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tinypose.serve.cli import settings_from_config
from tinypose.serve.core import Job, build_service

serve = pytest.importorskip("ray.serve", reason='needs the ray extra: pip install -e ".[ray]"')
pytestmark = [pytest.mark.slow, pytest.mark.long]  # Ray Serve and two replicas start in ~30 s on 2 cores


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def request(port: int, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        body = None if payload is None else json.dumps(payload).encode()
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def ray_service(ray_instance: dict, openvino_dir: Path, compose_config: Any) -> Iterator[dict[str, Any]]:
    """``python serve.py engine=ray workers=2`` as Ray Serve runs it, on a free loopback port."""
    from tinypose.serve.ray_app import build_application

    port = free_port()
    cfg = compose_config(
        "serve",
        [
            "engine=ray",
            "host=127.0.0.1",
            f"port={port}",
            "workers=2",
            "threads=1",
            "max_batch_size=4",
            "batch_wait_ms=200",
            "device=cpu",
            "detector=picodet_s_192_lcnet_pedestrian",
            f"model_dir={openvino_dir / 'tinypose_128x96' / 'model.xml'}",
            f"detector_weights={openvino_dir / 'picodet_s_192_lcnet_pedestrian' / 'model.xml'}",
        ],
    )
    settings, limits = settings_from_config(cfg)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_application(settings, limits), name="tinypose", route_prefix="/")
    try:
        yield {"port": port, "settings": settings}
    finally:
        serve.shutdown()


@pytest.fixture(scope="module")
def reference_service(ray_service: dict[str, Any]) -> Any:
    """The engine-agnostic core with the same settings, in this process: what each request must get."""
    return build_service(ray_service["settings"])


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def batched_somewhere(port: int, tries: int = 8) -> bool:
    """True when a replica's ``/metrics`` (each replica counts its own) shows fewer batches than requests."""
    for _ in range(tries):
        status, text = request(port, "GET", "/metrics")
        assert status == 200
        batches = metric(text, "tinypose_batch_size_count")
        if batches and metric(text, "tinypose_batched_requests_total") > batches:
            return True
    return False


def encoded(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def test_health_info_and_contract_errors(ray_service: dict[str, Any]) -> None:
    port = ray_service["port"]
    status, body = request(port, "GET", "/health")
    assert status == 200 and body["errorCode"] == 0
    status, body = request(port, "GET", "/info")
    assert status == 200 and body["result"]["models"] == ["PP-TinyPose_128x96"]
    status, body = request(port, "POST", "/human-keypoint-detection", {"image": "%%% not base64"})
    assert status == 400 and body["errorCode"] == 400 and "base64" in body["errorMsg"]
    status, body = request(port, "POST", "/human-keypoint-detection", {"detThreshold": 0.5})
    assert status == 422 and json.loads(body["errorMsg"])[0]["loc"] == "body.image"
    status, body = request(port, "GET", "/")
    assert status == 200 and "<html" in body.lower()


def test_concurrent_requests_get_the_answer_of_each_alone(
    ray_service: dict[str, Any], reference_service: Any, data_dir: Path
) -> None:
    photos = sorted((data_dir / "photos").glob("*.jpg"))
    coco = sorted((data_dir / "coco_dev" / "images").glob("*.jpg"))[:3]
    images = [*photos, *coco]
    payloads = [{"image": encoded(path), "visualize": False} for path in images]
    with ThreadPoolExecutor(len(payloads)) as pool:
        answers = list(
            pool.map(lambda p: request(ray_service["port"], "POST", "/human-keypoint-detection", p), payloads)
        )
    for path, (status, body) in zip(images, answers):
        assert status == 200, body
        alone = reference_service.run([Job("pipeline", path.read_bytes(), visualize=False)])[0]
        assert body["errorCode"] == 0 and body["result"] == alone["body"]["result"], path.name
    assert batched_somewhere(ray_service["port"]), "no replica answered two requests in one batch"
    boxes = [[10.0, 20.0, 200.0, 400.0, 0.9]]
    status, body = request(
        ray_service["port"],
        "POST",
        "/keypoint-detection",
        {"image": encoded(photos[0]), "boxes": boxes, "visualize": False},
    )
    assert status == 200
    import numpy as np

    alone = reference_service.run([Job("boxes", photos[0].read_bytes(), False, boxes=np.asarray(boxes))])[0]
    assert body["result"] == alone["body"]["result"]
