"""``train.py`` settings are read strictly and careless input ends in one clear line (issue 9).

Every boolean of every composable config (groups and presets) accepts exactly true/false, yes/no,
on/off, 1/0; a missing dataset_dir, an unreadable argument, a random ``.ckpt`` are one line each;
Lightning's log lines appear once; check_dataset and evaluate leave no empty train.log; the
coco_dev layout (one annotation file) is accepted with a note.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tinypose.options import OptionError
from tinypose.train.cli import normalize_booleans, run
from tinypose.weights.errors import WeightsError

REPO = Path(__file__).resolve().parents[2]
COMPOSITIONS = [
    [],
    ["experiment=paddlex_finetune"],
    ["experiment=paddledet_tinypose_128x96"],
    ["trainer=gpu", "logger=tensorboard"],
    ["trainer=cpu"],
]


def _train_py(*arguments: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def _one_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def _boolean_leaves(node, prefix: str = ""):
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _boolean_leaves(value, path + ".")
        elif isinstance(value, bool):
            yield path


@pytest.mark.parametrize("overrides", COMPOSITIONS, ids=lambda o: " ".join(o) or "default")
def test_every_boolean_setting_is_strict(compose_config, overrides: list[str]) -> None:
    """Each boolean leaf of the composed config, the Trainer's and callbacks' arguments included:
    'no'/'off'/'0' -> False, 'YES'/'on'/'1' -> True, 'maybe' -> an error naming the setting."""
    base = compose_config("train", ["dataset_dir=/data", *overrides])
    leaves = list(_boolean_leaves(OmegaConf.to_container(base)))
    assert "evaluate.flip" in leaves and "trainer.use_distributed_sampler" in leaves
    for path in leaves:
        for word, expected in [("no", False), ("off", False), ("0", False), ("YES", True), ("on", True), ("1", True)]:
            cfg = copy.deepcopy(base)
            OmegaConf.update(cfg, path, word if word != "0" else 0)  # Hydra reads flag=0 as the integer 0
            normalize_booleans(cfg)
            assert OmegaConf.select(cfg, path) is expected, (path, word)
        cfg = copy.deepcopy(base)
        OmegaConf.update(cfg, path, "maybe")
        with pytest.raises(OptionError, match=f"^{path}='maybe' is not a boolean"):
            normalize_booleans(cfg)


def test_lightning_arguments_that_take_other_words_keep_them(compose_config) -> None:
    cfg = compose_config(
        "train",
        [
            "dataset_dir=/data",
            "trainer.deterministic=warn",
            "callbacks.model_checkpoint.save_last=link",
            "module.norm_eval=auto",
            "+trainer.enable_progress_bar=off",
        ],
    )
    normalize_booleans(cfg)
    assert (cfg.trainer.deterministic, cfg.callbacks.model_checkpoint.save_last) == ("warn", "link")
    assert cfg.module.norm_eval == "auto" and cfg.trainer.enable_progress_bar is False
    with pytest.raises(OptionError, match="module.norm_eval='sometimes'"):
        normalize_booleans(compose_config("train", ["dataset_dir=/data", "module.norm_eval=sometimes"]))


def test_evaluate_flip_no_means_no_flip(compose_config, coco_dev_paddlex: Path, real_weights: dict, tmp_path) -> None:
    stats = run(
        compose_config(
            "train",
            [
                "mode=evaluate",
                f"dataset_dir={coco_dev_paddlex}",
                f"output_dir={tmp_path}",
                f"weights={real_weights['PP-TinyPose_128x96']}",
                "evaluate.flip=no",
                "evaluate.batch_size=65",
                "data.num_workers=0",
            ],
        )
    )
    assert stats["AP"] == pytest.approx(0.5712, abs=0.005), "the no-flip AP (0.6106 with flip)"
    assert json.loads((tmp_path / "evaluate_result.json").read_text())["evaluation"]["flip"] is False


def test_missing_dataset_dir_is_one_line(tmp_path: Path) -> None:
    line = _one_line(_train_py(f"output_dir={tmp_path}"))
    assert "no dataset given: pass dataset_dir=PATH" in line
    assert "mode=train" in line


def test_an_argument_hydra_cannot_read_is_one_line() -> None:
    done = _train_py("../shared/data/coco_dev")
    assert done.returncode != 0 and done.stderr.strip().count("\n") == 0
    assert "(the dataset_dir is given as dataset_dir=../shared/data/coco_dev)" in done.stderr


def test_random_files_as_checkpoints_are_refused_safely(tmp_path: Path) -> None:
    """Neither torch's advice to pass weights_only=False nor its 'file an issue' reaches the user."""
    import argparse
    import pickle
    import warnings

    import torch

    from tinypose.train.checkpoint import load_lightning_checkpoint

    files = {name: tmp_path / f"{name}.ckpt" for name in ("noise", "text", "empty", "pickle", "objects")}
    files["noise"].write_bytes(bytes(range(256)) * 4)
    files["text"].write_bytes(b"random bytes here" * 10)
    files["empty"].write_bytes(b"")
    files["pickle"].write_bytes(pickle.dumps({"args": argparse.Namespace(lr=1)}, protocol=4))
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=1)}, files["objects"])
    for name, path in files.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(WeightsError) as error:
                load_lightning_checkpoint(path)
        message = str(error.value)
        expected = "refused: the checkpoint holds pickled Python objects" if name == "objects" else "not a PyTorch"
        assert message.startswith(f"{path}: {expected}") and "\n" not in message, message
        shown = message + " ".join(str(w.message) for w in caught)
        assert "weights_only=False" not in shown and "issue" not in shown.lower(), shown


