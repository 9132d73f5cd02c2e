"""Draw docs/train_parity.png and print the trajectory numbers of docs/train.md (not run by the tests).

    python tests/train/references/plot_train_parity.py [--sizes 128x96 256x192] [--init random]

Runs tinypose's training loop on the reference batches in float32 and float64 (as
test_parity.py's trajectory test does) and draws, per model size, the loss per step of tinypose and
PaddleDetection (both precisions) and the distances that bound them: tinypose float32 vs Paddle
float64, and tinypose's own float32 vs float64 noise floor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE.parent))

from parity_setup import SNAPSHOTS, parity_batches  # noqa: E402
from test_parity import load_reference, run_trajectory, trajectory_divergence  # noqa: E402

from tinypose.plotting import pyplot, save_figure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["128x96", "256x192"])
    parser.add_argument("--init", default="random")
    parser.add_argument("--shared", default=str(REPO.parent / "shared"))
    parser.add_argument("--output", default=str(REPO / "docs" / "train_parity.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    shared = Path(args.shared)
    plt = pyplot()
    fig, axes = plt.subplots(2, len(args.sizes), figsize=(5.5 * len(args.sizes), 7), dpi=110, squeeze=False)
    for column, size in enumerate(args.sizes):
        reference = load_reference(size, args.init)
        batches = parity_batches(size, shared / "data" / "coco_dev")
        ours32 = run_trajectory(size, args.init, shared, batches, torch.float32, reference)
        ours64 = run_trajectory(size, args.init, shared, batches, torch.float64, reference)
        permuted32 = run_trajectory(size, args.init, shared, batches, torch.float32, reference, permute=True)
        d = trajectory_divergence(reference, ours32, ours64, permuted32)
        steps = np.arange(1, len(ours32["loss"]) + 1)
        top, bottom = axes[0][column], axes[1][column]
        top.plot(steps, reference["loss_f64"], "k-", lw=2.5, alpha=0.4, label="PaddleDetection float64")
        top.plot(steps, reference["loss_f32"], "k:", label="PaddleDetection float32")
        top.plot(steps, ours32["loss"], "C0--", label="tinypose float32")
        top.plot(steps, ours64["loss"], "C1-.", label="tinypose float64")
        top.set_title(f"PP-TinyPose {size} ({args.init} weights): loss per step")
        top.set_xlabel("optimizer step")
        top.legend(fontsize=8)
        bottom.semilogy(steps, d["loss_vs_paddle64"] + 1e-18, "C0o-", ms=3, label="|loss| tinypose f32 - Paddle f64")
        bottom.semilogy(
            steps, d["loss_noise"] + 1e-18, "C1s--", ms=3, label="|loss| noise floor: max(f32-f64, f32-permuted f32)"
        )
        bottom.semilogy(steps, d["loss64_vs_paddle64"] + 1e-18, "C2^:", ms=3, label="|loss| tinypose f64 - Paddle f64")
        bottom.semilogy(list(SNAPSHOTS), d["params_vs_paddle64"], "C3D-", label="|params| tinypose f32 - Paddle f64")
        bottom.semilogy(
            list(SNAPSHOTS), d["params_noise"], "C4x--", label="|params| noise floor (max of f32-f64, f32-permuted)"
        )
        bottom.set_xlabel("optimizer step")
        bottom.set_title("divergence (params: sampled elements, L2)")
        bottom.legend(fontsize=7)
        print(f"{size} {args.init}")
        for name, values in d.items():
            print(f"  {name:22s} max {values.max():.3e}  last {values[-1]:.3e}")
        print(f"  loss paddle f64 first/last {reference['loss_f64'][0]:.6f} {reference['loss_f64'][-1]:.6f}")
    fig.tight_layout()
    print(save_figure(fig, args.output))


if __name__ == "__main__":
    main()
