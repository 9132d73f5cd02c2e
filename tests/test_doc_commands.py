"""Every command in README.md and docs/*.md runs as written, on a fresh copy of the repository with
``../shared`` beside it (issue 9).

Each fenced ``bash`` block is one case: its lines run in order in one ``bash -e -o pipefail`` (so a
block may use what its earlier lines wrote), in a copy of the repository's files (tracked and
not-ignored ones) next to a ``shared`` link to ../shared, and must exit 0. A block that cannot run
here says why in an HTML comment on the line before its fence::

    <!-- not run: needs a CUDA GPU -->
    ```bash
    python export.py --format tensorrt ...
    ```

New Markdown files under docs/ are picked up by themselves. The environment the blocks run in is
declared here, not hidden: ``python`` is the interpreter running the tests; ``HOME`` is a fresh
folder (no earlier cache is used or polluted); the default weights come from
``../shared/weights/openvino`` (``TINYPOSE_WEIGHTS_DIR``, as the README says for offline use) with
downloading off; ``OMP_WAIT_POLICY=PASSIVE``, what the README advises on a shared machine (this one).

    python tests/test_doc_commands.py --list               # every block and whether it runs
    python tests/test_doc_commands.py [-k README] [--keep]  # run them one by one
    python -m pytest -m docs                                # run them as tests (CI does, as its own step)

The block runs are marked ``docs`` and left out of a plain ``python -m pytest`` (pyproject's
``addopts``): together they take minutes (two training epochs, a video), longer than the whole
rest of the suite, so CI runs them as a separate step after it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYPOSE_SHARED", REPO.parent / "shared")).resolve()
FENCE = re.compile(r"^```(bash|sh|shell)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>.*?)\s*-->$")
TIMEOUT_S = 1800
"""Per block; a block that trains for two epochs takes minutes on a busy 2-core machine."""


@dataclass(frozen=True)
class Block:
    """One fenced bash block: where it is, its text, and why it does not run (``None``: it runs)."""

    file: str
    line: int
    text: str
    not_run: str | None

    @property
    def name(self) -> str:
        return f"{self.file}:{self.line}"


def doc_files(repo: Path = REPO) -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [repo / "README.md", *sorted((repo / "docs").rglob("*.md"))]


def find_blocks(repo: Path = REPO) -> list[Block]:
    """Every fenced bash block of :func:`doc_files`, with its ``<!-- not run: ... -->`` reason if any."""
    blocks = []
    for path in doc_files(repo):
        lines = path.read_text(encoding="utf-8").splitlines()
        index = 0
        while index < len(lines):
            if not FENCE.match(lines[index]):
                index += 1
                continue
            end = next((i for i in range(index + 1, len(lines)) if lines[i].startswith("```")), None)
            if end is None:
                raise ValueError(f"{path.relative_to(repo)}:{index + 1}: bash block without a closing fence")
            previous = next((lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            marker = NOT_RUN.match(previous)
            reason = marker.group("reason") if marker else None
            text = "\n".join(lines[index + 1 : end])
            blocks.append(Block(str(path.relative_to(repo)), index + 1, text, reason))
            index = end + 1
    return blocks


_NOT_IN_A_CLONE = {
    *(".git", ".venv", ".pytest_cache", ".ruff_cache", "__pycache__"),
    *("output", "outputs", "multirun", "lightning_logs", "build", "dist"),
}
"""Names left out of the copy when git cannot list the files (a source tree without .git)."""


def _repository_files(repo: Path) -> list[str]:
    """Files a fresh clone has (plus new ones not ignored): what the copy for a block holds."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo,
        capture_output=True,
        check=False,
    )
    if listed.returncode == 0:
        return [name for name in listed.stdout.decode().split("\0") if name and (repo / name).is_file()]
    return [
        str(path.relative_to(repo))
        for path in repo.rglob("*")
        if path.is_file()
        and not any(part in _NOT_IN_A_CLONE or part.endswith(".egg-info") for part in path.relative_to(repo).parts)
    ]


