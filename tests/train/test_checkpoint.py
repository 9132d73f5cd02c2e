"""Lightning checkpoints as weights: read with weights_only=True, never executing what a file contains."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from tinypose import build_model
from tinypose.weights import WeightsError, detect_format


class _Payload:
    """Unpickling this would create a marker file: a stand-in for code hidden in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.ckpt"
    with path.open("wb") as file:
        pickle.dump({"state_dict": {}, "payload": _Payload(marker)}, file, protocol=2)
    with pytest.raises(WeightsError, match=r"evil\.ckpt: refused: the checkpoint holds pickled Python objects"):
        build_model("PP-TinyPose_128x96", pretrained=path)
    assert not marker.exists()


def test_checkpoint_errors_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "x.ckpt").touch()
    assert detect_format(tmp_path / "x.ckpt") == "lightning"
    torch.save({"epoch": 1}, tmp_path / "plain.ckpt")
    with pytest.raises(WeightsError, match=r"plain\.ckpt: not a Lightning checkpoint \(no 'state_dict'\)"):
        build_model("PP-TinyPose_128x96", pretrained=tmp_path / "plain.ckpt")
    torch.save({"state_dict": {"other.weight": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(WeightsError, match=r"other\.ckpt: the checkpoint holds no 'model\.\*' weights"):
        build_model("PP-TinyPose_128x96", pretrained=tmp_path / "other.ckpt")


def test_a_checkpoint_of_the_other_size_is_refused(tmp_path: Path) -> None:
    state = {f"model.{k}": v for k, v in build_model("PP-TinyPose_256x192").state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"model_name": "PP-TinyPose_256x192"}}, tmp_path / "a.ckpt")
    with pytest.raises(WeightsError, match="these weights are for PP-TinyPose_256x192, not PP-TinyPose_128x96"):
        build_model("PP-TinyPose_128x96", pretrained=tmp_path / "a.ckpt")
    assert build_model("PP-TinyPose_256x192", pretrained=tmp_path / "a.ckpt") is not None
