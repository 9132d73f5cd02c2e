"""1,000 mixed bad requests against a real server: each is answered with a 4xx/503 envelope in bounded
time, good requests keep succeeding in between, memory stays flat, nothing crashes."""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .conftest import Client, ImageHost, ServeProcess, b64
from .test_contract import INFER, assert_error
from .test_limits import png_bomb

BAD_REQUESTS = 1000
MAX_SECONDS = 60.0
"""Bound on any single answer (a never-answering URL costs url_timeout=3 s; the rest is queueing
behind the model on a loaded 2-core machine)."""


def bad_requests(photo: bytes, host: ImageHost) -> list[tuple[str, bytes | dict[str, Any], tuple[int, ...]]]:
    """(kind, payload, accepted statuses): every kind of bad input the issue lists."""
    bomb = b64(png_bomb())
    truncated = b64(photo[: len(photo) // 2])
    oversized = b'{"image": "' + b"A" * (3 * 1024 * 1024 + 1) + b'"}'
    return [
        ("bad base64", {"image": "%%%not-base64%%%"}, (400,)),
        ("not an image", {"image": b64(b"plain text, no picture" * 10)}, (400,)),
        ("truncated JPEG", {"image": truncated}, (400,)),
        ("PNG bomb", {"image": bomb}, (413,)),
        ("oversized body", oversized, (413,)),
        ("malformed JSON", b'{"image": "abc', (422,)),
        ("wrong types", {"image": ["a"], "visualize": "perhaps"}, (422,)),
        ("never answers", {"image": host.url("/hang")}, (400,)),
        ("refused address", {"image": f"http://127.0.0.2:{host.port}/photo.jpg"}, (400,)),
        ("refused redirect", {"image": host.url("/redirect-refused")}, (400,)),
    ]


@pytest.mark.long
@pytest.mark.slow
def test_thousand_bad_requests(server: ServeProcess, client: Client, image_host: ImageHost, photos: list[Path]) -> None:
    photo = photos[-1].read_bytes()
    kinds = bad_requests(photo, image_host)
    good = {"image": b64(photo), "visualize": False}
    status, _, reference = client.post(INFER, good)
    assert status == 200
    for _kind, payload, _ in kinds:  # warm every path once before measuring memory
        client.post(INFER, payload)
    rss_before = server.rss_mb()
    rng = random.Random(0)
    plan = [kinds[i % len(kinds)] for i in range(BAD_REQUESTS)]
    rng.shuffle(plan)
    hangs = [entry for entry in plan if entry[0] == "never answers"]
    plan = [entry for entry in plan if entry[0] != "never answers"]

    def send(entry: tuple[str, Any, tuple[int, ...]]) -> tuple[str, int, Any, float, tuple[int, ...]]:
        kind, payload, accepted = entry
        start = time.monotonic()
        status, headers, body = client.post(INFER, payload)
        if status == 503:
            assert headers.get("retry-after") == "1"
        return kind, status, body, time.monotonic() - start, accepted

    good_answers = []
    results = []
    with ThreadPoolExecutor(8) as pool:
        hanging = [pool.submit(send, entry) for entry in hangs[:8]]  # a few at a time: each holds a slot 3 s
        for start in range(0, len(plan), 100):
            results += list(pool.map(send, plan[start : start + 100]))
            good_answers.append(client.post(INFER, good))
        results += [future.result() for future in hanging]
        for offset in range(8, len(hangs), 8):
            results += list(pool.map(send, hangs[offset : offset + 8]))
    rss_after = server.rss_mb()

    assert len(results) == BAD_REQUESTS
    for kind, status, body, seconds, accepted in results:
        if status == 503:
            assert_error(status, body, 503, "busy")
        else:
            assert status in accepted, (kind, status, body)
            assert_error(status, body, status)
        assert seconds < MAX_SECONDS, (kind, seconds)
    for status, _, body in good_answers:
        assert status == 200 and body["result"] == reference["result"]
    assert server.process.poll() is None, "the server died"
    status, _, health = client.get("/health")
    assert status == 200 and health["errorMsg"] == "Healthy"
    status, _, metrics = client.get("/metrics")
    assert "\ntinypose_arriving 0.0\n" in metrics, "a refused request stayed counted as arriving"
    summary = {
        "bad": len(results),
        "by_status": {str(s): sum(1 for r in results if r[1] == s) for s in sorted({r[1] for r in results})},
        "slowest_s": round(max(r[3] for r in results), 2),
        "rss_before_mb": round(rss_before),
        "rss_after_mb": round(rss_after),
    }
    print("\nrobustness:", json.dumps(summary))
    assert rss_after - rss_before < 100, summary
