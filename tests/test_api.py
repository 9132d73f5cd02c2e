"""The public surface: every name a package or module lists in ``__all__`` exists."""

from __future__ import annotations

import importlib
import pkgutil

import tinypose


def _modules() -> list[str]:
    names = ["tinypose"]
    for info in pkgutil.walk_packages(tinypose.__path__, "tinypose."):
        names.append(info.name)
    return names


def test_every_all_lists_existing_names() -> None:
    for name in _modules():
        module = importlib.import_module(name)
        listed = getattr(module, "__all__", None)
        assert listed is not None, f"{name} has no __all__"
        assert len(set(listed)) == len(listed), f"{name}.__all__ repeats a name"
        assert not [n for n in listed if not hasattr(module, n)], f"{name}.__all__ lists missing names"


def test_top_level_entry_points() -> None:
    for name in (
        "build_model",
        "create_model",
        "create_pipeline",
        "create_detector",
        "create_backend",
        "export_onnx",
        "evaluate",
        "check_dataset",
        "get_spec",
        "list_models",
    ):
        assert callable(getattr(tinypose, name)), name
    assert tinypose.list_models() == ["PP-TinyPose_128x96", "PP-TinyPose_256x192"]
