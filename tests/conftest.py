"""Shared test fixtures: where ../shared lives, and skips with a clear message when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Spinning OpenMP workers make torch ~5x slower on a loaded 2-core machine; must precede `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYPOSE_SHARED", REPO.parent / "shared")).resolve()

torch.set_num_threads(min(2, torch.get_num_threads()))


def shared_path(*parts: str) -> Path:
    """A path under ../shared (or $TINYPOSE_SHARED); skips the test when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the read-only ../shared folder with fixtures, weights and data; "
                    "set TINYPOSE_SHARED to point elsewhere)")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """../shared/fixtures/paddle: parity fixtures made with the real PaddlePaddle code."""
    return shared_path("fixtures", "paddle")


@pytest.fixture(scope="session")
def openvino_dir() -> Path:
    """../shared/weights/openvino: the real PP-TinyPose / PP-PicoDet weights as OpenVINO IR."""
    return shared_path("weights", "openvino")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data: COCO dev images, photos and videos."""
    return shared_path("data")
