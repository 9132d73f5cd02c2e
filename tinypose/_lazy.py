"""Lazy public names for a package (PEP 562): a name is imported from its submodule on first access.

``import tinypose`` then costs milliseconds instead of importing torch, OpenCV and every subpackage,
and a broken or missing optional dependency only fails the name that needs it. The package lists its
names three times, each for its own reader: ``if TYPE_CHECKING:`` imports (type checkers, IDEs),
``__all__`` (star imports, docs) and the map given here (the runtime); tests/test_imports.py checks
that the three agree.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose ``exports`` map a relative submodule
    (``".codec"``) to the public names imported from it."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)  # later lookups find it without this hook
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
