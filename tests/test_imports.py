"""Lazy imports: ``import tinypose`` imports neither torch nor any optional runtime, every lazily exported
name resolves, the three lists of a lazy package agree, and a missing optional extra breaks nothing
that does not need it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tinypose

PACKAGE = Path(tinypose.__file__).resolve().parent
HEAVY = ("torch", "cv2", "numpy", "lightning", "onnx", "onnxruntime", "openvino", "tensorrt", "matplotlib", "hydra")
OPTIONAL_EXTRAS = ("onnx", "onnxruntime", "openvino", "tensorrt")


def _run(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return its stdout."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _lazy_packages() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("__init__.py") if "lazy_exports(" in p.read_text())


def test_import_tinypose_imports_nothing_heavy() -> None:
    modules = json.loads(_run("import json, sys, tinypose; print(json.dumps(sorted(sys.modules)))"))
    loaded = {name.split(".")[0] for name in modules}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert [m for m in modules if m.startswith("tinypose")] == ["tinypose", "tinypose._lazy", "tinypose._version"]


def test_every_exported_name_resolves_from_a_fresh_interpreter() -> None:
    packages = [".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in _lazy_packages()]
    assert "tinypose" in packages and "tinypose.runtimes" in packages
    code = (
        "import importlib\n"
        f"for name in {packages!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    for attribute in module.__all__:\n"
        "        assert getattr(module, attribute) is not None, (name, attribute)\n"
        "    assert set(module.__all__) <= set(dir(module)), name\n"
        "print('ok')\n"
    )
    assert _run(code).strip() == "ok"


@pytest.mark.parametrize("init", _lazy_packages(), ids=lambda p: str(p.parent.relative_to(PACKAGE.parent)))
def test_type_checking_imports_lazy_map_and_all_agree(init: Path) -> None:
    tree = ast.parse(init.read_text())
    checked: set[tuple[str, str]] = set()  # (relative module, name) imported under TYPE_CHECKING
    lazy: set[tuple[str, str]] = set()
    listed: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom), ast.unparse(statement)
                module = "." * statement.level + (statement.module or "")
                checked |= {(module, alias.name) for alias in statement.names}
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and node.value.args[1:]:
            exports = ast.literal_eval(node.value.args[1])
            lazy |= {(module, name) for module, names in exports.items() for name in names}
        elif isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "__all__":
            listed = set(ast.literal_eval(node.value))
    assert checked == lazy, checked ^ lazy
    assert {name for _, name in lazy} == listed - {"__version__"}


def test_missing_optional_extras_break_nothing_unrelated() -> None:
    """With onnx, onnxruntime, openvino and tensorrt unimportable: the package, the torch runtime, auto,
    the predictor and the ONNX-free CLI paths work; asking for a missing runtime is a one-line error."""
    block = "".join(f"sys.modules[{name!r}] = None\n" for name in OPTIONAL_EXTRAS)  # import raises ImportError
    code = (
        "import sys\n" + block + "import numpy as np\n"
        "import tinypose\n"
        "from tinypose.runtimes import RuntimeUnavailable, available_backends, create_backend\n"
        "assert set(available_backends('cpu')) <= {'torch', 'inductor'}, available_backends('cpu')\n"  # inductor: torch + g++
        "model = tinypose.build_model('128x96')\n"
        "assert create_backend('auto', model).name == 'torch'\n"
        "predictor = tinypose.create_model('PP-TinyPose_128x96', model=model, backend='auto', device='cpu')\n"
        "assert len(list(predictor.predict(np.zeros((64, 48, 3), np.uint8)))) == 1\n"
        "for name in ('onnxruntime', 'openvino'):\n"
        "    try:\n"
        "        create_backend(name, model)\n"
        "    except RuntimeUnavailable as error:\n"
        "        assert 'pip install' in str(error), error\n"
        "    else:\n"
        "        raise AssertionError(name)\n"
        "import tinypose.export.cli, tinypose.pipeline, tinypose.train, tinypose.detect, tinypose.data\n"
        "print('ok')\n"
    )
    assert _run(code).strip() == "ok"
