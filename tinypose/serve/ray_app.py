"""The keypoint service on Ray Serve: the same routes and contract as on LitServe, N replicas, Ray's batching.

Each replica is one Ray actor holding the models (:func:`~tinypose.serve.core.build_service`) and the
FastAPI app of :func:`tinypose.serve.http.endpoints` (``@serve.ingress`` with a builder, so that the app
and its admission gate are made inside the replica). A request's :class:`~tinypose.serve.core.Job` goes
to :meth:`KeypointDeployment.answer_batch`, a ``@serve.batch`` method: up to ``max_batch_size`` jobs
gathered for at most ``batch_wait_ms`` are answered by one :meth:`KeypointService.run
<tinypose.serve.core.KeypointService.run>` in a thread, as LitServe's batching loop does. Ray Serve's
proxy spreads requests over ``workers`` replicas; ``max_queue`` bounds the requests inside each replica.

``python serve.py engine=ray`` runs it (:func:`run_server`); ``serve run tinypose.serve.cli:ray_app
port=8000 workers=2`` deploys it on a running cluster with any option of ``conf/serve.yaml``
(:func:`tinypose.serve.cli.ray_app`). Ray Serve is the optional ``ray`` extra.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from ray import serve

from .core import Job, KeypointService, Limits, ServiceInfo, build_service
from .http import AdmissionMiddleware, Gate, Metrics, endpoints, install_error_handlers, mark_queued

__all__ = ["KeypointDeployment", "build_application", "run_server"]

log = logging.getLogger("tinypose.serve")

_replica: dict[str, Any] = {}
"""This process's replica (one per Ray actor): the app's routes reach its batching method through it."""


def _this_replica() -> KeypointDeployment | None:
    """The replica of this process, once its models are loaded. A module-level function: Ray ships the
    app builder's closures by value (with copies of the globals they name) but calls this one by name."""
    return _replica.get("deployment")


def _asgi_builder(info: ServiceInfo, limits: Limits) -> Callable[[], FastAPI]:
    """A builder of the replica's FastAPI app; Ray Serve calls it inside each replica."""

    def build() -> FastAPI:
        app = FastAPI(title="tinypose", docs_url=None, redoc_url=None, openapi_url=None)
        gate, metrics = Gate(), Metrics()

        async def submit(job: Job) -> dict[str, Any]:
            deployment = _this_replica()
            assert deployment is not None, "requests reach the app after the replica is constructed"
            mark_queued()  # in Ray Serve's batch queue from here on
            return await deployment.answer_batch(job)

        def ready() -> bool:
            deployment = _this_replica()
            return deployment is not None and deployment.service is not None

        for path, handler, methods in endpoints(submit, limits, metrics, info, ready, gate):
            app.add_api_route(path, handler, methods=methods)
        install_error_handlers(app)
        app.add_middleware(AdmissionMiddleware, limits=limits, gate=gate, metrics=metrics)
        return app

    return build


class KeypointDeployment:
    """The replica: loads the models once and answers batches of jobs (wrapped by :func:`build_application`)."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        threads = settings.get("threads")
        if threads:
            import torch  # loaded by the models anyway; set the thread count before they are built

            torch.set_num_threads(int(threads))
        self.service: KeypointService | None = None
        self.service = build_service(settings)
        self.answer_batch.set_max_batch_size(int(settings["max_batch_size"]))  # type: ignore[attr-defined]
        self.answer_batch.set_batch_wait_timeout_s(float(settings["batch_wait_ms"]) / 1000.0)  # type: ignore[attr-defined]
        _replica["deployment"] = self

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def answer_batch(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """One :meth:`KeypointService.run` for the jobs Ray gathered, off the replica's event loop."""
        assert self.service is not None
        return await asyncio.to_thread(self.service.run, jobs)


def build_application(settings: Mapping[str, Any], limits: Limits) -> Any:
    """The Ray Serve application (``serve.run`` it): ``settings["workers"]`` replicas of the service,
    each with ``settings["threads"]`` torch threads on as many CPUs (one when unset) and one GPU when
    ``settings["device"]`` is CUDA."""
    device = str(settings.get("device") or "cpu")
    actor_options: dict[str, Any] = {"num_cpus": float(settings.get("threads") or 1)}
    if device.startswith(("cuda", "gpu")):
        actor_options["num_gpus"] = 1
    ingress = serve.ingress(_asgi_builder(ServiceInfo.from_settings(settings), limits))
    deployment = serve.deployment(
        name="tinypose",
        num_replicas=int(settings.get("workers", 1)),
        ray_actor_options=actor_options,
        max_ongoing_requests=2 * limits.max_queue,
        graceful_shutdown_timeout_s=float(settings.get("shutdown_timeout", 30)),
    )(ingress(type("KeypointReplica", (KeypointDeployment,), {"__module__": __name__})))
    return deployment.bind(dict(settings))


def run_server(settings: Mapping[str, Any], limits: Limits, address: str | None = None) -> None:
    """Start (or join, ``address``) a Ray instance, serve on ``settings["host"]:settings["port"]`` until
    Ctrl+C or SIGTERM, then shut Serve down (each replica finishes its requests first)."""
    import ray

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM ends serving as Ctrl+C does, through the shutdown below

    signal.signal(signal.SIGTERM, stop)
    ray.init(address=address, log_to_driver=True)
    serve.start(http_options={"host": str(settings["host"]), "port": int(settings["port"])})
    try:
        serve.run(build_application(settings, limits), name="tinypose", route_prefix="/", blocking=True)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()  # a local instance started here goes with its agents