def run_block(block: Block, workdir: Path, timeout: float = TIMEOUT_S) -> tuple[int, str, float]:
    """Run ``block`` in a fresh copy of the repository under ``workdir``; returns (exit code, output, seconds)."""
    clone = workdir / "tinypose"
    for name in _repository_files(REPO):
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    (workdir / "shared").symlink_to(SHARED, target_is_directory=True)
    home = workdir / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TINYPOSE_", "PYTHON"))}
    env.update(
        HOME=str(home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        TINYPOSE_WEIGHTS_DIR=str(workdir / "shared" / "weights" / "openvino"),
        TINYPOSE_OFFLINE="1",
        OMP_WAIT_POLICY="PASSIVE",
        MPLBACKEND="Agg",
    )
    script = f"set -x\n{block.text}\n"
    start = time.perf_counter()
    try:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        code, output = done.returncode, done.stdout
    except subprocess.TimeoutExpired as error:
        output = error.stdout.decode(errors="replace") if isinstance(error.stdout, bytes) else (error.stdout or "")
        code = 124
    return code, output, time.perf_counter() - start


BLOCKS = find_blocks()


def test_every_bash_block_runs_or_says_why_not() -> None:
    files = {block.file for block in BLOCKS}
    assert {"README.md", "docs/predict.md", "docs/train.md"} <= files
    for block in BLOCKS:
        assert block.text.strip(), f"{block.name}: empty block"
        assert block.not_run is None or len(block.not_run) > 5, f"{block.name}: say why it is not run"


def test_not_run_markers_are_read() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "docs").mkdir()
        (root / "README.md").write_text("```bash\necho a\n```\n\n<!-- not run: needs a CUDA GPU -->\n```bash\nb\n```\n")
        (root / "docs" / "x.md").write_text("text\n```sh\necho c \\\n  d\n```\n```python\nnot bash\n```\n")
        found = find_blocks(root)
    assert [(b.name, b.text, b.not_run) for b in found] == [
        ("README.md:1", "echo a", None),
        ("README.md:6", "b", "needs a CUDA GPU"),
        ("docs/x.md:2", "echo c \\\n  d", None),
    ]


@pytest.mark.slow
@pytest.mark.docs
@pytest.mark.parametrize("block", [b for b in BLOCKS if b.not_run is None], ids=lambda b: b.name)
def test_doc_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    if not (SHARED / "weights" / "openvino").is_dir():
        pytest.skip(f"needs {SHARED} (the read-only ../shared folder; set TINYPOSE_SHARED to point elsewhere)")
    code, output, _ = run_block(block, tmp_path)
    tail = "\n".join(output.splitlines()[-40:])
    assert code == 0, f"{block.name} failed (exit {code}):\n{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the blocks and whether they run")
    parser.add_argument("-k", default="", help="only blocks whose file:line contains this")
    parser.add_argument("--keep", action="store_true", help="keep the copies (printed) for a look at the outputs")
    args = parser.parse_args()
    chosen = [b for b in BLOCKS if args.k in b.name]
    if args.list:
        for block in chosen:
            print(f"{block.name:24s} {'not run: ' + block.not_run if block.not_run else 'runs'}")
        return 0
    failed = 0
    root = Path(tempfile.mkdtemp(prefix="doc_commands_"))
    for number, block in enumerate(chosen):
        if block.not_run:
            print(f"skip {block.name}: not run: {block.not_run}", flush=True)
            continue
        workdir = root / str(number)
        workdir.mkdir()
        code, output, seconds = run_block(block, workdir)
        print(f"{'ok  ' if code == 0 else 'FAIL'} {block.name} ({seconds:.0f} s)", flush=True)
        if code:
            failed += 1
            print("\n".join("    " + line for line in output.splitlines()[-40:]), flush=True)
    if args.keep:
        print(f"copies kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