def test_a_bin_without_its_xml_names_the_bin(tmp_path: Path) -> None:
    from tinypose import build_model

    weights = tmp_path / "random.bin"
    weights.write_bytes(b"\0" * 64)
    with pytest.raises(WeightsError) as error:
        build_model("PP-TinyPose_128x96", pretrained=weights)
    assert str(error.value).startswith(f"{weights}: a .bin is read only as the tensors of an OpenVINO IR")
    assert "random.xml: " not in str(error.value)


@pytest.mark.slow
def test_check_dataset_on_coco_dev_as_it_is_logs_once_and_leaves_no_empty_log(tmp_path: Path) -> None:
    """The README's command on ../shared/data/coco_dev (one annotation file): passes with a note, the
    note appears once, and the only log file is a non-empty train.log."""
    coco_dev = REPO.parent / "shared" / "data" / "coco_dev"
    if not coco_dev.is_dir():
        pytest.skip(f"needs {coco_dev}")
    output = tmp_path / "check"
    done = _train_py(
        "mode=check_dataset", f"dataset_dir={coco_dev}", f"output_dir={output}", "check_dataset.sample_num=1"
    )
    assert done.returncode == 0, done.stderr
    note = "annotations/person_keypoints.json is the only annotation file"
    assert (done.stdout + done.stderr).count(note) == 1
    result = json.loads((output / "check_dataset_result.json").read_text())
    assert result["attributes"]["train_samples"] == result["attributes"]["val_samples"] == 22
    assert any(note in warning for warning in result["warnings"])
    assert note in (output / "train.log").read_text()


@pytest.mark.slow
def test_evaluate_leaves_no_empty_train_log_and_lightning_logs_once(
    coco_dev_paddlex: Path, real_weights: dict, tmp_path: Path
) -> None:
    evaluated = tmp_path / "evaluate"
    done = _train_py(
        "mode=evaluate",
        f"dataset_dir={coco_dev_paddlex}",
        f"output_dir={evaluated}",
        f"weights={real_weights['PP-TinyPose_128x96']}",
        "evaluate.flip=false",
        "evaluate.batch_size=65",
        "data.num_workers=0",
    )
    assert done.returncode == 0, done.stderr
    assert not (evaluated / "train.log").exists(), "nothing was logged, so no empty train.log"

    trained = tmp_path / "train"
    done = _train_py(
        "mode=train",
        f"dataset_dir={coco_dev_paddlex}",
        f"output_dir={trained}",
        f"weights={real_weights['PP-TinyPose_128x96']}",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=1",
        "+trainer.limit_val_batches=1",
        "data.batch_size=2",
        "data.num_workers=0",
        "~callbacks.progress_bar",
        "+trainer.enable_progress_bar=false",
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert output.count("Seed set to 0") == 1, output
    assert "Seed set to 0" in (trained / "train.log").read_text()
