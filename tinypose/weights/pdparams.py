"""Read Paddle ``.pdparams`` checkpoints without Paddle and without executing code from them.

A ``.pdparams`` is a Python pickle of ``{name: numpy.ndarray}`` written by ``paddle.save``. A
plain ``pickle.load`` would run any callable the file names, so the unpickler below resolves only
the handful of globals that numpy arrays need (under numpy 1 and numpy 2 module paths) and
refuses everything else with an error that names the file and the offending global.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

try:
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

from .errors import WeightsError

__all__ = ["PADDLE_NAME_TABLE_KEY", "read_pdparams"]

PADDLE_NAME_TABLE_KEY = "StructuredToParameterName@@"
"""Extra entry ``paddle.save`` adds: structured name -> static name (not a tensor)."""

_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_module, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED_GLOBALS[(_module, "scalar")] = _multiarray.scalar


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise WeightsError(
                f"{self._path}: refusing to load: the pickle references {module}.{name}, which is not a "
                "numpy array type; a Paddle checkpoint holds only arrays, so this file is not one (or "
                "it tries to run code)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError(f"{self._path}: refusing to load: the pickle uses persistent ids ({pid!r})")


def read_pdparams(path: str | Path) -> dict[str, np.ndarray]:
    """Load a ``.pdparams`` file as ``{structured_name: ndarray}``, dropping Paddle's name table."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        with path.open("rb") as file:
            obj = _ArrayOnlyUnpickler(file, path).load()
    except WeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise WeightsError(f"{path}: not a readable .pdparams pickle (truncated or corrupt?): {error}") from None
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict of arrays, found {type(obj).__name__}")
    state: dict[str, np.ndarray] = {}
    for name, value in obj.items():
        if name == PADDLE_NAME_TABLE_KEY:
            continue
        if not isinstance(name, str) or not isinstance(value, np.ndarray):
            raise WeightsError(f"{path}: entry {name!r} is a {type(value).__name__}, not an array")
        state[name] = value
    return state
