"""The keypoint HTTP service: PaddleX's ``human_keypoint_detection`` contract with request batching.

:mod:`.core` (schema, limits, decoding, batched inference) and :mod:`.http` (routes, envelopes,
admission, metrics on any FastAPI app) know nothing of the engine; :mod:`.litserve_app` runs them
on LitServe; :mod:`.cli` is ``python serve.py``. ``static/`` holds the web page served at ``GET /``.
"""

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
    KeypointService,
    Limits,
    RequestError,
    ServiceInfo,
)

__all__ = [
    "BOXES_ENDPOINT",
    "HEALTH_ENDPOINT",
    "INFER_ENDPOINT",
    "INFO_ENDPOINT",
    "METRICS_ENDPOINT",
    "PAGE_ENDPOINT",
    "BoxesRequest",
    "InferRequest",
    "Job",
    "KeypointService",
    "Limits",
    "RequestError",
    "ServiceInfo",
]
