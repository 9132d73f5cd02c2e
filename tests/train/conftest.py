"""Fixtures for the training/evaluation tests: the real weights (coco_dev comes from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_weights(openvino_dir: Path) -> dict[str, Path]:
    """The real PP-TinyPose weights (OpenVINO IR) per model name."""
    return {
        "PP-TinyPose_128x96": openvino_dir / "tinypose_128x96" / "model.xml",
        "PP-TinyPose_256x192": openvino_dir / "tinypose_256x192" / "model.xml",
    }
