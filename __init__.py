"""Not the package: the repository folder. The package is ``tinypose/`` inside it.

Python run from the folder that holds a clone named ``tinypose`` finds this folder first when it
imports ``tinypose``. Without this file the folder would be an empty namespace package and every
``tinypose.<name>`` an AttributeError; with it, ``import tinypose`` loads the package inside
(``tinypose/tinypose``) in its place, so the import works from there as from anywhere else.
Imported under another name (pytest imports it as the folder's name) it defines nothing.
"""

import importlib.util
import sys
from pathlib import Path

_package = Path(__file__).resolve().parent / "tinypose"
if __name__ == "tinypose" and (_package / "__init__.py").is_file():
    _spec = importlib.util.spec_from_file_location(
        "tinypose", _package / "__init__.py", submodule_search_locations=[str(_package)]
    )
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["tinypose"] = _module  # the import system returns this module in place of the folder
    _spec.loader.exec_module(_module)
