"""The keypoint HTTP service: PaddleX's ``human_keypoint_detection`` contract with request batching.

:mod:`.core` (schema, limits, decoding, batched inference) and :mod:`.http` (routes, envelopes,
admission, metrics on any FastAPI app) know nothing of the engine; :mod:`.litserve_app` runs them
on LitServe; :mod:`.cli` is ``python serve.py``.
"""

from .core import (
    BOXES_ENDPOINT,
    HEALTH_ENDPOINT,
    INFER_ENDPOINT,
    METRICS_ENDPOINT,
    BoxesRequest,
    InferRequest,
    Job,
    KeypointService,
    Limits,
    RequestError,
)

__all__ = [
    "BOXES_ENDPOINT",
    "HEALTH_ENDPOINT",
    "INFER_ENDPOINT",
    "METRICS_ENDPOINT",
    "BoxesRequest",
    "InferRequest",
    "Job",
    "KeypointService",
    "Limits",
    "RequestError",
]
