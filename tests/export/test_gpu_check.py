"""The lead's one-shot GPU script, dry-run on the CPU: its table, checks and skips work without a GPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def test_gpu_check_dry_run_on_cpu(capsys) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert module.main(["--device", "cpu", "--quick", "--sizes", "128x96"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("128x96")]
    assert any("torch fp32 (cpu)" in row and "argmax 100.0%" in row for row in rows), out
    assert all("skipped" in row or "max|diff|" in row for row in rows), out
