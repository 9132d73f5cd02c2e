"""Training on coco_dev: the loss falls and AP rises, fine-tuning keeps AP, an interrupted run resumes exactly.

Runs the real Hydra configs (composed with small overrides, CPU, num_workers=0), as users run them.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from tinypose import build_model, create_model
from tinypose.train.cli import run_train
from tinypose.train.datamodule import CocoKeypointDataModule
from tinypose.train.evaluation import KeypointEvaluator, predict_keypoints
from tinypose.train.module import TinyPoseLitModule, batchnorm_is_folded, init_paddle_weights, keypoint_mse_loss

FAST = [
    "trainer.accelerator=cpu",
    "data.num_workers=0",
    "logger=csv",
    "~callbacks.progress_bar",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
]


@pytest.fixture
def train_config(compose_config):
    """``train_config(overrides)``: conf/train.yaml for a fast CPU run (``FAST``) plus ``overrides``."""
    return lambda overrides: compose_config("train", [*FAST, *overrides])


def _train_ap(module: TinyPoseLitModule, datamodule: CocoKeypointDataModule) -> float:
    keypoints = predict_keypoints(
        module.model, datamodule.train_instances, module.spec, flip=False, batch_size=65, progress=False
    )
    evaluator = KeypointEvaluator(datamodule.val_data)
    evaluator.update(range(len(keypoints)), keypoints, datamodule.train_instances)
    return evaluator.compute()["AP"]


def test_training_lowers_the_loss_and_raises_ap_on_the_training_images(
    coco_dev_paddlex: Path, real_weights: dict
) -> None:
    """Perturbed weights (the real backbone, the heatmap head re-initialised as for training from scratch):
    20 steps of the recipe (augmentation, weighted MSE, Adam) bring the loss down and the AP up."""
    L.seed_everything(0)
    name = "PP-TinyPose_128x96"
    datamodule = CocoKeypointDataModule(str(coco_dev_paddlex), name, batch_size=16, num_workers=0)
    datamodule.setup("fit")
    module = TinyPoseLitModule(name, weights=str(real_weights[name]), lr=1e-3, warmup_steps=0, warmup_start_factor=1.0)
    assert module.norm_eval, "BN-folded IR weights train with frozen BatchNorm statistics"
    init_paddle_weights(module.model.final_conv)
    fixed = [datamodule.train_dataloader().dataset[(i, 1000 + i)] for i in range(0, 65, 4)]
    batch = {key: torch.stack([item[key] for item in fixed]) for key in fixed[0]}

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(keypoint_mse_loss(module.eval()(batch["image"]), batch["target"], batch["target_weight"]))

    loss_before, ap_before = fixed_loss(), _train_ap(module, datamodule)
    module.train()
    trainer = L.Trainer(
        max_steps=20,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    trainer.fit(module, datamodule=datamodule)
    loss_after, ap_after = fixed_loss(), _train_ap(module, datamodule)
    assert loss_after < 0.9 * loss_before, (loss_before, loss_after)
    assert ap_after > ap_before + 0.05, (ap_before, ap_after)


def test_finetuning_keeps_ap_and_exports_the_best_checkpoint(
    coco_dev_paddlex: Path, real_weights: dict, tmp_path: Path, train_config
) -> None:
    """`train.py mode=train weights=<real>` with a small LR for a few steps: validation (the COCO evaluation
    with flip) still gives the published AP; the best checkpoint is exported and loads as weights."""
    output = tmp_path / "run"
    cfg = train_config(
        [
            f"dataset_dir={coco_dev_paddlex}",
            f"output_dir={output}",
            f"weights={real_weights['PP-TinyPose_128x96']}",
            "module.lr=1e-4",
            "module.warmup_steps=0",
            "data.batch_size=16",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=5",
        ]
    )
    result = run_train(cfg)
    assert result["global_step"] == 5 and result["best_AP"] == pytest.approx(0.6106, abs=0.01)
    assert (output / "training_curves.png").stat().st_size > 10_000
    assert (output / "checkpoints" / "last.ckpt").is_file()
    saved = json.loads((output / "train_result.json").read_text())
    assert saved["best_model"] == str(output / "best_model" / "best_model.safetensors")

    assert batchnorm_is_folded(build_model("PP-TinyPose_128x96", pretrained=result["best_checkpoint"])), (
        "statistics stayed frozen, so fine-tuning again from this checkpoint also keeps BN in eval mode"
    )
    from_checkpoint = build_model("PP-TinyPose_128x96", pretrained=result["best_checkpoint"]).state_dict()
    from_safetensors = build_model("PP-TinyPose_128x96", pretrained=result["best_model"]).state_dict()
    for key, value in from_checkpoint.items():
        torch.testing.assert_close(value, from_safetensors[key], rtol=0, atol=0)
    image = str(coco_dev_paddlex / "images" / "000000000785.jpg")
    results = [
        next(create_model("PP-TinyPose_128x96", model_dir=source, device="cpu").predict(image)).json["res"]["kpts"]
        for source in (result["best_checkpoint"], result["best_model"])
    ]
    assert results[0] == results[1] and len(results[0]) == 1, "create_model reads the checkpoint and the export alike"
    original = build_model("PP-TinyPose_128x96", pretrained=real_weights["PP-TinyPose_128x96"]).state_dict()
    moved = max(float((from_checkpoint[k] - original[k]).abs().max()) for k in original if "weight" in k)
    assert 0 < moved < 0.05, "trained, gently"


class _Crash(L.Callback):
    """Stops a run with an error between the forward and the backward pass of a chosen step, as Ctrl-C
    or a crash in the middle of a batch would (BatchNorm statistics already updated, no optimizer step)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("simulated interruption")


