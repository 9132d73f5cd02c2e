"""The HTTP side of the service on any FastAPI app: routes, PaddleX's error envelopes, admission, metrics.

Engine-agnostic: :func:`endpoints` builds the route handlers around one ``submit(job) -> answer``
coroutine that the engine provides (LitServe's queue to its batching worker here; ``@serve.batch``
on Ray Serve), :func:`install_error_handlers` makes every error PaddleX's envelope (422 for a body
that does not match the schema, with PaddleX's exact ``errorMsg``; never a stack trace or a path),
and :class:`AdmissionMiddleware` bounds what is accepted: the body size, the number of requests
inside the service (queued or running; one more is answered 503 with ``Retry-After`` without
reading its body) and, while draining for shutdown, every new request. The web page (``GET /``, files
in ``static/``) is served here too, so that every engine serves it; it calls the routes above.
"""

from __future__ import annotations

import contextvars
import json
import logging
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .core import (
    BOXES_ENDPOINT,
    HEALTH_ENDPOINT,
    INFER_ENDPOINT,
    INFO_ENDPOINT,
    METRICS_ENDPOINT,
    PAGE_ENDPOINT,
    BoxesRequest,
    InferRequest,
    Job,
    Limits,
    RequestError,
    ServiceInfo,
    decode_base64,
    error_envelope,
    inspect_image,
    is_url,
    new_log_id,
    parse_request_boxes,
    result_envelope,
)
from .fetch import fetch_image

__all__ = [
    "API_PATHS",
    "AdmissionMiddleware",
    "Gate",
    "Metrics",
    "Submit",
    "endpoints",
    "install_error_handlers",
    "mark_queued",
    "page_endpoints",
]

log = logging.getLogger("tinypose.serve")

