"""The one-shot GPU script, dry-run on the CPU: its table, parity checks, stderr capture, predict()/pipeline
section, criteria and skips work without a GPU (the GPU figures themselves need a lent GPU)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_gpu_check_dry_run_on_cpu(capsys, tmp_path) -> None:
    module = _module()
    assert module.main(["--device", "cpu", "--quick", "--sizes", "128x96", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("128x96")]
    assert any("torch fp32 (cpu)" in row and "keypoints 0.000 px" in row for row in rows), out
    assert all("skipped" in row or "heatmaps" in row for row in rows), out
    assert "criteria (issue 15" in out and "128x96 batch 8" in out
    assert "tensorrt: not run here" in out
    assert "predict/pipeline:" in out  # images/s rows, or the reason they were skipped


def test_stderr_of_native_code_is_captured_and_echoed(capfd) -> None:
    module = _module()
    sink: list[str] = []
    with module.captured_stderr(sink):
        os.write(2, b"[TRT] [W] Using default stream in enqueueV3()\n")  # as TensorRT's C++ logger writes
    assert sink[0].count(module.DEFAULT_STREAM_WARNING) == 1
    assert "Using default stream" in capfd.readouterr().err  # echoed after the block
