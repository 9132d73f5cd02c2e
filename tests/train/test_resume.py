"""Exact resume from any checkpoint (issue 13): a mid-epoch ``every_n_train_steps`` checkpoint, an
epoch-end ``last.ckpt`` and Ctrl-C each continue bit-identically to the uninterrupted run: parameters,
Adam moments, LR schedule, counters and the data order (the batches seen after the resume)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from tinypose.train.cli import run_train

FAST = [
    "trainer.accelerator=cpu",
    "data.num_workers=0",
    "logger=csv",
    "~callbacks.progress_bar",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
]


class BatchLog(L.Callback):
    """Records (global step, LR, sha1 of the batch) for every training batch: the data order and the LR."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, float, str]] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        digest = hashlib.sha1(batch["image"].numpy().tobytes()).hexdigest()[:12]
        self.rows.append((trainer.global_step, trainer.optimizers[0].param_groups[0]["lr"], digest))


class Interrupt(L.Callback):
    """Raises ``exception`` between the forward and the backward pass of step ``step`` (a Ctrl-C or a
    crash inside a batch: BatchNorm statistics already updated, no optimizer step)."""

    def __init__(self, step: int, exception: type[BaseException]) -> None:
        self.step, self.exception = step, exception

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if trainer.global_step == self.step:
            raise self.exception("interrupted by the test")


@pytest.fixture
def common(coco_dev_paddlex: Path, compose_config):
    """3 epochs of 3 steps (batch 4), warmup over 5 steps and x0.1 after epoch 2, so the LR moves at
    every step around each interruption."""

    def config(output: Path, *extra: str):
        return compose_config(
            "train",
            [
                *FAST,
                f"dataset_dir={coco_dev_paddlex}",
                f"output_dir={output}",
                "data.batch_size=4",
                "trainer.max_epochs=3",
                "+trainer.limit_train_batches=3",
                "+trainer.limit_val_batches=0",
                "callbacks.model_checkpoint.monitor=null",
                "module.warmup_steps=5",
                "module.milestones=[2]",
                *extra,
            ],
        )

    return config


def assert_same_end(straight: Path, resumed: Path) -> None:
    a = torch.load(straight / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (2, 9)
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=0, msg=key)
    for x, y in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        torch.testing.assert_close(x["exp_avg"], y["exp_avg"], rtol=0, atol=0)
        torch.testing.assert_close(x["exp_avg_sq"], y["exp_avg_sq"], rtol=0, atol=0)
        torch.testing.assert_close(x["step"], y["step"], rtol=0, atol=0)
    assert a["lr_schedulers"][0]["last_epoch"] == b["lr_schedulers"][0]["last_epoch"] == 9
    np.testing.assert_equal(a["lr_schedulers"][0]["_last_lr"], b["lr_schedulers"][0]["_last_lr"])


@pytest.fixture
def straight(common, tmp_path: Path) -> tuple[Path, list]:
    """The uninterrupted run, with a checkpoint every 2 steps (steps 2, 4, 6, 8: 2 and 8 inside epochs)."""
    log = BatchLog()
    steps = ModelCheckpoint(
        dirpath=tmp_path / "steps",
        filename="step{step}",
        auto_insert_metric_name=False,
        every_n_train_steps=2,
        save_top_k=-1,
        monitor=None,
    )
    run_train(common(tmp_path / "straight"), extra_callbacks=[log, steps])
    return tmp_path / "straight", log.rows


@pytest.mark.slow
def test_resume_from_a_mid_epoch_checkpoint(straight, common, tmp_path: Path) -> None:
    """``every_n_train_steps`` checkpoints (step 2 and step 8, inside epochs 0 and 2; step 4 inside
    epoch 1): each resumes on the uninterrupted run's LR and batches and ends on its weights."""
    output, rows = straight
    for step in (2, 4):
        resumed = tmp_path / f"resumed{step}"
        log = BatchLog()
        checkpoint = tmp_path / "steps" / f"step{step}.ckpt"
        assert checkpoint.is_file(), sorted(p.name for p in (tmp_path / "steps").iterdir())
        run_train(common(resumed, f"resume={checkpoint}"), extra_callbacks=[log])
        assert log.rows == rows[step:], "same LR and the same batches, in order, from the resumed step on"
        assert_same_end(output, resumed)


@pytest.mark.slow
def test_resume_from_an_epoch_end(straight, common, tmp_path: Path) -> None:
    """A run stopped after epoch 1 (``last.ckpt``) and resumed with ``resume=auto`` ends where the
    uninterrupted run ends, over the same batches."""
    output, rows = straight
    resumed = tmp_path / "resumed"
    run_train(common(resumed, "trainer.max_epochs=1"))
    log = BatchLog()
    run_train(common(resumed, "resume=auto"), extra_callbacks=[log])
    assert log.rows == rows[3:]
    assert_same_end(output, resumed)


@pytest.mark.slow
def test_resume_after_ctrl_c(straight, common, tmp_path: Path) -> None:
    """KeyboardInterrupt inside step 4 (epoch 1): ``interrupted.ckpt`` at that batch, BatchNorm statistics
    of the half-done batch rolled back; ``resume=auto`` repeats that batch once and ends identically."""
    output, rows = straight
    resumed = tmp_path / "resumed"
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        run_train(common(resumed), extra_callbacks=[Interrupt(4, KeyboardInterrupt)])
    saved = torch.load(resumed / "checkpoints" / "interrupted.ckpt", map_location="cpu", weights_only=True)
    assert (saved["epoch"], saved["global_step"]) == (1, 4)
    log = BatchLog()
    run_train(common(resumed, "resume=auto"), extra_callbacks=[log])
    assert log.rows == rows[4:]
    assert_same_end(output, resumed)
