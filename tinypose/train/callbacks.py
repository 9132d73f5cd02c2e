"""Training callbacks: a picture of the training curves, and the best checkpoint exported to safetensors."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from ..plotting import pyplot, save_figure

__all__ = ["ExportBestCheckpoint", "SaveOnInterrupt", "TrainingCurves", "checkpoint_paths", "plot_training_curves"]


def _scalar(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def plot_training_curves(
    steps: Sequence[Mapping[str, float | None]], epochs: Sequence[Mapping[str, float | None]], path: str | Path
) -> Path:
    """Loss per step (and per epoch), learning rate and validation AP per epoch, in one PNG (None: not logged)."""
    plt = pyplot()
    fig, (loss_axis, ap_axis) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    if steps:
        loss_axis.plot([s["step"] for s in steps], [s["loss"] for s in steps], lw=0.8, alpha=0.6, label="loss (step)")
    epoch_loss = [(e["step"], e["train_loss"]) for e in epochs if e.get("train_loss") is not None]
    if epoch_loss:
        loss_axis.plot(*zip(*epoch_loss), "o-", label="loss (epoch mean)")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("weighted MSE")
    loss_axis.set_yscale("log")
    loss_axis.set_title("Training loss")
    loss_axis.legend()
    lr = [(s["step"], s["lr"]) for s in steps if s.get("lr") is not None]
    if lr:
        lr_axis = loss_axis.twinx()
        lr_axis.plot(*zip(*lr), color="grey", lw=0.8, ls="--")
        lr_axis.set_ylabel("learning rate", color="grey")
    for name in ("AP", "AP50", "AP75"):
        points = [(e["epoch"], e[name]) for e in epochs if e.get(name) is not None]
        if points:
            ap_axis.plot(*zip(*points), "o-", label=f"val {name}")
    ap_axis.set_xlabel("epoch")
    ap_axis.set_ylabel("COCO keypoint AP")
    ap_axis.set_title("Validation")
    if ap_axis.lines:
        ap_axis.legend()
    else:
        ap_axis.text(0.5, 0.5, "no validation yet", ha="center", va="center", transform=ap_axis.transAxes)
    return save_figure(fig, path)


def checkpoint_paths(trainer: L.Trainer) -> dict[str, Any]:
    """``best_checkpoint``, ``best_AP`` and ``last_checkpoint`` of a run, from its ``ModelCheckpoint`` callbacks.

    The best is kept by the callback that monitors a metric; ``last.ckpt`` by the one without a monitor
    that saves ``last`` after every epoch (conf/callbacks/default.yaml), else by Lightning's ``save_last``.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    callbacks = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]  # type: ignore[attr-defined]
    best = next((c for c in callbacks if c.monitor is not None), None)
    every_epoch = next((c for c in callbacks if c.monitor is None and c.filename == "last"), None)
    last = every_epoch.best_model_path if every_epoch is not None else ""
    last = last or next((c.last_model_path for c in callbacks if c.last_model_path), "")
    score = best.best_model_score if best is not None else None
    return {
        "best_checkpoint": (best.best_model_path if best is not None else "") or None,
        "best_AP": float(score) if score is not None else None,
        "last_checkpoint": last or None,
    }


class TrainingCurves(Callback):
    """Keeps the loss/LR per logged step and the AP per epoch (in the checkpoint, so resumed runs
    continue the same curves) and redraws ``training_curves.png`` after every epoch."""

    def __init__(self, path: str = "training_curves.png") -> None:
        self.path = path
        self.steps: list[dict[str, float | None]] = []
        self.epochs: list[dict[str, float | None]] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        every = trainer.log_every_n_steps  # type: ignore[attr-defined]  # set by Lightning's logger connector
        if step % max(1, every) != 0 or outputs is None:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        self.steps.append({"step": int(step), "loss": float(loss), "lr": float(lr) if lr is not None else None})

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row = {
            "epoch": int(trainer.current_epoch),
            "step": int(trainer.global_step),
            "train_loss": _scalar(metrics, "train/loss_epoch"),
        }
        for name in ("AP", "AP50", "AP75"):
            row[name] = _scalar(metrics, f"val/{name}")
        self.epochs.append(row)
        self._draw(trainer)

    @rank_zero_only
    def _draw(self, trainer: L.Trainer) -> None:
        plot_training_curves(self.steps, self.epochs, Path(trainer.default_root_dir) / self.path)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "epochs": list(self.epochs)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.steps = list(state_dict.get("steps", []))
        self.epochs = list(state_dict.get("epochs", []))


class ExportBestCheckpoint(Callback):
    """At the end of training, writes the best checkpoint's (else the last's) model weights to
    ``best_model/best_model.safetensors``, readable by ``build_model``/``create_model`` like any weights."""

    def __init__(self, path: str = "best_model/best_model.safetensors") -> None:
        self.path = path
        self.exported: str | None = None

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from .checkpoint import export_checkpoint

        paths = checkpoint_paths(trainer)
        source = paths["best_checkpoint"] or paths["last_checkpoint"]
        if not source or not Path(source).is_file():
            return
        score = paths["best_AP"] if paths["best_checkpoint"] else None
        extra = {"best_AP": f"{score:.6f}"} if score is not None else {}
        target = Path(trainer.default_root_dir) / self.path
        self.exported = str(export_checkpoint(source, target, extra))
        rank_zero_info(f"best weights: {self.exported} (from {source})")


class SaveOnInterrupt(Callback):
    """Saves ``interrupted.ckpt`` when training stops on an exception (Ctrl-C, a crash), so that
    ``resume=auto`` continues from that very batch; the file is removed once a run finishes.

    A batch cut short has already updated the BatchNorm running statistics in its forward pass; they
    are put back to their values before that batch, so the resumed run repeats it exactly once.
    Unlike Lightning's ``OnExceptionCheckpoint`` this does not make a later ``fit`` resume on its own:
    resuming is always asked for explicitly.
    """

    def __init__(self, dirpath: str, filename: str = "interrupted") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self._buffers: dict[str, Any] | None = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._buffers = {name: buffer.detach().clone() for name, buffer in pl_module.named_buffers()}

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._buffers = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn != "fit" or trainer.global_step == 0:
            return
        if self._buffers is not None:  # stopped inside a batch: undo its BatchNorm statistics update
            for name, buffer in pl_module.named_buffers():
                buffer.copy_(self._buffers[name])
        trainer.save_checkpoint(self.path)
        rank_zero_info(f"training stopped ({type(exception).__name__}); saved {self.path}, continue with resume=auto")

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.path.is_file():
            self.path.unlink()
