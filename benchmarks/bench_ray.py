"""Ray Data batch inference against a plain loop, and two single-threaded actors against one.

    python benchmarks/bench_ray.py [--copies 4] [--rounds 3] [--pose-only]

Workload: the 22 coco_dev photos (``--copies`` symlinked copies of each, so that the run is long
next to Ray's start-up), PP-PicoDet 192 + PP-TinyPose 128x96 (real weights, OpenVINO IR read into
torch), one torch thread per worker. Three cases, interleaved in every round on one local Ray instance
(2 CPUs, started once, outside the timings):

* ``loop``: a fresh process, no Ray: build the pipeline, then :class:`tinypose.scale.worker.PoseWorker`
  called on the same batches of units Ray would give it (read, pose, write the Parquet shards), one
  torch and one OpenCV thread, ``OMP_NUM_THREADS=1`` as Ray gives an actor of one CPU;
* ``loop x2 processes``: the same in two processes at once, each on half of the images: how much two
  single-threaded workers can gain on this machine at this moment, with no engine at all;
* ``ray 1 actor`` / ``ray 2 actors``: :func:`tinypose.scale.run_batch` end to end (actor start and
  model load included, as a user waits for them), one CPU and one thread per actor.

Two rates per case: **end to end** (all images over the whole run, start-up included) and **steady**
(the images of every shard after the first, over the time from the first shard written to the last:
the rate once the model is loaded and the actors run, from the shards' modification times, measured
the same way for the loop). Printed: per case the medians with the range over rounds, the ratios
(2 actors / 1 actor; Ray 1 actor against the loop), and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")


REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYPOSE_SHARED", REPO.parent / "shared"))


def workload(folder: Path, copies: int) -> list[str]:
    """``copies`` symlinks of each coco_dev photo in ``folder`` (distinct paths: distinct inputs)."""
    images = sorted((SHARED / "data" / "coco_dev" / "images").glob("*.jpg"))
    paths = []
    for copy in range(copies):
        for image in images:
            link = folder / f"{copy}_{image.name}"
            link.symlink_to(image)
            paths.append(str(link))
    return paths


def settings(pose_only: bool) -> dict:
    weights = SHARED / "weights" / "openvino"
    found = {
        "model": "PP-TinyPose_128x96",
        "model_dir": str(weights / "tinypose_128x96" / "model.xml"),
        "device": "cpu",
        "batch_size": 1,
    }
    if not pose_only:
        found["detector"] = "picodet_s_192_lcnet_pedestrian"
        found["detector_model_dir"] = str(weights / "picodet_s_192_lcnet_pedestrian" / "model.xml")
    return found


def steady_rate(output: Path, units_per_shard: int) -> float:
    """Images/s from the first shard written to the last (start-up excluded), from modification times."""
    from tinypose.scale.shards import SHARD_GLOB

    times = sorted(path.stat().st_mtime for path in output.glob(SHARD_GLOB))
    images = units_per_shard * (len(times) - 1)  # every shard but the first, all full in this workload
    return images / (times[-1] - times[0])


LOOP = """
import json, sys, time
start = time.perf_counter()
from tinypose.scale import plan_units
from tinypose.scale.worker import PoseWorker
paths, model, output, size = json.loads(sys.argv[1])
worker = PoseWorker(model, output, threads=1)
units = [unit.as_row() for unit in plan_units(paths)]
for first in range(0, len(units), size):
    chunk = units[first : first + size]
    worker({column: [row[column] for row in chunk] for column in ("key", "path", "start", "stop")})
"""


def run_loop(paths: list[str], model: dict, output: Path, units_per_shard: int, processes: int = 1) -> float:
    """Seconds for the plain loop in ``processes`` fresh processes (no Ray), each on its share of the
    paths: import, model built, every batch read, posed and written; the environment a Ray actor of one
    CPU gets (``OMP_NUM_THREADS=1``). Two processes are what the machine allows any engine."""
    start = time.perf_counter()
    shares = [paths[index::processes] for index in range(processes)]
    running = [
        subprocess.Popen(
            [sys.executable, "-c", LOOP, json.dumps([share, model, str(output), units_per_shard])],
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for share in shares
    ]
    for process in running:
        if process.wait() != 0:
            raise RuntimeError(f"the loop exited with {process.returncode}")
    return time.perf_counter() - start


def run_ray(paths: list[str], model: dict, output: Path, actors: int, units_per_shard: int) -> float:
    from tinypose.scale import run_batch

    start = time.perf_counter()
    summary = run_batch(paths, output, model, num_actors=actors, threads=1, units_per_shard=units_per_shard)
    assert summary["processed"] == len(paths) and summary["errors"] == 0, summary
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=4, help="copies of the 22 coco_dev photos")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--units-per-shard", type=int, default=8)
    parser.add_argument("--pose-only", action="store_true", help="no detector: PP-TinyPose on whole images")
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    model = settings(args.pose_only)
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {"loop": [], "loop x2 processes": [], "ray 1 actor": [], "ray 2 actors": []}
    steady: dict[str, list[float]] = {case: [] for case in times}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        inputs = root / "inputs"
        inputs.mkdir()
        paths = workload(inputs, args.copies)
        for round_index in range(args.rounds):
            for case in times:
                output = root / f"out_{round_index}_{case.replace(' ', '_')}"
                if case.startswith("loop"):
                    seconds = run_loop(paths, model, output, args.units_per_shard, 2 if "x2" in case else 1)
                else:
                    actors = 1 if case == "ray 1 actor" else 2
                    seconds = run_ray(paths, model, output, actors, args.units_per_shard)
                steady[case].append(steady_rate(output, args.units_per_shard))
                shutil.rmtree(output)
                times[case].append(seconds)
                print(
                    f"round {round_index + 1} {case}: {len(paths) / seconds:.2f} img/s end to end ({seconds:.1f} s), "
                    f"{steady[case][-1]:.2f} img/s steady",
                    flush=True,
                )
    load_after = os.getloadavg()
    ray.shutdown()
    rate = {case: [len(paths) / s for s in values] for case, values in times.items()}
    print(
        f"\n{len(paths)} images, {'pose only' if args.pose_only else 'PicoDet 192 + TinyPose 128x96'}, "
        f"{args.rounds} rounds, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print("| case | end to end images/s (median, range) | steady images/s (median, range) |\n|---|---:|---:|")
    for case, values in rate.items():
        print(
            f"| {case} | {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) | "
            f"{statistics.median(steady[case]):.2f} ({min(steady[case]):.2f}-{max(steady[case]):.2f}) |"
        )
    for label, table in (("end to end", rate), ("steady", steady)):
        scaling = [two / one for one, two in zip(table["ray 1 actor"], table["ray 2 actors"])]
        ceiling = [two / one for one, two in zip(table["loop"], table["loop x2 processes"])]
        overhead = [
            loop / ray_1 - 1 for loop, ray_1 in zip(table["loop"], table["ray 1 actor"])
        ]  # extra time per image
        print(
            f"{label}: 2 actors / 1 actor {statistics.median(scaling):.2f}x "
            f"(rounds {', '.join(f'{v:.2f}' for v in scaling)}; target >= 1.6x; "
            f"2 plain processes / 1: {statistics.median(ceiling):.2f}x, what the machine allowed); "
            f"Ray 1 actor vs loop {100 * statistics.median(overhead):+.1f}% time per image "
            f"(rounds {', '.join(f'{100 * v:+.1f}%' for v in overhead)}; target <= +15%)"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
