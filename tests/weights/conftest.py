"""Fixtures of the weights tests: Paddle-format checkpoints written at test time, and the legacy
PaddleDetection export rebuilt from the committed program + the fixture weights."""

from __future__ import annotations

import gzip
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tinypose.models import TinyPose, get_spec
from tinypose.weights import read_pdparams
from tinypose.weights.mapping import static_name_table, torch_to_paddle_name
from tinypose.weights.paddle_inference import read_program, write_pdiparams

DATA = Path(__file__).parent / "data"
LEGACY_PROGRAM = DATA / "paddledet_legacy_128x96"


def paddle_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """A TinyPose state dict under PaddleDetection's structured names, as ``paddle.save`` stores it."""
    return {
        torch_to_paddle_name(name): value.numpy().copy()
        for name, value in model.state_dict().items()
        if not name.endswith("num_batches_tracked")
    }


def write_pdparams(path: Path, arrays: dict[str, object]) -> Path:
    """Write a ``.pdparams`` the way ``paddle.save(state_dict)`` does (pickle protocol 4 of arrays)."""
    with path.open("wb") as file:
        pickle.dump(dict(arrays), file, protocol=4)
    return path


@pytest.fixture(scope="session")
def random_model() -> TinyPose:
    """A TinyPose with seeded random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = TinyPose(get_spec("PP-TinyPose_128x96"))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.2)
            module.running_mean.normal_(0, 0.3)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="session")
def random_pdparams(tmp_path_factory, random_model) -> Path:
    """``random_model`` as a Paddle ``.pdparams`` (no file name hint about the input size)."""
    return write_pdparams(tmp_path_factory.mktemp("pdparams") / "checkpoint.pdparams", paddle_state(random_model))


@pytest.fixture(scope="session")
def legacy_export(tmp_path_factory, fixtures_dir) -> Path:
    """PaddleDetection's legacy export of the random 128x96 fixture: the committed real
    ``model.pdmodel`` + ``infer_cfg.yml``, and ``model.pdiparams`` rebuilt from the fixture .pdparams
    in save_combine layout (checked against Paddle's own bytes in test_paddle_inference)."""
    folder = tmp_path_factory.mktemp("legacy") / "tinypose_128x96"
    folder.mkdir()
    with gzip.open(LEGACY_PROGRAM / "model.pdmodel.gz") as packed:
        (folder / "model.pdmodel").write_bytes(packed.read())
    shutil.copy(LEGACY_PROGRAM / "infer_cfg.yml", folder / "infer_cfg.yml")
    program = read_program(folder / "model.pdmodel")
    stripped = {name: re.sub(r"_deepcopy_\d+$", "", name) for name in program.parameters}
    table = static_name_table(TinyPose(get_spec("128x96")), list(stripped.values()), "test")
    checkpoint = read_pdparams(fixtures_dir / "tinypose_128x96_random.pdparams")
    write_pdiparams(
        folder / "model.pdiparams",
        {name: checkpoint[torch_to_paddle_name(table[static])] for name, static in stripped.items()},
    )
    return folder


@pytest.fixture
def make_pdparams(tmp_path, random_model):
    """``make(edit=None, name=...)``: ``random_model`` as a .pdparams, optionally edited first
    (``edit(arrays)`` may add, drop or reshape entries)."""

    def make(edit=None, name: str = "checkpoint.pdparams") -> Path:
        arrays = paddle_state(random_model)
        if edit is not None:
            edit(arrays)
        return write_pdparams(tmp_path / name, arrays)

    return make
