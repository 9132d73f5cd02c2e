"""Predictors on the random-weight PaddleX fixture model, shared by the predict tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinypose.predict import KeypointPredictor, create_model


@pytest.fixture(scope="session")
def random_weights(fixtures_dir: Path) -> Path:
    """The PaddleX inference model the e2e references were made with (random weights, 128x96)."""
    return fixtures_dir / "paddlex_infer_128x96"


@pytest.fixture(scope="session")
def predictors(random_weights: Path) -> dict[bool, KeypointPredictor]:
    """``{flip: predictor}`` for PP-TinyPose_128x96 on the CPU, both sharing one model."""
    plain = create_model("PP-TinyPose_128x96", model_dir=random_weights, flip=False, device="cpu")
    flipped = create_model("PP-TinyPose_128x96", flip=True, device="cpu", model=plain.model)
    return {False: plain, True: flipped}


@pytest.fixture(scope="session")
def e2e_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "paddlex_e2e"