API_PATHS = frozenset({INFER_ENDPOINT, BOXES_ENDPOINT})
PAGE_FILES = {"page.css": "text/css; charset=utf-8", "page.js": "text/javascript; charset=utf-8"}
"""The page's files beside ``index.html`` in ``tinypose/serve/static/``, served at ``/static/<name>``."""
PAGE_HEADERS = {
    # Everything the page loads comes from the service itself: no CDN, nothing fetched from outside.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
Submit = Callable[[Job], Awaitable[dict[str, Any]]]
"""The engine's part: run one :class:`~tinypose.serve.core.Job` (batched with others) and return its answer."""


class Gate:
    """Requests inside the service, those still arriving, and the draining flag, in shared memory so
    that the process that handles signals can drain the HTTP processes it started
    (``multiprocessing.Value``; works alone too). Made in the ``spawn`` context: forked HTTP processes
    inherit them, and spawned model processes (LitServe starts those with ``spawn``) get them as
    arguments.

    ``in_flight``: admitted and not yet answered. ``arriving``: admitted to a model route and not yet
    handed to the engine (body being read, parsed or fetched from its URL): the requests that a
    batch being gathered can still expect; answers on their way out are not among them."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.in_flight = context.Value("i", 0)
        self.arriving = context.Value("i", 0)
        self.draining = context.Value("b", 0)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no request is inside, or ``timeout`` seconds; True when idle."""
        deadline = time.monotonic() + timeout
        while self.in_flight.value > 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


class Metrics:
    """Prometheus metrics of one HTTP process: requests by endpoint and status, latency, batch sizes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tinypose_requests", "HTTP requests answered", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "tinypose_request_seconds",
            "Time from receiving a request to its answer",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "tinypose_batch_size",
            "Requests per model batch",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64),
            registry=self.registry,
        )
        self.batched_requests = Counter(
            "tinypose_batched_requests", "Requests that reached the model", registry=self.registry
        )
        self.in_flight = Gauge("tinypose_in_flight", "Requests inside the service", registry=self.registry)
        self.arriving = Gauge(
            "tinypose_arriving", "Requests admitted and not yet handed to the model", registry=self.registry
        )

    def observe_answer(self, answer: dict[str, Any]) -> None:
        """Count a request that reached the model, and its batch once (through the batch's first request)."""
        if int(answer.get("batch_size", 0)) > 0:
            self.batched_requests.inc()
            if answer.get("batch_index") == 0:
                self.batch_size.observe(int(answer["batch_size"]))

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class _Arrival:
    """One admitted request counted in ``Gate.arriving`` until :meth:`done`, once."""

    def __init__(self, gate: Gate, metrics: Metrics) -> None:
        self.gate, self.metrics, self.pending = gate, metrics, True
        with gate.arriving.get_lock():
            gate.arriving.value += 1
        metrics.arriving.inc()

    def done(self) -> None:
        if self.pending:
            self.pending = False
            with self.gate.arriving.get_lock():
                self.gate.arriving.value -= 1
            self.metrics.arriving.dec()


_ARRIVAL: contextvars.ContextVar[_Arrival | None] = contextvars.ContextVar("tinypose_arrival", default=None)


def mark_queued() -> None:
    """The engine calls this once it holds the current request (LitServe: on its model queue), so
    that a batch being gathered stops waiting for it; the request still counts in ``Gate.in_flight``."""
    arrival = _ARRIVAL.get()
    if arrival is not None:
        arrival.done()


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """``body`` as JSON. Every body here is already plain JSON types (the model side sends floats and
    lists, not numpy), so it goes straight to ``json.dumps``: FastAPI's ``jsonable_encoder`` walk took
    0.5 ms for an answer of five people, against 0.14 ms."""
    return JSONResponse(content=body, status_code=status, headers=headers)


def _loc_to_dot_sep(loc: tuple[str | int, ...]) -> str:
    """PaddleX's rendering of a pydantic error location: ``body.image``, ``body.boxes[0]``."""
    path = ""
    for index, part in enumerate(loc):
        if isinstance(part, str):
            path += ("." if index > 0 else "") + part
        else:
            path += f"[{part}]"
    return path


def _log_id_of(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("logId"), str):
        return body["logId"]
    return new_log_id()


def install_error_handlers(app: FastAPI) -> None:
    """PaddleX's exception handlers: 422 with ``errorMsg`` = JSON list of ``{type, loc, msg}``,
    HTTP errors with their status and detail, anything else 500 "Internal server error"."""

    async def validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [{"type": e["type"], "loc": _loc_to_dot_sep(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return _json(422, error_envelope(_log_id_of(exc.body), 422, json.dumps(errors)))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers) if exc.headers else None
        return _json(exc.status_code, error_envelope(new_log_id(), exc.status_code, str(exc.detail)), headers)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError)
        return _json(exc.status, error_envelope(new_log_id(), exc.status, exc.message))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error in %s", request.url.path)
        return _json(500, error_envelope(new_log_id(), 500, "Internal server error"))

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestError, refused)
    app.add_exception_handler(Exception, unexpected)


class AdmissionMiddleware:
    """Pure ASGI middleware on the API paths: draining -> 503, full -> 503 + ``Retry-After`` (the body
    is never read), ``Content-Length`` over the limit -> 413, a longer streamed body -> 413."""

    def __init__(self, app: ASGIApp, limits: Limits, gate: Gate, metrics: Metrics) -> None:
        self.app = app
        self.limits = limits
        self.gate = gate
        self.metrics = metrics

    async def _refuse(self, send: Send, path: str, status: int, message: str, retry: bool) -> None:
        headers = {"Retry-After": str(self.limits.retry_after_s)} if retry else None
        response = _json(status, error_envelope(new_log_id(), status, message), headers)
        self.metrics.requests.labels(path, str(status)).inc()
        await response({"type": "http"}, _no_receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in API_PATHS:
            await self.app(scope, receive, send)
            return
        if self.gate.draining.value:
            await self._refuse(send, path, 503, "the service is shutting down", retry=True)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
            await self._refuse(
                send,
                path,
                413,
                f"request body of {int(length):,} bytes is over the limit of {self.limits.max_body_bytes:,}",
                False,
            )
            return
        with self.gate.in_flight.get_lock():
            full = self.gate.in_flight.value >= self.limits.max_queue
            if not full:
                self.gate.in_flight.value += 1
        if full:
            await self._refuse(
                send, path, 503, f"the service is busy ({self.limits.max_queue} requests queued); retry", True
            )
            return
        self.metrics.in_flight.inc()
        arrival = _Arrival(self.gate, self.metrics)
        token = _ARRIVAL.set(arrival)
        received = 0
        status = 500

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limits.max_body_bytes:
                raise HTTPException(413, f"request body is over the limit of {self.limits.max_body_bytes:,} bytes")
            return message

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, limited_receive, watched_send)
        finally:
            arrival.done()  # answered without reaching the model (refused, malformed, cancelled)
            _ARRIVAL.reset(token)
            with self.gate.in_flight.get_lock():
                self.gate.in_flight.value -= 1
            self.metrics.in_flight.dec()
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static").joinpath(name).read_bytes()


def page_endpoints() -> list[tuple[str, Callable[..., Awaitable[Response]], list[str]]]:
    """``(path, handler, methods)`` of the web page: ``GET /`` and its files, read once from the package."""
    page = _static("index.html")
    files = {name: (_static(name), kind) for name, kind in PAGE_FILES.items()}

    async def index() -> Response:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    def serve_file(name: str) -> Callable[[], Awaitable[Response]]:
        body, kind = files[name]

        async def handler() -> Response:
            return Response(body, media_type=kind, headers=PAGE_HEADERS)

        handler.__name__ = f"static_{name.replace('.', '_')}"
        return handler

    return [(PAGE_ENDPOINT, index, ["GET"])] + [(f"/static/{name}", serve_file(name), ["GET"]) for name in files]


def endpoints(
    submit: Submit,
    limits: Limits,
    metrics: Metrics,
    info: ServiceInfo,
    ready: Callable[[], bool],
    gate: Gate,
) -> list[tuple[str, Callable[..., Awaitable[Response]], list[str]]]:
    """``(path, handler, methods)`` for every route of the service, the page's included, to add to a
    FastAPI app. ``info``: what the models are (``GET /info``) and the default of ``visualize``."""
    default_visualize = info.visualize
    info_result = info.result(limits)

    async def load(image: str) -> bytes:
        data = await fetch_image(image, limits) if is_url(image) else decode_base64(image)
        inspect_image(data, limits.max_pixels)  # refused here, before the queue, when not an image or too large
        return data

    async def finish(job: Job) -> Response:
        answer = await submit(job)
        metrics.observe_answer(answer)
        return _json(answer["status"], answer["body"])

    async def infer(request: InferRequest) -> Response:
        visualize = default_visualize if request.visualize is None else request.visualize
        job = Job(
            "pipeline",
            await load(request.image),
            visualize,
            det_threshold=request.detThreshold,
            flip=request.flip,
            model=request.model,
        )
        return await finish(job)

    async def on_boxes(request: BoxesRequest) -> Response:
        boxes = parse_request_boxes(request.boxes, limits.max_boxes)
        visualize = default_visualize if request.visualize is None else request.visualize
        job = Job("boxes", await load(request.image), visualize, boxes=boxes, flip=request.flip, model=request.model)
        return await finish(job)

    async def health() -> Response:
        if gate.draining.value:
            return _json(503, error_envelope(new_log_id(), 503, "the service is shutting down"))
        if not ready():
            return _json(503, error_envelope(new_log_id(), 503, "the models are loading"))
        return _json(200, error_envelope(new_log_id(), 0, "Healthy"))

    async def prometheus() -> Response:
        return metrics.render()

    async def service_info() -> Response:
        return _json(200, result_envelope(new_log_id(), info_result))

    return [
        (INFER_ENDPOINT, infer, ["POST"]),
        (BOXES_ENDPOINT, on_boxes, ["POST"]),
        (HEALTH_ENDPOINT, health, ["GET"]),
        (INFO_ENDPOINT, service_info, ["GET"]),
        (METRICS_ENDPOINT, prometheus, ["GET"]),
        *page_endpoints(),
    ]
