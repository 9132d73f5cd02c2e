"""train.py: --help, the composed configs and presets, check_dataset and evaluate modes end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate

from tinypose.data.layout import DatasetError
from tinypose.train.cli import run

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_modes_and_groups() -> None:
    out = subprocess.run(
        [sys.executable, "train.py", "--help"], check=False, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    for text in ("mode=check_dataset", "mode=evaluate", "resume=auto", "experiment:", "paddlex_finetune", "trainer:"):
        assert text in out.stdout


@pytest.mark.parametrize(
    "preset, model, lr, batch, epochs",
    [
        ("paddledet_tinypose_128x96", "PP-TinyPose_128x96", 0.008, 512, 420),
        ("paddledet_tinypose_256x192", "PP-TinyPose_256x192", 0.002, 128, 420),
        ("paddlex_finetune", "PP-TinyPose_128x96", 0.001, 16, 50),
    ],
)
def test_experiment_presets(compose_config, preset: str, model: str, lr: float, batch: int, epochs: int) -> None:
    cfg = compose_config("train", ["dataset_dir=/data", f"experiment={preset}"])
    assert (cfg.model.name, cfg.module.lr, cfg.data.batch_size, cfg.trainer.max_epochs) == (model, lr, batch, epochs)
    assert cfg.module.model_name == model and cfg.data.model_name == model
    assert list(cfg.module.milestones) == [380, 410] and cfg.module.warmup_start_factor == 0.001
    if preset.startswith("paddledet"):
        assert cfg.weights is None and cfg.trainer.strategy == "ddp" and cfg.module.warmup_steps == 500
    else:
        assert cfg.weights == "pretrained" and cfg.module.warmup_steps == 100


def test_every_setting_is_overridable_and_instantiates(compose_config, coco_dev_paddlex: Path) -> None:
    cfg = compose_config(
        "train",
        [
            f"dataset_dir={coco_dev_paddlex}",
            "model=PP-TinyPose_256x192",
            "data.batch_size=3",
            "module.lr=0.0005",
            "data.augment.rot_factor=10",
            "trainer=gpu",
        ],
    )
    datamodule = instantiate(cfg.data, _convert_="all")
    assert datamodule.spec.name == "PP-TinyPose_256x192" and datamodule.batch_size == 3
    assert datamodule.augment_config.rot_factor == 10
    assert cfg.trainer.precision == "16-mixed" and cfg.trainer.use_distributed_sampler is False


def test_check_dataset_mode_on_coco_dev(compose_config, coco_dev_paddlex: Path, tmp_path: Path) -> None:
    """PaddleX's result fields and meanings: image counts per split, drawn samples, histogram."""
    result = run(
        compose_config(
            "train",
            [
                "mode=check_dataset",
                f"dataset_dir={coco_dev_paddlex}",
                f"output_dir={tmp_path}",
                "check_dataset.sample_num=3",
            ],
        )
    )
    saved = json.loads((tmp_path / "check_dataset_result.json").read_text())
    assert saved == result
    assert (saved["done_flag"], saved["check_pass"]) == (True, True)
    assert saved["dataset_type"] == "KeypointTopDownCocoDetDataset" and saved["show_type"] == "image"
    assert saved["dataset_path"] == coco_dev_paddlex.name
    attributes = saved["attributes"]
    assert (attributes["num_classes"], attributes["train_samples"], attributes["val_samples"]) == (1, 22, 22)
    assert len(attributes["train_sample_paths"]) == len(attributes["val_sample_paths"]) == 3
    for relative in [*attributes["train_sample_paths"], saved["analysis"]["histogram"]]:
        assert (tmp_path / relative).stat().st_size > 1000


def test_evaluate_mode_writes_evaluate_result(
    compose_config, coco_dev_paddlex: Path, real_weights: dict, tmp_path: Path
) -> None:
    stats = run(
        compose_config(
            "train",
            [
                "mode=evaluate",
                f"dataset_dir={coco_dev_paddlex}",
                f"output_dir={tmp_path}",
                f"weights={real_weights['PP-TinyPose_128x96']}",
                "evaluate.flip=false",
                "evaluate.batch_size=65",
                "data.num_workers=0",
            ],
        )
    )
    report = json.loads((tmp_path / "evaluate_result.json").read_text())
    assert report["done_flag"] is True and report["metrics"] == stats
    assert list(stats) == ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
    assert stats["AP"] == pytest.approx(0.5712, abs=0.005)
    assert len(json.loads((tmp_path / "keypoints_results.json").read_text())) == 65


def test_cli_errors_are_one_clear_line(compose_config, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "train.py",
            "mode=check_dataset",
            f"dataset_dir={tmp_path / 'missing'}",
            f"output_dir={tmp_path}",
        ],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert f"{tmp_path / 'missing'}: dataset folder does not exist" in out.stderr and "Traceback" not in out.stderr
    with pytest.raises(DatasetError):
        run(
            compose_config(
                "train", ["mode=check_dataset", f"dataset_dir={tmp_path / 'missing'}", f"output_dir={tmp_path}"]
            )
        )


def test_training_refuses_to_overwrite_an_earlier_run(compose_config, coco_dev_paddlex: Path, tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"earlier run")
    with pytest.raises(ValueError, match="continue it with resume=auto"):
        run(compose_config("train", ["mode=train", f"dataset_dir={coco_dev_paddlex}", f"output_dir={tmp_path}"]))
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == b"earlier run"
