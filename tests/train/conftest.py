"""Fixtures for the training/evaluation tests: the real weights (coco_dev comes from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture
def one_thread():
    """One intra-op thread for CPU-heavy tests: on 2 cores shared with other jobs, two OpenMP threads
    stall each other (measured 10x slower than one); restores the previous setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def real_weights(openvino_dir: Path) -> dict[str, Path]:
    """The real PP-TinyPose weights (OpenVINO IR) per model name."""
    return {
        "PP-TinyPose_128x96": openvino_dir / "tinypose_128x96" / "model.xml",
        "PP-TinyPose_256x192": openvino_dir / "tinypose_256x192" / "model.xml",
    }
