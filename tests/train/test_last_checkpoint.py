"""checkpoints/last.ckpt is the end of the last finished epoch, also once val/AP stops improving, and
resume=auto continues from there (issue 9: Lightning's save_last only wrote it with a new best)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from tinypose.train.cli import run_train

REPO = Path(__file__).resolve().parents[2]
FAST = [
    "trainer.accelerator=cpu",
    "data.num_workers=0",
    "logger=csv",
    "~callbacks.progress_bar",
    "~callbacks.training_curves",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]


class _EpochsRun(L.Callback):
    """Records the epochs a run trains."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs.append(trainer.current_epoch)


def _flat_ap_run(coco_dev_paddlex: Path, weights: Path, output: Path, epochs: int) -> list[str]:
    """Overrides for a tiny run whose val/AP cannot change: learning rate 0 and BatchNorm frozen (BN-folded
    IR weights), so the model and hence the AP are the same after every epoch; only epoch 0 is a new best."""
    return [
        *FAST,
        f"dataset_dir={coco_dev_paddlex}",
        f"output_dir={output}",
        f"weights={weights}",
        "module.lr=0",
        "module.warmup_steps=0",
        "module.flip_test=false",
        "data.batch_size=2",
        "data.val_batch_size=4",
        "+trainer.limit_train_batches=1",
        "+trainer.limit_val_batches=1",
        f"trainer.max_epochs={epochs}",
    ]


@pytest.mark.slow
def test_last_checkpoint_follows_the_epochs_after_the_best(
    compose_config, coco_dev_paddlex: Path, real_weights: dict, tmp_path: Path
) -> None:
    output = tmp_path / "run"
    weights = real_weights["PP-TinyPose_128x96"]
    result = run_train(compose_config("train", _flat_ap_run(coco_dev_paddlex, weights, output, epochs=3)))
    checkpoints = output / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "best-epoch000-AP{:.4f}.ckpt".format(result["best_AP"]),
        "last.ckpt",
    ]
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, 3), "last.ckpt holds the end of the third epoch"
    saved = json.loads((output / "train_result.json").read_text())
    assert saved["last_checkpoint"] == str(checkpoints / "last.ckpt")
    assert Path(saved["best_checkpoint"]).name.startswith("best-epoch000")

    epochs = _EpochsRun()
    resumed = run_train(
        compose_config("train", [*_flat_ap_run(coco_dev_paddlex, weights, output, epochs=4), "resume=auto"]),
        extra_callbacks=[epochs],
    )
    assert resumed["resumed_from"] == str(checkpoints / "last.ckpt")
    assert epochs.epochs == [3] and resumed["global_step"] == 4, "resume=auto continues after epoch 2, not epoch 0"


@pytest.mark.slow
def test_resume_with_nothing_left_to_train_is_one_line(
    compose_config, coco_dev_paddlex: Path, real_weights: dict, tmp_path: Path
) -> None:
    """resume=auto with a max_epochs the checkpoint already reached: a one-line error before training starts,
    and no new interrupted.ckpt that would fail the same way."""
    output = tmp_path / "run"
    overrides = _flat_ap_run(coco_dev_paddlex, real_weights["PP-TinyPose_128x96"], output, epochs=2)
    run_train(compose_config("train", overrides))
    resume = ["trainer.max_epochs=1", "resume=auto"]
    done = subprocess.run(
        [sys.executable, "train.py", "mode=train", *[o for o in overrides if "max_epochs" not in o], *resume],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "already trained 2 epoch(s)" in errors[0] and "trainer.max_epochs greater than 2" in errors[0]
    assert sorted(p.name for p in (output / "checkpoints").iterdir() if p.name != "last.ckpt")[0].startswith("best")
    assert not (output / "checkpoints" / "interrupted.ckpt").exists()
