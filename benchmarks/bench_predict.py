"""Images per second of ``create_model(...).predict(folder)`` end to end, next to PaddleX's own predictor.

    python benchmarks/bench_predict.py [--images DIR] [--repeat 4] [--threads 1] [--batch-size 1]
        [--backends default torch onnxruntime openvino] [--paddlex-python PY] [--paddlex-pythonpath DIR]

``default`` (the default of ``--backends``) is what ``create_model()`` runs when no backend is
named (onnxruntime on the CPU). End to end = from image files to keypoints (decode, crop, normalize, forward, decode); no saving.
Both sizes, flip off and on, the real weights (``../shared/weights/openvino``). PaddleX 3.7.2
runs the same weights (written into its inference program, ``benchmarks/paddlex_models.py``) in
its own Python (a subprocess kept alive), in the same run, with the same number of CPU threads,
oneDNN off (it fails on these programs). The machine may be shared: every configuration is timed
in several rounds of paired passes (ours, then PaddleX's right after), and the ratio printed is
the median of the paired ratios; compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

SIZES = ("128x96", "256x192")

PADDLEX_SERVER = r"""
import json, sys, time
job = json.loads(sys.argv[1])
import paddlex
from paddlex.inference.models.runners.paddle_static.config.pp_option import PaddlePredictorOption
models = {}
for size, folder in job["folders"].items():
    for flip in (False, True):
        option = PaddlePredictorOption(run_mode="paddle", cpu_threads=job["threads"])
        model = paddlex.create_model("PP-TinyPose_" + size, model_dir=folder, device="cpu", flip=flip, pp_option=option)
        list(model.predict(job["files"][:2], batch_size=job["batch_size"]))
        models[f"{size}|{int(flip)}"] = model
print("READY " + paddlex.__version__, flush=True)
for line in sys.stdin:  # one timed pass over the files per request
    model = models[line.strip()]
    start = time.perf_counter()
    count = sum(1 for _ in model.predict(job["files"], batch_size=job["batch_size"]))
    print(f"SPEED {count / (time.perf_counter() - start)}", flush=True)
