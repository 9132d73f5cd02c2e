"""The batching loop's window: it waits for more requests only while more are arriving at the service."""

from __future__ import annotations

import queue
import threading
import time

from tinypose.serve.http import Gate
from tinypose.serve.litserve_app import KeypointLitAPI, WakeOnRequestLoop

WINDOW_MS = 2000


def _item(index: int) -> tuple[int, str, float, str]:
    return (0, f"uid-{index}", time.monotonic(), f"job-{index}")


def _batch(arriving: int, queued: int, inside: int = 0, late: float | None = None) -> tuple[int, float]:
    """Requests in the batch the loop makes from ``queued`` requests while ``arriving`` more are on their
    way (``inside`` in the service in all); with ``late`` one arriving request reaches the queue after
    that many seconds. Returns the batch size and the seconds taken."""
    gate = Gate()
    gate.arriving.value = arriving
    gate.in_flight.value = max(inside, arriving + queued)
    api = KeypointLitAPI({"max_batch_size": 8, "batch_wait_ms": WINDOW_MS}, spec=None, gate=gate)  # type: ignore[arg-type]
    api.request_timeout = 30  # set by the LitServer that would own it
    requests: queue.Queue = queue.Queue()
    for index in range(queued):
        requests.put(_item(index))

    def arrive() -> None:
        time.sleep(late or 0.0)
        requests.put(_item(queued))  # as the HTTP side: queued first, then no longer arriving
        with gate.arriving.get_lock():
            gate.arriving.value -= 1

    if late is not None:
        threading.Thread(target=arrive, daemon=True).start()
    start = time.monotonic()
    payloads, timed_out = WakeOnRequestLoop().get_batch_requests(api, requests, transport=None)
    assert not timed_out
    return len(payloads), time.monotonic() - start


def test_a_lone_request_runs_at_once() -> None:
    count, seconds = _batch(arriving=0, queued=1)
    assert count == 1 and seconds < WINDOW_MS / 1000 / 2


def test_queued_requests_run_without_waiting_for_answers_on_their_way_out() -> None:
    count, seconds = _batch(arriving=0, queued=3, inside=16)  # 13 inside are answered, not arriving
    assert count == 3 and seconds < WINDOW_MS / 1000 / 2


def test_the_window_stays_open_while_others_are_arriving() -> None:
    count, seconds = _batch(arriving=2, queued=1)
    assert count == 1 and seconds >= WINDOW_MS / 1000 * 0.9


def test_an_arriving_request_joins_and_the_window_closes_once_none_is_left() -> None:
    count, seconds = _batch(arriving=1, queued=2, late=0.2)
    assert count == 3 and 0.15 < seconds < WINDOW_MS / 1000 / 2


def test_a_batch_stops_at_its_size() -> None:
    count, _ = _batch(arriving=20, queued=12)
    assert count == 8
