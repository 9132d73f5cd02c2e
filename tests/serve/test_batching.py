"""The batching loop's window: it waits for more requests only when more are inside the service."""

from __future__ import annotations

import queue
import time

from tinypose.serve.http import Gate
from tinypose.serve.litserve_app import KeypointLitAPI, WakeOnRequestLoop

WINDOW_MS = 2000


def _batch(inside: int, queued: int) -> tuple[int, float]:
    """Requests in the batch the loop makes from ``queued`` requests, while ``inside`` are in the service; seconds taken."""
    gate = Gate()
    gate.in_flight.value = inside
    api = KeypointLitAPI({"max_batch_size": 8, "batch_wait_ms": WINDOW_MS}, spec=None, gate=gate)  # type: ignore[arg-type]
    api.request_timeout = 30  # set by the LitServer that would own it
    requests: queue.Queue = queue.Queue()
    for index in range(queued):
        requests.put((0, f"uid-{index}", time.monotonic(), f"job-{index}"))
    start = time.monotonic()
    payloads, timed_out = WakeOnRequestLoop().get_batch_requests(api, requests, transport=None)
    assert not timed_out
    return len(payloads), time.monotonic() - start


def test_a_lone_request_runs_at_once() -> None:
    count, seconds = _batch(inside=1, queued=1)
    assert count == 1 and seconds < WINDOW_MS / 1000 / 2


def test_requests_already_queued_join_without_waiting_when_nobody_else_is_inside() -> None:
    count, seconds = _batch(inside=1, queued=3)  # the count lags the queue: take what is there, do not wait
    assert count == 3 and seconds < WINDOW_MS / 1000 / 2


def test_the_window_stays_open_while_others_are_inside() -> None:
    count, seconds = _batch(inside=3, queued=1)
    assert count == 1 and seconds >= WINDOW_MS / 1000 * 0.9


def test_a_full_round_runs_without_waiting() -> None:
    count, seconds = _batch(inside=3, queued=3)  # every request inside is in the batch: nobody else can come
    assert count == 3 and seconds < WINDOW_MS / 1000 / 2


def test_a_batch_stops_at_its_size() -> None:
    count, _ = _batch(inside=20, queued=12)
    assert count == 8
