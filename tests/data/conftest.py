"""Fixtures for the data tests: coco_dev laid out as PaddleX expects, small broken copies, upstream references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinypose.data.layout import make_paddlex_layout

UPSTREAM = Path(__file__).parent / "upstream" / "reference_coco_dev.json"


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