def _final_state(output: Path) -> dict:
    return torch.load(output / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_interrupted_run_resumes_without_losing_anything(coco_dev_paddlex: Path, tmp_path: Path, train_config) -> None:
    """A run stopped in the middle of epoch 1 and resumed with resume=auto ends exactly where an
    uninterrupted run ends: same weights, optimizer moments, LR schedule, epoch and step counters."""
    common = [
        f"dataset_dir={coco_dev_paddlex}",
        "data.batch_size=4",
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=3",
        "+trainer.limit_val_batches=0",
        "callbacks.model_checkpoint.monitor=null",
        "module.warmup_steps=2",
    ]
    run_train(train_config([*common, f"output_dir={tmp_path / 'straight'}"]))

    interrupted = tmp_path / "interrupted"
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run_train(train_config([*common, f"output_dir={interrupted}"]), extra_callbacks=[_Crash(step=4)])
    saved = torch.load(interrupted / "checkpoints" / "interrupted.ckpt", map_location="cpu", weights_only=True)
    assert (saved["epoch"], saved["global_step"]) == (1, 4)
    result = run_train(train_config([*common, f"output_dir={interrupted}", "resume=auto"]))
    assert result["resumed_from"].endswith("interrupted.ckpt")

    straight, resumed = _final_state(tmp_path / "straight"), _final_state(interrupted)
    assert (resumed["epoch"], resumed["global_step"]) == (straight["epoch"], straight["global_step"]) == (1, 6)
    for key, value in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=0, msg=key)
    for a, b in zip(
        straight["optimizer_states"][0]["state"].values(), resumed["optimizer_states"][0]["state"].values()
    ):
        torch.testing.assert_close(a["exp_avg"], b["exp_avg"], rtol=0, atol=0)
        torch.testing.assert_close(a["exp_avg_sq"], b["exp_avg_sq"], rtol=0, atol=0)
    assert straight["lr_schedulers"][0]["last_epoch"] == resumed["lr_schedulers"][0]["last_epoch"] == 6
    np.testing.assert_equal(straight["lr_schedulers"][0]["_last_lr"], resumed["lr_schedulers"][0]["_last_lr"])


def test_batchnorm_folding_is_recognised(fixtures_dir: Path, real_weights: dict) -> None:
    """IR weights (BN folded) -> frozen BN; weights with real statistics or fresh init -> BN trains."""
    assert batchnorm_is_folded(build_model("PP-TinyPose_128x96", pretrained=real_weights["PP-TinyPose_128x96"]))
    assert not batchnorm_is_folded(
        build_model("PP-TinyPose_128x96", pretrained=fixtures_dir / "tinypose_128x96_random.pdparams")
    )
    assert not batchnorm_is_folded(init_paddle_weights(build_model("PP-TinyPose_128x96")))
