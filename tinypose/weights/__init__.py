"""Weight readers (Paddle .pdparams, Paddle/PaddleX inference models, OpenVINO IR, safetensors),
the Paddle -> torch name map, conversion to safetensors, and default-weight resolution."""

from .errors import WeightsError
from .loader import FORMATS, RawWeights, detect_format, load_state_dict, read_weights, sha256_of
from .pdparams import read_pdparams
from .safetensors_io import save_safetensors

__all__ = [
    "FORMATS",
    "RawWeights",
    "WeightsError",
    "detect_format",
    "load_state_dict",
    "read_pdparams",
    "read_weights",
    "resolve_pretrained",
    "save_safetensors",
    "sha256_of",
]


def resolve_pretrained(spec):  # placeholder replaced by the hub module
    from .hub import resolve_pretrained as _resolve

    return _resolve(spec)
