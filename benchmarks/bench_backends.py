"""CPU speed and memory of every tinypose backend, side by side with the peers, in one run.

For each input size (128x96, 256x192) and batch (1, 32): crops/s and peak memory of

* tinypose ``torch`` step by step: the original graph, + BatchNorm folded, + channel shuffles
  folded (these ablation steps get one round only: they are slow and only compared with each
  other), + channels_last (= the ``torch`` backend); then the ``onnxruntime`` and ``openvino``
  backends (our folded ONNX), each checked against the original model's heatmaps (max abs diff);
* peers, when installed: the OpenVINO runtime on the released IR (../shared/weights/openvino,
  BatchNorm folded by Model Optimizer, shuffles as Transpose), and Paddle Inference 3 (the PaddleX
  inference program with the same real weights written in; run as a subprocess of the peers Python,
  oneDNN off).

All share ``--threads`` (2) and the same weights and input. Candidates are timed round-robin
(``--rounds`` x ``--seconds`` each) and the median is kept, so that load from other processes hits
them alike; Paddle runs in its own process (the peers' Python), driven over a pipe in the same
round-robin. Ratios against the OpenVINO IR and Paddle
Inference are printed, because absolute numbers on a shared machine move by ~30% between runs.

    python benchmarks/bench_backends.py                  # everything, ~2-3 minutes on 2 cores
    python benchmarks/bench_backends.py --quick          # one round, shorter timings
    python benchmarks/bench_backends.py --sizes 128x96 --batches 1 --no-paddle
    python benchmarks/bench_backends.py --backends onnxruntime openvino torch inductor --cache-dir DIR

The compiled ``inductor`` runtime is left out by default: its first start compiles for minutes on 2
cores; ``--cache-dir`` keeps its package, so a second run loads it (the "ready in" line says which).

INT8: ``openvino int8`` runs the model quantized by NNCF (the ``int8`` extra), calibrated on
``--calib-images`` (default ../shared/data/coco_dev/images; ``--no-int8`` skips).

Under load (``--load``): every round also times the tinypose backends while one competing
``python -c "while True: pass"`` runs (started before and ended after that pass, by this script
only), and the table adds each backend's loaded/idle ratio; the line under it gives the default
backend's (``tinypose.runtimes.default_backend``) ratio to the fastest, idle and loaded.

    python benchmarks/bench_backends.py --load --no-paddle --no-openvino-ir

Memory: ``load MB`` is the peak resident-memory growth while a backend is created (weights,
export, compiled graph), ``run MB`` the peak growth while it runs a batch, first call included
(activations, per-shape compilation, scratch); from /proc/self with the peak reset through
/proc/self/clear_refs. For Paddle ``run MB`` is the child process's whole peak RSS (runtime included).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from peers import BUSY_LOOP, PEERS_PYTHON, PaddlePeer, openvino_ir_runner, paddle_inference_model  # noqa: E402 (after sys.path)

import tinypose  # noqa: E402
from tinypose.models.fuse import fuse_batchnorm  # noqa: E402
from tinypose.runtimes import (  # noqa: E402
    auto_runtime,
    available_backends,
    create_backend,
    default_backend,
    runtime_names,
)

Runner = Callable[[np.ndarray], np.ndarray]


def _status_kb(field_name: str) -> int:
    match = re.search(rf"{field_name}:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass
class Candidate:
    name: str
    run: Runner | None
    load_mb: float
    kind: str = "tinypose"
    rates: dict[int, list[float]] = field(default_factory=dict)
    loaded: dict[int, list[float]] = field(default_factory=dict)
    """Rates while a competing busy process runs (``--load``)."""
    run_mb: dict[int, float] = field(default_factory=dict)
    max_diff: float = float("nan")
    peer: PaddlePeer | None = None
    """Out-of-process candidates time themselves."""
    rounds: int | None = None
    """At most this many rounds (the slow torch ablation steps get one)."""

    def rate(self, batch: np.ndarray, seconds: float) -> float:
        if self.peer is not None:
            return self.peer.rate(batch.shape[0], seconds)
        assert self.run is not None
        return _timed(self.run, batch, seconds)


def _torch_runner(module: torch.nn.Module) -> Runner:
    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(batch)).numpy()

    return run


def _backend_runner(backend) -> Runner:
    return lambda batch: backend(torch.from_numpy(batch)).numpy()


def _timed(run: Runner, batch: np.ndarray, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while True:
        run(batch)
        count += batch.shape[0]
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


class _PeakRss:
    """Peak resident-memory growth (MB) of a block, from /proc/self (NaN where unsupported)."""

    def __enter__(self) -> _PeakRss:
        self.supported = _reset_peak()
        self.base = _status_kb("VmRSS")
        self.mb = float("nan")
        return self

    def __exit__(self, *exc) -> None:
        if self.supported:
            self.mb = max(0.0, (_status_kb("VmHWM") - self.base) / 1024)


def _make(name: str, factory: Callable[[], Runner], kind: str = "tinypose") -> Candidate | None:
    try:
        began = time.perf_counter()
        with _PeakRss() as peak:
            run = factory()
    except Exception as error:  # noqa: BLE001 (a missing or failing runtime is reported, not fatal)
        print(f"  skip {name}: {type(error).__name__}: {error}")
        return None
    if kind == "tinypose":  # export / compile / cached load: the start a user waits for
        print(f"  {name}: ready in {time.perf_counter() - began:.2f} s")
    return Candidate(name, run, peak.mb, kind)


def _weights(size: str, shared: Path, weights: str | None) -> tuple[tinypose.TinyPose, str]:
    name = f"PP-TinyPose_{size}"
    if weights:
        return tinypose.build_model(name, pretrained=weights), weights
    ir = shared / "weights" / "openvino" / f"tinypose_{size}" / "model.xml"
    if ir.is_file():
        return tinypose.build_model(name, pretrained=ir), f"real weights ({ir})"
    print(f"  {ir} not found: random weights (speed is the same; Paddle and the IR peer are skipped)")
    return tinypose.build_model(name), "random"


def bench_size(size: str, args: argparse.Namespace, workdir: Path) -> list[dict]:
    model, source = _weights(size, args.shared, args.weights)
    spec = model.spec
    print(f"\n== {spec.name}: {source}")
    rng = np.random.default_rng(0)
    sample = rng.standard_normal((max(args.batches), 3, spec.input_height, spec.input_width), dtype=np.float32)
    with torch.inference_mode():
        reference = model(torch.from_numpy(sample[:4])).numpy()

    options = {"num_threads": args.threads, "cache_dir": args.cache_dir or workdir / "cache"}
    candidates: list[Candidate] = []
    factories: list[tuple[str, Callable[[], Runner], str]] = [
        ("torch original", lambda: _torch_runner(model), "step"),
        ("torch +BN fold", lambda: _torch_runner(fuse_batchnorm(model)), "step"),
        ("torch +shuffle fold", lambda: _backend_runner(create_backend("torch", model, channels_last=False)), "step"),
    ]
    if args.no_steps:
        factories = []
    for backend in args.backends:
        factories.append((backend, lambda b=backend: _backend_runner(create_backend(b, model, **options)), "tinypose"))
    if args.calib_images is not None:
        int8 = {**options, "precision": "int8", "calib_images": args.calib_images}
        for backend in [b for b in ("openvino",) if b in args.backends]:
            factories.append(
                (f"{backend} int8", lambda b=backend: _backend_runner(create_backend(b, model, **int8)), "tinypose")
            )
    ir = args.shared / "weights" / "openvino" / f"tinypose_{size}" / "model.xml"
    if source.startswith("real") and ir.is_file() and not args.no_openvino_ir:
        factories.append(("OpenVINO IR (peer)", lambda: openvino_ir_runner(ir, args.threads), "peer"))
    for name, factory, kind in factories:
        candidate = _make(name, factory, kind)
        if candidate is not None and candidate.run is not None:
            candidate.rounds = 1 if kind == "step" else None
            candidate.max_diff = float(np.abs(candidate.run(sample[:4]) - reference).max())
            candidates.append(candidate)
    paddle = (
        _paddle(model, args, workdir, sample, reference) if not args.no_paddle and source.startswith("real") else None
    )
    if paddle is not None:
        candidates.append(paddle)

    try:
        for size_n in args.batches:
            batch = np.ascontiguousarray(sample[:size_n])
            for candidate in candidates:
                with _PeakRss() as peak:  # warm-up: OpenVINO compiles per batch size, allocators grow
                    candidate.rate(batch, 0.0)
                candidate.rates[size_n], candidate.run_mb[size_n] = [], peak.mb
                candidate.loaded[size_n] = []
            for round_index in range(args.rounds):
                for candidate in candidates:
                    if candidate.rounds is not None and round_index >= candidate.rounds:
                        continue
                    with _PeakRss() as peak:
                        candidate.rates[size_n].append(candidate.rate(batch, args.seconds))
                    candidate.run_mb[size_n] = max(candidate.run_mb[size_n], peak.mb)
                if args.load:
                    with _busy_process():
                        for candidate in candidates:
                            if candidate.kind == "tinypose":
                                candidate.loaded[size_n].append(candidate.rate(batch, args.seconds))
    finally:
        if paddle is not None and paddle.peer is not None:
            peak_mb = paddle.peer.close()
            paddle.run_mb = dict.fromkeys(args.batches, peak_mb)

    rows = []
    for candidate in candidates:
        for size_n in args.batches:
            rates = sorted(candidate.rates[size_n])
            loaded = sorted(candidate.loaded.get(size_n, []))
            rows.append({
                "size": size, "batch": size_n, "backend": candidate.name, "kind": candidate.kind,
                "crops_per_s": rates[len(rates) // 2], "load_mb": candidate.load_mb,
                "run_mb": candidate.run_mb[size_n], "max_abs_diff": candidate.max_diff,
                "loaded_crops_per_s": loaded[len(loaded) // 2] if loaded else None,
                "idle_range": [rates[0], rates[-1]], "loaded_range": [loaded[0], loaded[-1]] if loaded else None,
            })  # fmt: skip
    _print_table(size, rows, args.batches)
    return rows


def _paddle(model, args, workdir: Path, sample: np.ndarray, reference: np.ndarray) -> Candidate | None:
    python = Path(args.peers_python) if args.peers_python else None
    if python is None or not python.is_file():
        print(f"  skip Paddle Inference: no peers Python (--peers-python, ${PEERS_PYTHON})")
        return None
    program = args.shared / "fixtures" / "paddle" / "paddlex_infer_128x96"
    if not program.is_dir():
        print(f"  skip Paddle Inference: {program} (the PaddleX program to fill with our weights) is missing")
        return None
    folder = paddle_inference_model(model, program, workdir / f"paddle_{model.spec.name}")
    np.save(workdir / "sample.npy", sample[:4])
    try:
        peer = PaddlePeer(python, folder, args.threads)
        heatmaps = peer.heatmaps(workdir / "sample.npy", workdir / "paddle_out.npy")
    except (RuntimeError, OSError) as error:
        print(f"  skip Paddle Inference: {error}")
        return None
    candidate = Candidate(f"Paddle Inference {peer.version} (peer)", None, float("nan"), "peer", peer=peer)
    candidate.max_diff = float(np.abs(heatmaps - reference).max())
    return candidate


def _print_table(size: str, rows: list[dict], batches: list[int]) -> None:
    def rate(backend_prefix: str, batch: int) -> float | None:
        for row in rows:
            if row["batch"] == batch and row["backend"].startswith(backend_prefix):
                return row["crops_per_s"]
        return None

    print(
        f"\n{'backend':<34}{'batch':>6}{'crops/s':>10}{'x IR':>7}{'x Paddle':>9}{'x orig':>8}{'load MB':>9}{'run MB':>8}{'max|diff|':>11}"
        f"{'loaded':>9}{'ld/idle':>8}"
    )
    for batch in batches:
        ir, paddle, original = (
            rate("OpenVINO IR", batch),
            rate("Paddle Inference", batch),
            rate("torch original", batch),
        )
        for row in (r for r in rows if r["batch"] == batch):
            value = row["crops_per_s"]

            def ratio(base: float, value: float = value) -> str:
                return f"{value / base:.2f}" if base else "-"

            loaded = row["loaded_crops_per_s"]
            print(
                f"{row['backend']:<34}{batch:>6}{value:>10.1f}{ratio(ir):>7}{ratio(paddle):>9}{ratio(original):>8}"
                f"{row['load_mb']:>9.1f}{row['run_mb']:>8.1f}{row['max_abs_diff']:>11.1e}"
                + (f"{loaded:>9.1f}{loaded / value:>8.2f}" if loaded else "")
            )
        best = max(
            (r for r in rows if r["batch"] == batch and r["kind"] == "tinypose"),
            key=lambda r: r["crops_per_s"],
            default=None,
        )
        if best is not None:
            verdict = [f"best tinypose at batch {batch}: {best['backend']} {best['crops_per_s']:.1f} crops/s"]
            if ir:
                verdict.append(f"{best['crops_per_s'] / ir:.2f}x the OpenVINO IR")
            if paddle:
                verdict.append(f"{best['crops_per_s'] / paddle:.2f}x Paddle Inference")
            print("  -> " + ", ".join(verdict))
        _print_default(rows, batch)
        print()


def _print_default(rows: list[dict], batch: int) -> None:
    """The default backend's speed against the fastest fp32 tinypose backend, idle and under load."""
    fp32 = [r for r in rows if r["batch"] == batch and r["kind"] == "tinypose" and "int8" not in r["backend"]]
    name = auto_runtime("cpu")[0].name if default_backend("cpu") == "auto" else default_backend("cpu")
    default = next((r for r in fp32 if r["backend"] == name), None)
    if default is None or not fp32:
        return
    fastest = max(fp32, key=lambda r: r["crops_per_s"])
    line = (
        f"  default ({name}) at batch {batch}: {default['crops_per_s'] / fastest['crops_per_s']:.2f}x the fastest "
        f"fp32 ({fastest['backend']})"
    )
    loaded = [r for r in fp32 if r["loaded_crops_per_s"]]
    if default["loaded_crops_per_s"] and loaded:
        fastest_loaded = max(loaded, key=lambda r: r["loaded_crops_per_s"])
        line += (
            f"; under load keeps {default['loaded_crops_per_s'] / default['crops_per_s']:.0%} of idle, "
            f"{default['loaded_crops_per_s'] / fastest_loaded['loaded_crops_per_s']:.2f}x the fastest loaded "
            f"({fastest_loaded['backend']})"
        )
    print(line)


