"""Regenerate ``train_<size>_<init>.npz``: PaddleDetection's own training steps (see README.md here).

Not run by the tests. From the repository root, with the project venv:

    python tests/train/references/make_train_reference.py --ppdet /path/to/PaddleDetection \
        --paddle-python /work/peers/bin/python [--sizes 128x96 256x192] [--inits random released]

Builds the initial weights and the fixed batches with ``tests/train/parity_setup.py``, runs
``paddle_train_runner.py`` (PaddleDetection's Trainer, float32 and float64) in the Paddle Python, and
keeps what the tests need: per-step loss and LR, first-step gradients and parameters after selected
steps at ``SAMPLES`` seeded elements per tensor (plus each tensor's full norm), all BatchNorm
statistics after step 1, and the stock schedule's LR at the recipe's steps per epoch.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE.parent))

from parity_setup import (  # noqa: E402
    BATCH_SIZE,
    SCHEDULE,
    SNAPSHOTS,
    STEPS,
    STEPS_PER_EPOCH,
    batch_digest,
    initial_model,
    parity_batches,
    sample_indices,
)

RECIPE_STEPS_PER_EPOCH = {"128x96": 74, "256x192": 293}
"""ceil(149,813 COCO persons / (512 or 128 per GPU x 4 GPUs)): the stock recipes' steps per epoch."""
BN_SUFFIXES = {"_mean": "running_mean", "_variance": "running_var"}


def lr_steps(total: int, boundaries: list[int]) -> np.ndarray:
    """The steps whose stock LR is stored: the whole warmup and after, around each milestone, and a sparse grid."""
    keep = set(range(600))
    for boundary in boundaries:
        keep.update(range(boundary - 3, boundary + 4))
    keep.update(range(0, total, 997))
    keep.add(total - 1)
    return np.array(sorted(s for s in keep if 0 <= s < total))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ppdet", required=True)
    parser.add_argument("--paddle-python", required=True)
    parser.add_argument("--shared", default=str(REPO.parent / "shared"))
    parser.add_argument("--sizes", nargs="+", default=["128x96", "256x192"])
    parser.add_argument("--inits", nargs="+", default=["random", "released"])
    parser.add_argument(
        "--keep",
        default=str(Path(tempfile.gettempdir()) / "tinypose_train_reference"),
        help="folder for Paddle's full outputs; existing ones are reused",
    )
    args = parser.parse_args()
    shared = Path(args.shared)
    coco_dev = shared / "data" / "coco_dev"
    for size in args.sizes:
        batches = parity_batches(size, coco_dev)
        for init in args.inits:
            model = initial_model(size, init, shared)
            state = {}
            for name, value in model.state_dict().items():
                if name.endswith("num_batches_tracked"):
                    continue
                for ours_suffix, paddle_suffix in ((v, k) for k, v in BN_SUFFIXES.items()):
                    if name.endswith(ours_suffix):
                        name = name[: -len(ours_suffix)] + paddle_suffix
                state[f"state/{name}"] = value.numpy()
            inputs = {
                **state,
                "steps": STEPS,
                "snapshots": np.array(SNAPSHOTS),
                "batch_size": BATCH_SIZE,
                "steps_per_epoch": STEPS_PER_EPOCH,
                "milestones": np.array(SCHEDULE["milestones"]),
                "warmup_steps": SCHEDULE["warmup_steps"],
                "recipe_steps_per_epoch": np.array([RECIPE_STEPS_PER_EPOCH[size]]),
            }
            for step, batch in enumerate(batches):
                for key, value in batch.items():
                    inputs[f"batch{step}/{key}"] = value.numpy()
            runs = {}
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                np.savez(Path(tmp) / "in.npz", **inputs)
                for dtype in ("float32", "float64"):
                    out = keep / f"{size}_{init}_{dtype}.npz"
                    if out.is_file():
                        runs[dtype] = dict(np.load(out))
                        continue
                    subprocess.run(
                        [
                            args.paddle_python,
                            str(HERE / "paddle_train_runner.py"),
                            args.ppdet,
                            size,
                            dtype,
                            str(Path(tmp) / "in.npz"),
                            str(out),
                            str(coco_dev),
                        ],
                        check=True,
                    )
                    runs[dtype] = dict(np.load(out))
            save_fixture(size, init, batches, runs, state)


def save_fixture(size: str, init: str, batches: list, runs: dict, state: dict) -> None:
    """Reduce both runs to the fixture (names in tinypose's spelling; Paddle's ``_mean``/``_variance`` renamed).

    Float64 parameters are stored as float32 differences from the initial weights (exact to ~1e-10 of
    an update), BatchNorm statistics as float32 (1e-7 relative, the criterion is 1e-5).
    """
    f32, f64 = runs["float32"], runs["float64"]
    names = [str(n) for n in f32["param_names"]]
    fixture: dict[str, np.ndarray] = {
        "param_names": np.array(names),
        "batch_sha256": np.array(batch_digest(batches)),
        "loss_f32": f32["loss"],
        "loss_f64": f64["loss"],
        "lr_f32": f32["lr"],
        "lr_f64": f64["lr"],
    }
    idx = [sample_indices(int(f32[f"grad1/{n}"].size), i) for i, n in enumerate(names)]
    fixture["sample_offsets"] = np.cumsum([0] + [len(i) for i in idx])

    def sampled(arrays: dict, key: str) -> np.ndarray:
        return np.concatenate([np.asarray(arrays[f"{key}/{n}"]).reshape(-1)[i] for n, i in zip(names, idx)])

    fixture["sample_index"] = np.concatenate(idx).astype(np.int32)
    initial = sampled(state, "state").astype(np.float64)
    fixture["grad1_f64"] = sampled(f64, "grad1")
    fixture["grad1_norm_f64"] = np.array([np.linalg.norm(f64[f"grad1/{n}"]) for n in names])
    fixture["grad1_f32"] = sampled(f32, "grad1").astype(np.float32)
    fixture["params1_f32"] = sampled(f32, "state1").astype(np.float32)
    for step in SNAPSHOTS:
        fixture[f"delta{step}_f64"] = (sampled(f64, f"state{step}") - initial).astype(np.float32)
    bn_names = sorted(
        k[len("state1/") :] for k in f64 if k.startswith("state1/") and k.endswith(("_mean", "_variance"))
    )
    fixture["bn1_f64"] = np.concatenate([f64[f"state1/{k}"].reshape(-1) for k in bn_names]).astype(np.float32)
    fixture["bn_names"] = np.array([rename(k) for k in bn_names])
    fixture["bn_sizes"] = np.array([f64[f"state1/{k}"].size for k in bn_names])
    for key in (k for k in f64 if k.startswith("stock_lr/")):
        values = f64[key]
        per_epoch = int(key.split("/")[1])
        steps = lr_steps(len(values), [380 * per_epoch, 410 * per_epoch])
        fixture["stock_steps_per_epoch"] = np.array(per_epoch)
        fixture["stock_lr_steps"] = steps
        fixture["stock_lr"] = values[steps]
    path = HERE / f"train_{size}_{init}.npz"
    np.savez_compressed(path, **fixture)
    print(f"{path}: {path.stat().st_size / 1e3:.0f} kB; loss f32 {f32['loss'][:3]} f64 {f64['loss'][:3]}")


def rename(name: str) -> str:
    """Paddle's BatchNorm buffer names -> tinypose's."""
    for paddle_suffix, ours in BN_SUFFIXES.items():
        if name.endswith(paddle_suffix):
            return name[: -len(paddle_suffix)] + ours
    return name


if __name__ == "__main__":
    main()
