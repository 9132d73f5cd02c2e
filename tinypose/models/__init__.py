"""Model definitions and the registry of PP-TinyPose variants."""

from .litehrnet import LiteHRNet, LiteHRNetConfig, channel_shuffle
from .tinypose import (
    MODEL_SPECS,
    POSE_WEIGHTS,
    ModelSpec,
    TinyPose,
    WeightSource,
    build_model,
    get_spec,
    list_models,
    load_state_dict,
)

__all__ = [
    "MODEL_SPECS",
    "POSE_WEIGHTS",
    "LiteHRNet",
    "LiteHRNetConfig",
    "ModelSpec",
    "TinyPose",
    "WeightSource",
    "build_model",
    "channel_shuffle",
    "get_spec",
    "list_models",
    "load_state_dict",
]
