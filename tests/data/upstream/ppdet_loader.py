"""Import single PaddleDetection modules from a source checkout without running ``ppdet/__init__``.

Used only by the reference generators next to this file (run with the peers interpreter, which
has paddle). ``ppdet/__init__`` pulls in every dataset and model of PaddleDetection; the modules
needed here only use ``ppdet.core.workspace`` for YAML registration, which is stubbed out.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path


def load_ppdet_module(ppdet_root: str | Path, dotted: str) -> types.ModuleType:
    """Load ``ppdet.<dotted>`` (e.g. ``modeling.keypoint_utils``) from ``ppdet_root`` (the folder holding ppdet/)."""
    root = Path(ppdet_root) / "ppdet"
    for package in (
        "ppdet",
        "ppdet.core",
        "ppdet.data",
        "ppdet.data.transform",
        "ppdet.modeling",
        "ppdet.metrics",
        "ppdet.utils",
        "ppdet.data.source",
        "ppdet.optimizer",
    ):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(root.joinpath(*package.split(".")[1:]))]
            sys.modules[package] = module
    if "ppdet.core.workspace" not in sys.modules:
        workspace = types.ModuleType("ppdet.core.workspace")
        workspace.serializable = lambda cls: cls
        workspace.register = lambda cls: cls
        workspace.BASE_KEY = "_BASE_"
        sys.modules["ppdet.core.workspace"] = workspace
    name = f"ppdet.{dotted}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, root.joinpath(*dotted.split(".")).with_suffix(".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
