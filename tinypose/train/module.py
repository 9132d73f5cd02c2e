"""LightningModule: the PP-TinyPose training recipe and PaddleDetection's evaluation as validation.

Loss, optimizer and schedule follow ``configs/keypoint/tiny_pose/tinypose_*.yml``:
``KeyPointMSELoss(use_target_weight=True)`` (per-joint weighted MSE, averaged over joints), Adam
with Paddle's coupled ``L2Decay`` (factor 0 in the recipes; BatchNorm parameters have their own,
``norm_decay`` 0), ``LinearWarmup`` (from ``start_factor`` x LR) then ``PiecewiseDecay`` at epoch
milestones, the LR a function of the optimizer step count (so any checkpoint resumes on the same
LR). BatchNorm updates its statistics as Paddle's (:class:`tinypose.models.litehrnet.BatchNorm2d`).
The whole loop is checked step by step against PaddleDetection's Trainer (tests/train/test_parity.py). Validation runs :mod:`tinypose.train.evaluation` on the datamodule's persons and logs the
ten COCO stats as ``val/AP`` ... ``val/ARl``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import torch
from lightning.fabric.utilities.data import AttributeDict
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn

from ..codec import HeatmapCodec
from ..models.tinypose import TinyPose, build_model, forward_with_flip, get_spec
from .evaluation import KeypointEvaluator, decode_batch, normalize_batch

__all__ = ["TinyPoseLitModule", "WarmupPiecewise", "batchnorm_is_folded", "init_paddle_weights", "keypoint_mse_loss"]


def keypoint_mse_loss(heatmaps: Tensor, target: Tensor, target_weight: Tensor) -> Tensor:
    """``KeyPointMSELoss``: mean over joints of the MSE of weight-masked heatmaps ([N,K,H,W], weights [N,K,1]).

    Computed in float32 at least (half-precision heatmaps under AMP are widened), float64 for a float64 model.
    """
    dtype = torch.promote_types(heatmaps.dtype, torch.float32)
    weight = target_weight.reshape(*target_weight.shape[:2], 1, 1).to(dtype)
    return ((heatmaps.to(dtype) * weight - target.to(dtype) * weight) ** 2).mean()


@dataclass
class WarmupPiecewise:
    """LR factor per optimizer step: PaddleDetection's ``LinearWarmup`` + ``PiecewiseDecay``.

    Steps ``0..warmup_steps`` ramp ``start_factor -> 1`` linearly; from ``boundaries[i]`` (steps) on the
    factor is ``factors[i]``. Upstream turns a scalar ``gamma`` into ``[gamma, gamma/10, ...]``.
    """

    warmup_steps: int
    start_factor: float
    boundaries: list[int]
    factors: list[float]

    def __call__(self, step: int) -> float:
        warmup = max(self.warmup_steps, 1)  # upstream warms up for at least one step
        if step < warmup:
            alpha = step / warmup
            return self.start_factor * (1 - alpha) + alpha
        for boundary, factor in zip(reversed(self.boundaries), reversed(self.factors)):
            if step >= boundary:
                return factor
        return 1.0


def init_paddle_weights(model: nn.Module) -> nn.Module:
    """PaddleDetection's initialisation for training from scratch: convs N(0, 0.001), zero bias, BN (1, 0)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, 0.0, 0.001)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def batchnorm_is_folded(model: nn.Module) -> bool:
    """True when no BatchNorm has real statistics: weights from a BN-folded export (OpenVINO IR), loaded
    as BN = identity + shift (running mean 0, running variance 1 - eps), or a model fine-tuned from them
    with frozen statistics. Such weights must keep BN in eval mode while training.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return False
    for norm in norms:
        if norm.running_mean is None or norm.running_var is None:  # no statistics at all
            return False
        folded_var = torch.full_like(norm.running_var, 1.0 - norm.eps)  # what the loader writes, bit for bit
        if not (torch.all(norm.running_mean == 0) and torch.equal(norm.running_var, folded_var)):
            return False
    return True


class TinyPoseLitModule(L.LightningModule):
    """PP-TinyPose training (recipe above) with COCO keypoint AP as validation.

    ``weights``: a path in any supported format (``build_model(name, pretrained=path)``) or ``None``
    to train from scratch with PaddleDetection's initialisation. ``norm_eval``: keep BatchNorm
    statistics frozen (``"auto"``: when the weights are BN-folded; ``False`` trains them as
    PaddleDetection does). ``weight_decay``: Paddle's ``L2Decay`` factor (added to the gradient,
    not AdamW's decoupled decay); ``norm_weight_decay`` the same for BatchNorm weights and biases
    (LiteHRNet's ``norm_decay``).
    """

    def __init__(
        self,
        model_name: str = "PP-TinyPose_128x96",
        weights: str | None = None,
        lr: float = 0.008,
        warmup_steps: int = 500,
        warmup_start_factor: float = 0.001,
        milestones: Sequence[int] = (380, 410),
        gamma: float | Sequence[float] = 0.1,
        weight_decay: float = 0.0,
        norm_weight_decay: float = 0.0,
        loss_scale: float = 1.0,
        norm_eval: bool | str = "auto",
        flip_test: bool = True,
        in_vis_thre: float = 0.2,
        oks_thre: float = 0.9,
    ) -> None:
        super().__init__()
        milestones = [int(m) for m in milestones]
        gamma = float(gamma) if isinstance(gamma, (int, float)) else [float(g) for g in gamma]
        self.save_hyperparameters(
            {
                "model_name": get_spec(model_name).name,
                "weights": str(weights) if weights else None,
                "lr": float(lr),
                "warmup_steps": int(warmup_steps),
                "warmup_start_factor": float(warmup_start_factor),
                "milestones": milestones,
                "gamma": gamma,
                "weight_decay": float(weight_decay),
                "norm_weight_decay": float(norm_weight_decay),
                "loss_scale": float(loss_scale),
                "norm_eval": norm_eval,
                "flip_test": bool(flip_test),
                "in_vis_thre": float(in_vis_thre),
                "oks_thre": float(oks_thre),
            }
        )
        self.spec = get_spec(model_name)
        self.model: TinyPose = build_model(self.spec.name, pretrained=weights if weights else False)
        if not weights:
            init_paddle_weights(self.model)
        self.norm_eval = batchnorm_is_folded(self.model) if norm_eval == "auto" else bool(norm_eval)
        if self.norm_eval:  # frozen BatchNorm layers are in eval mode on purpose
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
        self.codec = HeatmapCodec.from_spec(self.spec)
        self.evaluator: KeypointEvaluator | None = None
        self.train()  # build_model returns eval mode; Lightning keeps the modes it finds

    def on_train_epoch_start(self) -> None:
        self.train()

    def forward(self, images: Tensor) -> Tensor:
        """Heatmaps of a uint8 RGB batch [N,3,H,W] (normalized here) or an already normalized float batch."""
        if images.dtype == torch.uint8:
            images = normalize_batch(images, self.spec.mean, self.spec.std)
        return self.model(images)

    def train(self, mode: bool = True) -> TinyPoseLitModule:
        super().train(mode)
        if mode and self.norm_eval:
            for module in self.model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        heatmaps = self(batch["image"])
        loss = keypoint_mse_loss(heatmaps, batch["target"], batch["target_weight"]) * self.hparams["loss_scale"]
        size = batch["image"].shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
        optimizer = self.optimizers()
        lr = (optimizer[0] if isinstance(optimizer, list) else optimizer).param_groups[0]["lr"]
        self.log("train/lr", lr, on_step=True, on_epoch=False, batch_size=size)
        return loss

    def on_validation_epoch_start(self) -> None:
        datamodule = self.trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning at fit time
        self.evaluator = KeypointEvaluator(datamodule.val_data, self.hparams["in_vis_thre"], self.hparams["oks_thre"])

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        images = normalize_batch(batch["image"], self.spec.mean, self.spec.std)
        with torch.autocast(self.device.type, enabled=False):  # float32, as the evaluation, also under AMP
            heatmaps, flipped = forward_with_flip(self.model, images, self.hparams["flip_test"])
        instances = self.trainer.datamodule.val_instances  # type: ignore[attr-defined]  # as above
        indices = batch["index"].cpu().numpy()
        keypoints = decode_batch(self.codec, heatmaps, flipped, [instances[i] for i in indices])
        assert self.evaluator is not None
        self.evaluator.update(indices, keypoints, instances)

    def on_validation_epoch_end(self) -> None:
        assert self.evaluator is not None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, self.evaluator.parts)
            for part in gathered:
                self.evaluator.merge(part)
        stats = self.evaluator.compute()
        for name, value in stats.items():
            self.log(f"val/{name}", value, prog_bar=name == "AP", sync_dist=True)  # same value on every rank
        self.evaluator = None

    def _steps_per_epoch(self) -> int:
        """Optimizer steps per epoch, for milestones given in epochs.

        Counted from the datamodule's loader: ``trainer.estimated_stepping_batches`` would set up the
        trainer's own train loader before a checkpoint's loader state is restored (breaking resume).
        """
        trainer = self.trainer
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None:
            epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
            return max(1, math.ceil(trainer.estimated_stepping_batches / epochs))
        batches = len(datamodule.train_dataloader())
        limit = trainer.limit_train_batches
        batches = min(batches, int(limit)) if isinstance(limit, int) else int(batches * limit)
        return max(1, math.ceil(batches / trainer.accumulate_grad_batches))

    def param_groups(self) -> list[dict]:
        """Adam's parameter groups: BatchNorm weights/biases with ``norm_weight_decay``, the rest with
        ``weight_decay`` (PaddleDetection's per-parameter ``L2Decay``: the BN ``ParamAttr`` overrides the
        optimizer's regularizer)."""
        norm_ids = {id(p) for m in self.model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
        norm = [p for p in self.model.parameters() if id(p) in norm_ids]
        other = [p for p in self.model.parameters() if id(p) not in norm_ids]
        hp = self.hparams
        return [
            {"params": other, "weight_decay": hp["weight_decay"]},
            {"params": norm, "weight_decay": hp.get("norm_weight_decay", 0.0)},
        ]

    def lr_schedule(self, steps_per_epoch: int) -> WarmupPiecewise:
        """The LR factor per optimizer step for ``steps_per_epoch`` (milestones are in epochs)."""
        hp = AttributeDict(self.hparams)
        gamma = hp.gamma
        factors = [gamma / 10**i for i in range(len(hp.milestones))] if isinstance(gamma, float) else list(gamma)
        return WarmupPiecewise(
            hp.warmup_steps, hp.warmup_start_factor, [m * steps_per_epoch for m in hp.milestones], factors
        )

    def build_optimizer(self, steps_per_epoch: int) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
        """Adam over :meth:`param_groups` and its per-step LR schedule (what ``configure_optimizers`` returns)."""
        optimizer = torch.optim.Adam(self.param_groups(), lr=self.hparams["lr"])
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_schedule(steps_per_epoch))

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        optimizer, scheduler = self.build_optimizer(self._steps_per_epoch())
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    def on_train_start(self) -> None:
        """Set the LR from the optimizer step count. A checkpoint written inside an epoch
        (``every_n_train_steps``) holds the scheduler as it was before that step's scheduler update
        (Lightning steps it after ``on_train_batch_end``), so restoring it alone resumed one LR step behind."""
        sync_schedulers(self.trainer)


def sync_schedulers(trainer: L.Trainer) -> None:
    """Put every ``LambdaLR`` at ``trainer.global_step`` and its optimizer's LR at that step's value."""
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR) or config.interval != "step":
            continue
        step = int(trainer.global_step)
        if scheduler.last_epoch == step:
            continue
        scheduler.last_epoch = step
        values = [base * fn(step) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
        for group, value in zip(scheduler.optimizer.param_groups, values):
            group["lr"] = value
        scheduler._last_lr = values  # what get_last_lr() reports
