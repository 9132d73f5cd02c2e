"""The keypoint service on LitServe: its batching worker runs the models, its FastAPI app the HTTP side.

LitServe starts one HTTP process (uvicorn, FastAPI) and ``workers`` model processes; requests reach a
model process through LitServe's queue, and its batched loop gathers up to ``max_batch_size`` of them
for at most ``batch_timeout`` seconds before one :meth:`~tinypose.serve.core.KeypointService.run`.
PaddleX's contract is a LitServe *spec* (:class:`PaddleXSpec`, the engine's extension point for an
API of one's own, as its OpenAI spec): its routes come from :func:`tinypose.serve.http.endpoints`, so
body limits, URL fetching and header checks happen in the HTTP process before a request is queued.

Shutdown (SIGTERM or Ctrl+C to the main process): new requests are answered 503, the ones inside
finish (up to ``shutdown_timeout`` seconds), then LitServe stops its processes. Model processes
ignore SIGINT so that a Ctrl+C in a terminal does not cut a batch short.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
import uuid
from queue import Empty
from typing import Any

import litserve as ls
from litserve.loops.base import _SENTINEL_VALUE, _StopLoopError
from litserve.loops.simple_loops import BatchedLoop
from litserve.specs.base import LitSpec
from litserve.utils import LitAPIStatus, ResponseBufferItem, WorkerSetupStatus

from .core import (
    INFER_ENDPOINT,
    PAGE_ENDPOINT,
    Job,
    KeypointService,
    Limits,
    ServiceInfo,
    answer,
    build_service,
    error_envelope,
)
from .http import AdmissionMiddleware, Gate, Metrics, endpoints, install_error_handlers, mark_queued

__all__ = ["KeypointLitAPI", "PaddleXSpec", "build_server", "run_server"]

log = logging.getLogger("tinypose.serve")


class PaddleXSpec(LitSpec):
    """PaddleX's ``human_keypoint_detection`` API (and the boxes, health and metrics routes) as a LitServe spec."""

    def __init__(self, limits: Limits, info: ServiceInfo, gate: Gate, metrics: Metrics) -> None:
        super().__init__()
        self.api_path = INFER_ENDPOINT  # LitServe names the model queue after it
        for path, handler, methods in endpoints(self.submit, limits, metrics, info, self.ready, gate):
            self.add_endpoint(path, handler, methods)

    def __getstate__(self) -> dict[str, Any]:
        """Model processes get the spec pickled but use none of its HTTP-side state."""
        return {"api_path": self.api_path, "_max_batch_size": self._max_batch_size, "_endpoints": []}

    def decode_request(self, request: Any, context_kwargs: Any = None) -> Any:
        return request

    def encode_response(self, output: Any, context_kwargs: Any = None) -> Any:
        return output

    def ready(self) -> bool:
        """Every model process has loaded its models."""
        status = dict(self._server.workers_setup_status) if self._server is not None else {}
        return bool(status) and all(value == WorkerSetupStatus.READY for value in status.values())

    async def submit(self, job: Job) -> dict[str, Any]:
        """Queue ``job`` for LitServe's batching loop and wait for its answer."""
        uid = str(uuid.uuid4())
        event = asyncio.Event()
        self.response_buffer[uid] = ResponseBufferItem(event=event)
        try:
            await asyncio.to_thread(self.request_queue.put, (self.response_queue_id, uid, time.monotonic(), job))
            mark_queued()
            await event.wait()
            response, status = self.response_buffer[uid].response
        finally:
            self.response_buffer.pop(uid, None)
        if status == LitAPIStatus.ERROR:
            code = getattr(response, "status_code", 500)
            if code == 504:
                return answer(504, error_envelope(job.log_id, 504, "the request waited too long in the queue"))
            return answer(500, error_envelope(job.log_id, 500, "Internal server error"))
        return response


class WakeOnRequestLoop(BatchedLoop):
    """LitServe's batched loop, woken by the first request, whose window closes once nobody else can join.

    LitServe's own collation polls its queue every millisecond even when idle (~15% of a core here)
    and always waits out ``batch_timeout``. This loop blocks until a request arrives, then gathers
    up to ``max_batch_size`` from LitServe's queue within ``batch_timeout``, but stops waiting as soon
    as the queue is empty and no request is still arriving (admitted by the HTTP side and not yet
    queued: ``Gate.arriving``, in shared memory). A lone request runs at once, and so does a batch
    whose other clients are still reading the previous batch's answers: on 16 clients the window
    otherwise ran out at every batch, waiting for requests that could not come. Requests that waited
    past ``request_timeout`` are handed back as timed out, as LitServe does.
    """

    def get_batch_requests(self, lit_api: Any, request_queue: Any, transport: Any) -> tuple[list, list]:
        try:
            first = request_queue.get(timeout=1.0)
        except Empty:
            return [], []
        payloads: list[tuple[Any, str, Any]] = []
        timed_out: list[tuple[Any, str]] = []
        self._take(lit_api, first, payloads, timed_out)
        deadline = time.monotonic() + lit_api.batch_timeout
        while len(payloads) + len(timed_out) < lit_api.max_batch_size:
            arriving = lit_api.requests_arriving()  # read before the queue: one queued after this read is new
            try:
                item = request_queue.get_nowait()  # what is already queued always joins
            except Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or arriving <= 0:
                    break
                try:
                    item = request_queue.get(timeout=min(remaining, 0.002))  # then look at the count again
                except Empty:
                    continue
            self._take(lit_api, item, payloads, timed_out)
        return payloads, timed_out

    @staticmethod
    def _take(lit_api: Any, item: Any, payloads: list, timed_out: list) -> None:
        if item == _SENTINEL_VALUE:
            raise _StopLoopError()
        response_queue_id, uid, timestamp, payload = item
        limit = lit_api.request_timeout
        if limit not in (-1, False, None) and time.monotonic() - timestamp > limit:
            timed_out.append((response_queue_id, uid))
        else:
            payloads.append((response_queue_id, uid, payload))


