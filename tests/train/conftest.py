"""Fixtures for the training/evaluation tests: coco_dev in PaddleX's layout, real weights, upstream references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tinypose.data.layout import make_paddlex_layout

UPSTREAM = Path(__file__).parents[1] / "data" / "upstream" / "reference_coco_dev.json"


@pytest.fixture(scope="session")
def coco_dev(data_dir: Path) -> Path:
    """../shared/data/coco_dev: 22 real COCO images with one annotation file."""
    return data_dir / "coco_dev"


@pytest.fixture(scope="session")
def coco_dev_paddlex(coco_dev: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """coco_dev in PaddleX's layout (images/ symlinked; the one annotation file serves train and val)."""
    root = tmp_path_factory.mktemp("coco_dev_paddlex")
    annotations = coco_dev / "annotations" / "person_keypoints.json"
    make_paddlex_layout(root, coco_dev / "images", {"train": annotations, "val": annotations})
    return root


@pytest.fixture(scope="session")
def upstream_reference() -> dict:
    """What PaddleDetection's own code produced on coco_dev (tests/data/upstream/make_reference.py)."""
    return json.loads(UPSTREAM.read_text())


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
