"""Images per second of ``create_model(...).predict(folder)`` end to end, next to PaddleX's own predictor.

    python benchmarks/bench_predict.py [--images DIR] [--repeat 4] [--threads 1] [--batch-size 1]
        [--backends torch onnxruntime openvino] [--paddlex-python PY] [--paddlex-pythonpath DIR]

End to end = from image files to keypoints (decode, crop, normalize, forward, decode); no saving.
Both sizes, flip off and on, the real weights (``../shared/weights/openvino``). PaddleX 3.7.2
runs the same weights (written into its inference program, ``benchmarks/paddlex_models.py``) in
its own Python as a subprocess, in the same run, with the same number of CPU threads, oneDNN off
(it fails on these programs). The machine may be shared: every configuration is timed in several
rounds, ours before and after PaddleX, and the best round counts; compare the printed ratios,
not the absolute numbers.
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

PADDLEX_TIMER = r'''
import json, sys, time
job = json.loads(sys.argv[1])
import paddlex
from paddlex.inference.models.runners.paddle_static.config.pp_option import PaddlePredictorOption
out = {"paddlex": paddlex.__version__, "timings": {}}
for size, folder in job["folders"].items():
    for flip in (False, True):
        option = PaddlePredictorOption(run_mode="paddle", cpu_threads=job["threads"])
        model = paddlex.create_model("PP-TinyPose_" + size, model_dir=folder, device="cpu", flip=flip, pp_option=option)
        list(model.predict(job["files"][:2], batch_size=job["batch_size"]))
        best = 0.0
        for _ in range(job["rounds"]):
            start = time.perf_counter()
            count = sum(1 for _ in model.predict(job["files"], batch_size=job["batch_size"]))
            best = max(best, count / (time.perf_counter() - start))
        out["timings"][f"{size}|{int(flip)}"] = best
print("PADDLEX_RESULT " + json.dumps(out))
'''


def time_ours(predictor, files: list[str], batch_size: int) -> float:
    """Images per second of one pass over ``files``."""
    start = time.perf_counter()
    count = sum(1 for _ in predictor.predict(files, batch_size=batch_size))
    return count / (time.perf_counter() - start)


def run_paddlex(args: argparse.Namespace, files: list[str], shared: Path, workdir: Path) -> dict | None:
    """PaddleX's images/s per ``size|flip`` (None when its Python or PaddleX is not available)."""
    python = args.paddlex_python
    if not python or not Path(python).exists():
        print(f"PaddleX skipped: no Python at {python!r} (--paddlex-python)")
        return None
    probe = subprocess.run([python, "-c", "import paddlex, cv2"], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=args.paddlex_pythonpath))
    if probe.returncode != 0:
        print(f"PaddleX skipped: {python} cannot import paddlex and cv2: {probe.stderr.strip().splitlines()[-1:]}")
        return None
    from paddlex_models import build_paddlex_folder

    folders = {size: str(build_paddlex_folder(workdir / size, shared, size)) for size in args.sizes}
    job = {"folders": folders, "files": files, "threads": args.threads, "batch_size": args.batch_size,
           "rounds": args.rounds}
    done = subprocess.run([python, "-c", PADDLEX_TIMER, json.dumps(job)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=args.paddlex_pythonpath), cwd=workdir)
    lines = [line for line in done.stdout.splitlines() if line.startswith("PADDLEX_RESULT ")]
    if done.returncode != 0 or not lines:
        print(f"PaddleX failed:\n{done.stderr[-2000:]}")
        return None
    return json.loads(lines[-1].split(" ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=os.environ.get("TINYPOSE_SHARED", str(REPO.parent / "shared")))
    parser.add_argument("--images", default=None, help="folder of photos (default: shared/data/coco_dev/images)")
    parser.add_argument("--repeat", type=int, default=4, help="pass over the photos this many times per round")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per configuration (best counts)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and for Paddle")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=SIZES)
    parser.add_argument("--backends", nargs="+", default=["torch"], help="tinypose backends to time")
    parser.add_argument("--paddlex-python", default="/work/peers/bin/python")
    parser.add_argument("--paddlex-pythonpath", default="", help="extra PYTHONPATH for it (e.g. its OpenCV)")
    args = parser.parse_args()

    import torch

    from tinypose import create_model
    from tinypose.predict import IMAGE_SUFFIXES

    torch.set_num_threads(args.threads)
    shared = Path(args.shared)
    folder = Path(args.images) if args.images else shared / "data" / "coco_dev" / "images"
    photos = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    files = photos * args.repeat
    print(f"{len(photos)} photos x {args.repeat} = {len(files)} images, batch {args.batch_size}, "
          f"{args.threads} thread(s), torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")

    predictors = {}
    for size in args.sizes:
        weights = shared / "weights" / "openvino" / f"tinypose_{size}" / "model.xml"
        for backend in args.backends:
            for flip in (False, True):
                try:
                    predictor = create_model(f"PP-TinyPose_{size}", model_dir=weights, flip=flip, device="cpu",
                                             backend=backend)
                except (ImportError, ValueError, RuntimeError) as error:
                    print(f"tinypose backend {backend} skipped: {error}")
                    break
                list(predictor.predict(files[:2], batch_size=args.batch_size))
                predictors[(size, backend, flip)] = predictor

    ours: dict[tuple[str, str, bool], float] = {}

    def our_round() -> None:
        for key, predictor in predictors.items():
            for _ in range(args.rounds):
                ours[key] = max(ours.get(key, 0.0), time_ours(predictor, files, args.batch_size))

    our_round()
    with tempfile.TemporaryDirectory() as tmp:
        paddlex = run_paddlex(args, files, shared, Path(tmp))
    our_round()

    print(f"\n{'model':<22}{'flip':<6}{'backend':<13}{'img/s':>8}{'PaddleX':>9}{'ratio':>8}")
    for (size, backend, flip), speed in ours.items():
        reference = (paddlex or {}).get("timings", {}).get(f"{size}|{int(flip)}")
        ratio = f"{speed / reference:7.2f}x" if reference else "       -"
        shown = f"{reference:9.1f}" if reference else "        -"
        print(f"PP-TinyPose_{size:<10}{str(flip):<6}{backend:<13}{speed:8.1f}{shown}{ratio}")
    print(f"(load average now {os.getloadavg()[0]:.1f}; shared machine: absolute numbers vary, ratios less)")


if __name__ == "__main__":
    main()
