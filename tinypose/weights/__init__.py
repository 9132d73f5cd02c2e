"""Weight readers and the one loader for every model family.

Readers (Paddle ``.pdparams``, Paddle/PaddleX inference models, OpenVINO IR, safetensors, Lightning
checkpoints) return :class:`RawWeights` without importing any model; a model family describes
itself with a :class:`WeightFamily` (registry, untrained model, name mapping) and
:func:`load_weights`, :func:`convert` and :func:`resolve_pretrained` work for any family. The
families themselves are defined with their models (``tinypose.models``, ``tinypose.detect``).
"""

from .convert import convert
from .errors import WeightsError
from .family import PretrainedSpec, WeightFamily
from .hub import cache_dir, resolve_pretrained
from .ir_graph import IRGraph, read_ir_graph
from .lightning import load_lightning_checkpoint, read_lightning_checkpoint
from .loader import FORMATS, RawWeights, detect_format, load_weights, read_weights, sha256_of
from .pdparams import read_pdparams
from .safetensors_io import save_safetensors

__all__ = [
    "FORMATS",
    "IRGraph",
    "PretrainedSpec",
    "RawWeights",
    "WeightFamily",
    "WeightsError",
    "cache_dir",
    "convert",
    "detect_format",
    "load_lightning_checkpoint",
    "load_weights",
    "read_ir_graph",
    "read_lightning_checkpoint",
    "read_pdparams",
    "read_weights",
    "resolve_pretrained",
    "save_safetensors",
    "sha256_of",
]