class KeypointLitAPI(ls.LitAPI):
    """LitServe's model side: decodes and answers a batch of :class:`~tinypose.serve.core.Job` at once."""

    def __init__(self, settings: dict[str, Any], spec: PaddleXSpec, gate: Gate | None = None) -> None:
        super().__init__(
            max_batch_size=int(settings["max_batch_size"]),
            batch_timeout=float(settings["batch_wait_ms"]) / 1000.0,
            spec=spec,
            loop=WakeOnRequestLoop() if int(settings["max_batch_size"]) > 1 else "auto",
        )
        self.settings = settings
        self.service: KeypointService | None = None
        self.arriving = gate.arriving if gate is not None else None  # a multiprocessing.Value: spawned with us

    def requests_arriving(self) -> int:
        """Requests admitted by the HTTP side and not yet on the queue (``Gate.arriving``); large when unknown."""
        return int(self.arriving.value) if self.arriving is not None else 1 << 30

    def setup(self, device: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process drains on Ctrl+C, then stops us
        threads = self.settings.get("threads")
        if threads:
            import torch  # already loaded by the pipeline; here only to set the thread count first

            torch.set_num_threads(int(threads))
        self.service = build_service(self.settings)

    def decode_request(self, request: Any, **kwargs: Any) -> Any:
        return request  # decoded inside KeypointService.run, where a bad file fails only its own request

    def predict(self, x: Any, **kwargs: Any) -> Any:
        assert self.service is not None
        if isinstance(x, Job):  # max_batch_size 1: LitServe passes the request itself
            return self.service.run([x])[0]
        return self.service.run(list(x))

    def encode_response(self, output: Any, **kwargs: Any) -> Any:
        return output


def build_server(settings: dict[str, Any], limits: Limits) -> tuple[ls.LitServer, Gate]:
    """A ready-to-run :class:`litserve.LitServer` for ``settings`` (see :mod:`tinypose.serve.cli`)."""
    gate, metrics = Gate(), Metrics()
    spec = PaddleXSpec(limits, ServiceInfo.from_settings(settings), gate, metrics)
    api = KeypointLitAPI(settings, spec, gate)
    device = str(settings.get("device") or "cpu")
    server = ls.LitServer(
        api,
        accelerator="cuda" if device.startswith(("cuda", "gpu")) else "cpu",
        devices=1,
        workers_per_device=int(settings.get("workers", 1)),
        timeout=float(settings.get("request_timeout", 30)),
        healthcheck_path="/litserve/health",
        info_path="/litserve/info",
        middlewares=[(AdmissionMiddleware, {"limits": limits, "gate": gate, "metrics": metrics})],
    )
    install_error_handlers(server.app)
    ours = {handler for _, handler, _ in spec.endpoints}
    server.app.router.routes = [  # LitServe's own "litserve running" at "/" gives way to the page
        r
        for r in server.app.router.routes
        if getattr(r, "path", None) != PAGE_ENDPOINT or getattr(r, "endpoint", None) in ours
    ]
    server.uvicorn_graceful_timeout = float(settings.get("shutdown_timeout", 30))
    return server, gate


def run_server(settings: dict[str, Any], limits: Limits) -> None:
    """Serve until SIGTERM/SIGINT, then drain (see the module docstring)."""
    server, gate = build_server(settings, limits)
    timeout = float(settings.get("shutdown_timeout", 30))

    def drain() -> None:
        if not gate.wait_idle(timeout):
            log.warning(
                "shutdown: %d request(s) still inside after %g s; stopping anyway", gate.in_flight.value, timeout
            )
        event = server._shutdown_event
        if event is not None:
            event.set()

    def on_signal(signum: int, frame: Any) -> None:
        if gate.draining.value:
            return
        gate.draining.value = 1
        print(f"{signal.Signals(signum).name}: finishing {gate.in_flight.value} request(s), then stopping", flush=True)
        threading.Thread(target=drain, name="tinypose-drain", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.run(
        host=str(settings["host"]),
        port=int(settings["port"]),
        num_api_servers=1,
        generate_client_file=False,
        log_level=str(settings.get("log_level", "info")),
        access_log=bool(settings.get("access_log", False)),
        limit_concurrency=2 * limits.max_queue + 16,
    )
