"""Weight readers (Paddle .pdparams, Paddle/PaddleX inference models, OpenVINO IR, safetensors),
the Paddle -> torch name map, conversion to safetensors, and default-weight resolution."""

from .convert import convert
from .errors import WeightsError
from .hub import cache_dir, resolve_pretrained
from .loader import FORMATS, RawWeights, detect_format, load_state_dict, read_weights, sha256_of
from .openvino_ir import IRGraph, read_ir_graph
from .pdparams import read_pdparams
from .safetensors_io import save_safetensors

__all__ = [
    "FORMATS",
    "IRGraph",
    "RawWeights",
    "WeightsError",
    "cache_dir",
    "convert",
    "detect_format",
    "load_state_dict",
    "read_ir_graph",
    "read_pdparams",
    "read_weights",
    "resolve_pretrained",
    "save_safetensors",
    "sha256_of",
]
