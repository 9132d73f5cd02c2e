"""Training throughput on CPU: the data pipeline alone (0 and 2 workers) against full training steps.

    python benchmarks/bench_train.py [--model PP-TinyPose_128x96] [--batch-size 16] [--batches 12] [--threads 1]
    python benchmarks/bench_train.py --paddle-python /work/peers/bin/python --ppdet PADDLEDETECTION_DIR [--rounds 3]

With ``--paddle-python`` and ``--ppdet`` it also times PaddleDetection's own training step (its
``Trainer`` from the stock config, ``paddle_train_step.py`` in that Python) on the same in-memory
batches with the same thread count, interleaved with tinypose's model-only step round by round, and
reports both rates (median and range over the rounds) and their ratio.

Reads ../shared/data/coco_dev (laid out in PaddleX's structure in a temporary folder). Every number
is measured in this process and reported as samples/s and as ratios to the model-only step (the
same training step on batches already in memory), so runs on a busy machine stay comparable: the
data pipeline is not the bottleneck when ``pipeline / model-only step`` is above 1 and the full step
with workers runs at about the model-only rate.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinypose.data.layout import make_paddlex_layout  # noqa: E402
from tinypose.train.datamodule import CocoKeypointDataModule  # noqa: E402
from tinypose.train.module import TinyPoseLitModule, keypoint_mse_loss  # noqa: E402


def pipeline_rate(datamodule: CocoKeypointDataModule, batches: int) -> float:
    """Samples/s of the train loader alone (first batch, which starts the workers, not timed)."""
    loader = datamodule.train_dataloader()
    iterator = iter(loader)
    next(iterator)
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            loader.sampler.set_epoch(loader.sampler.epoch + 1)
            iterator = iter(loader)
            batch = next(iterator)
        count += batch["image"].shape[0]
    return count / (time.perf_counter() - start)


def train_step(module: TinyPoseLitModule, optimizer: torch.optim.Optimizer, batch: dict) -> None:
    heatmaps = module(batch["image"])
    loss = keypoint_mse_loss(heatmaps, batch["target"], batch["target_weight"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def step_rate(module: TinyPoseLitModule, batches_source, batches: int) -> float:
    """Samples/s of full training steps over batches from ``batches_source`` (a loader or a list)."""
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    iterator = iter(batches_source)
    train_step(module, optimizer, next(iterator))  # warm-up (and worker start) not timed
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
        train_step(module, optimizer, batch)
        count += batch["image"].shape[0]
    return count / (time.perf_counter() - start)


def paddle_rate(args: argparse.Namespace, batches: list, coco_dev: Path, tmp: str) -> float:
    """Samples/s of PaddleDetection's training step on ``batches`` (normalized float32), in the peers' Python."""
    import numpy as np

    path = Path(tmp) / "batches.npz"
    if not path.is_file():
        arrays = {f"{i}/{k}": b[k].numpy() for i, b in enumerate(batches) for k in ("image", "target", "target_weight")}
        np.savez(path, count=len(batches), batch_size=args.batch_size, coco_dev=str(coco_dev), **arrays)
    size = args.model.split("_")[-1]
    threads = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, CPU_NUM="1")
    script = str(Path(__file__).with_name("paddle_train_step.py"))
    done = subprocess.run(
        [args.paddle_python, script, args.ppdet, size, str(path), str(args.batches)],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        cwd=tmp,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"PaddleDetection's training step failed:\n{done.stderr[-3000:]}")
    return float(json.loads(lines[-1])["samples_per_s"])


def compare_with_paddle(args: argparse.Namespace, datamodule: CocoKeypointDataModule, coco_dev: Path, tmp: str) -> None:
    """tinypose's and PaddleDetection's training step on the same batches, interleaved over rounds."""
    from tinypose.train.evaluation import normalize_batch

    spec = datamodule.spec
    batches = []
    for batch in itertools.islice(datamodule.train_dataloader(), 4):
        batches.append(dict(batch, image=normalize_batch(batch["image"], spec.mean, spec.std)))
    ours, theirs = [], []
    for _ in range(args.rounds):
        module = TinyPoseLitModule(args.model, weights=None).train()
        ours.append(step_rate(module, itertools.cycle(batches), args.batches))
        theirs.append(paddle_rate(args, batches, coco_dev, tmp))
    print(
        f"\ntraining step on the same {len(batches)} batches of {args.batch_size}, {args.threads} thread(s), "
        f"{args.rounds} interleaved rounds (median, range):"
    )
    for name, rates in (("tinypose (Lightning module's step)", ours), ("PaddleDetection Trainer step", theirs)):
        print(f"{name:36s} {statistics.median(rates):7.1f} samples/s  ({min(rates):.1f} .. {max(rates):.1f})")
    ratios = [a / b for a, b in zip(ours, theirs)]
    print(
        f"tinypose / PaddleDetection: {statistics.median(ratios):.2f}x (per round {', '.join(f'{r:.2f}' for r in ratios)}); "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="PP-TinyPose_128x96")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=12, help="timed batches per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the training process")
    parser.add_argument("--coco-dev", default=str(REPO.parent / "shared" / "data" / "coco_dev"))
    parser.add_argument("--paddle-python", help="a Python with paddlepaddle: also time PaddleDetection's step")
    parser.add_argument("--ppdet", help="PaddleDetection sources (with --paddle-python)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the PaddleDetection comparison")
    parser.add_argument("--paddle-only", action="store_true", help="only the PaddleDetection comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    coco_dev = Path(args.coco_dev)
    if not (coco_dev / "annotations" / "person_keypoints.json").is_file():
        sys.exit(f"needs {coco_dev} (../shared/data/coco_dev)")

    with tempfile.TemporaryDirectory() as tmp:
        annotations = coco_dev / "annotations" / "person_keypoints.json"
        make_paddlex_layout(tmp, coco_dev / "images", {"train": annotations, "val": annotations})
        if args.paddle_python and args.ppdet:
            datamodule = CocoKeypointDataModule(tmp, args.model, batch_size=args.batch_size, num_workers=0)
            datamodule.setup("fit")
            compare_with_paddle(args, datamodule, coco_dev, tmp)
            if args.paddle_only:
                return
        modules = {}
        rates = {}
        for workers in (0, 2):
            datamodule = CocoKeypointDataModule(tmp, args.model, batch_size=args.batch_size, num_workers=workers)
            datamodule.setup("fit")
            modules[workers] = datamodule
            rates[f"pipeline, {workers} workers"] = pipeline_rate(datamodule, args.batches)
        module = TinyPoseLitModule(args.model, weights=None)
        module.train()
        in_memory = list(modules[0].train_dataloader())
        rates["model-only step"] = step_rate(module, itertools.cycle(in_memory), args.batches)
        for workers in (0, 2):
            loader = modules[workers].train_dataloader()
            rates[f"full step, {workers} workers"] = step_rate(module, _cycle(loader), args.batches)

    base = rates["model-only step"]
    print(
        f"{args.model}, batch {args.batch_size}, {args.batches} timed batches, {args.threads} training thread(s), "
        f"torch {torch.__version__}, CPU"
    )
    print(f"{'measurement':32s} {'samples/s':>10s} {'/ model-only step':>18s}")
    for name, rate in rates.items():
        print(f"{name:32s} {rate:10.1f} {rate / base:18.2f}")
    verdict = "not the bottleneck" if rates["pipeline, 2 workers"] > base else "THE BOTTLENECK"
    print(f"data pipeline with 2 workers / model-only step = {rates['pipeline, 2 workers'] / base:.2f}: {verdict}")


def _cycle(loader):
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


if __name__ == "__main__":
    main()