@contextlib.contextmanager
def _busy_process() -> Iterator[None]:
    """One competing ``python -c "while True: pass"`` for the duration of the block (ended by its pid)."""
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        time.sleep(0.2)  # let it get onto a core
        yield
    finally:
        busy.kill()
        busy.wait()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_shared = Path(os.environ.get("TINYPOSE_SHARED", REPO.parent / "shared"))
    parser.add_argument("--sizes", nargs="+", default=["128x96", "256x192"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=0.5, help="per candidate per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--backends",
        nargs="+",
        default=None,
        choices=runtime_names(),
        help="tinypose runtimes (default: all available on the CPU except inductor, whose first start "
        "compiles for minutes; name it, with --cache-dir to reuse its package)",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="export cache kept across runs (default: temp)")
    parser.add_argument(
        "--weights",
        help="weights file (any supported format) for the one --sizes given; default: the real IR weights in ../shared",
    )
    parser.add_argument(
        "--shared", type=Path, default=default_shared, help=f"the shared folder (default {default_shared})"
    )
    parser.add_argument("--peers-python", default=os.environ.get(PEERS_PYTHON, "/work/peers/bin/python"))
    parser.add_argument("--no-paddle", action="store_true", help="skip Paddle Inference")
    parser.add_argument("--no-openvino-ir", action="store_true", help="skip the OpenVINO IR peer")
    parser.add_argument("--quick", action="store_true", help="one round of 0.4 s per candidate")
    parser.add_argument("--load", action="store_true", help="also time the tinypose backends next to a busy process")
    parser.add_argument("--calib-images", type=Path, default=None, help="int8 calibration folder (default: coco_dev)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 backends")
    parser.add_argument("--no-steps", action="store_true", help="skip the torch ablation steps (slow under load)")
    parser.add_argument("--json", type=Path, help="also write all rows here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 0.4
    if args.backends is None:
        args.backends = [name for name in available_backends("cpu") if name != "inductor"]
    if args.no_int8:
        args.calib_images = None
    elif args.calib_images is None:
        coco_dev = args.shared / "data" / "coco_dev" / "images"
        args.calib_images = coco_dev if coco_dev.is_dir() else None
    if args.weights and len(args.sizes) > 1:
        parser.error("--weights holds one model size; pass one --sizes with it")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    print(
        f"tinypose {tinypose.__version__}, torch {torch.__version__}, {args.threads} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds x {args.seconds} s, median"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="tinypose-bench-") as tmp:
        for size in args.sizes:
            rows += bench_size(size, args, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