"""


class PaddleXTimer:
    """PaddleX's predictors kept alive in their own Python; ``speed(key)`` times one pass on request,
    so that each PaddleX pass runs right next to ours under the same machine load."""

    def __init__(self, python: str, pythonpath: str, job: dict, workdir: Path) -> None:
        env = dict(os.environ, PYTHONPATH=pythonpath)
        self.process = subprocess.Popen(
            [python, "-c", PADDLEX_SERVER, json.dumps(job)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=workdir,
        )
        self.version = self._expect("READY ")

    def _expect(self, prefix: str) -> str:
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        raise RuntimeError(f"PaddleX stopped: {self.process.stderr.read()[-2000:]}")

    def speed(self, key: str) -> float:
        self.process.stdin.write(key + "\n")
        self.process.stdin.flush()
        return float(self._expect("SPEED "))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def time_ours(predictor, files: list[str], batch_size: int) -> float:
    """Images per second of one pass over ``files``."""
    start = time.perf_counter()
    count = sum(1 for _ in predictor.predict(files, batch_size=batch_size))
    return count / (time.perf_counter() - start)


def start_paddlex(args: argparse.Namespace, files: list[str], shared: Path, workdir: Path) -> PaddleXTimer | None:
    """PaddleX on the same weights, or None (with the reason printed) when it is not available."""
    python = args.paddlex_python
    if not python or not Path(python).exists():
        print(f"PaddleX skipped: no Python at {python!r} (--paddlex-python)")
        return None
    probe = subprocess.run(
        [python, "-c", "import paddlex, cv2"],
        check=False,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=args.paddlex_pythonpath),
    )
    if probe.returncode != 0:
        print(f"PaddleX skipped: {python} cannot import paddlex and cv2: {probe.stderr.strip().splitlines()[-1:]}")
        return None
    from paddlex_models import build_paddlex_folder

    folders = {size: str(build_paddlex_folder(workdir / size, shared, size)) for size in args.sizes}
    job = {"folders": folders, "files": files, "threads": args.threads, "batch_size": args.batch_size}
    try:
        return PaddleXTimer(python, args.paddlex_pythonpath, job, workdir)
    except RuntimeError as error:
        print(f"PaddleX failed: {error}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=os.environ.get("TINYPOSE_SHARED", str(REPO.parent / "shared")))
    parser.add_argument("--images", default=None, help="folder of photos (default: shared/data/coco_dev/images)")
    parser.add_argument("--repeat", type=int, default=4, help="pass over the photos this many times per round")
    parser.add_argument("--rounds", type=int, default=3, help="paired timed passes per configuration")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and for Paddle")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=SIZES)
    parser.add_argument(
        "--backends", nargs="+", default=["default"],
        help="tinypose backends to time; 'default': what create_model() uses when none is named",
    )  # fmt: skip
    parser.add_argument("--paddlex-python", default="/work/peers/bin/python")
    parser.add_argument("--paddlex-pythonpath", default="", help="extra PYTHONPATH for it (e.g. its OpenCV)")
    args = parser.parse_args()

    import torch

    from tinypose import create_model
    from tinypose.predict import IMAGE_SUFFIXES
    from tinypose.runtimes import thread_options

    torch.set_num_threads(args.threads)
    shared = Path(args.shared)
    folder = Path(args.images) if args.images else shared / "data" / "coco_dev" / "images"
    photos = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    files = photos * args.repeat
    print(
        f"{len(photos)} photos x {args.repeat} = {len(files)} images, batch {args.batch_size}, "
        f"{args.threads} thread(s), torch {torch.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )

    predictors = {}
    for size in args.sizes:
        weights = shared / "weights" / "openvino" / f"tinypose_{size}" / "model.xml"
        for backend in args.backends:
            for flip in (False, True):
                try:
                    predictor = create_model(
                        f"PP-TinyPose_{size}", model_dir=weights, flip=flip, device="cpu",
                        backend=None if backend == "default" else backend,
                        backend_options=thread_options(args.threads, "cpu"),
                    )  # fmt: skip
                except (ImportError, ValueError, RuntimeError) as error:
                    print(f"tinypose backend {backend} skipped: {error}")
                    break
                list(predictor.predict(files[:2], batch_size=args.batch_size))
                predictors[(size, backend, flip)] = predictor

    ours: dict[tuple[str, str, bool], list[float]] = {key: [] for key in predictors}
    theirs: dict[tuple[str, bool], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paddlex = start_paddlex(args, files, shared, Path(tmp))
        for _ in range(args.rounds):  # paired passes: ours, then PaddleX's, for each configuration
            for (size, backend, flip), predictor in predictors.items():
                ours[(size, backend, flip)].append(time_ours(predictor, files, args.batch_size))
                if paddlex is not None and backend == args.backends[0]:
                    theirs.setdefault((size, flip), []).append(paddlex.speed(f"{size}|{int(flip)}"))
        if paddlex is not None:
            print(f"PaddleX {paddlex.version}")
            paddlex.close()

    print(
        f"\n{'model':<22}{'flip':<6}{'backend':<13}{'img/s':>8}{'PaddleX':>9}{'ratio':>8}   (best pass; ratio of paired passes: median)"
    )
    for (size, backend, flip), speeds in ours.items():
        reference = theirs.get((size, flip))
        if reference:
            paired = (
                sorted(a / b for a, b in zip(speeds, reference))
                if backend == args.backends[0]
                else [max(speeds) / max(reference)]
            )
            ratio, shown = f"{paired[len(paired) // 2]:7.2f}x", f"{max(reference):9.1f}"
        else:
            ratio, shown = "       -", "        -"
        print(f"PP-TinyPose_{size:<10}{flip!s:<6}{backend:<13}{max(speeds):8.1f}{shown}{ratio}")
    print(f"(load average now {os.getloadavg()[0]:.1f}; shared machine: absolute numbers vary, ratios less)")


if __name__ == "__main__":
    main()
