"""``import tinypose`` from the folder that holds a clone named ``tinypose`` (issue 9).

Python finds the clone folder first; as a plain folder it was an empty namespace package and every
``tinypose.<name>`` an AttributeError. The repository's top-level ``__init__.py`` loads the package
inside it instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=300
    )


def test_import_from_the_folder_holding_a_clone(tmp_path: Path) -> None:
    clone = tmp_path / "tinypose"
    clone.mkdir()
    shutil.copy(REPO / "__init__.py", clone / "__init__.py")
    shutil.copy(REPO / "README.md", clone / "README.md")
    (clone / "tinypose").symlink_to(REPO / "tinypose", target_is_directory=True)
    done = _python(
        "import tinypose, tinypose.predict; print(tinypose.create_model.__name__, tinypose.__file__)", tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["create_model", str(clone / "tinypose" / "__init__.py")]


def test_the_repository_folder_under_another_name_is_inert(tmp_path: Path) -> None:
    """pytest imports the top-level __init__.py under the folder's name: it must define nothing."""
    clone = tmp_path / "checkout"
    clone.mkdir()
    shutil.copy(REPO / "__init__.py", clone / "__init__.py")
    done = _python("import sys, checkout; print(sorted(k for k in vars(checkout) if not k.startswith('_')))", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['Path', 'importlib', 'sys']" and "tinypose" not in done.stdout
