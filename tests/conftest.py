"""Shared test fixtures: where ../shared lives (skipping with a clear message when it is absent), and
the coco_dev dataset used by the data, training and evaluation tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Spinning OpenMP workers make torch ~5x slower on a loaded 2-core machine; must precede `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
UPSTREAM_REFERENCE = Path(__file__).parent / "data" / "upstream" / "reference_coco_dev.json"
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


@pytest.fixture(scope="session")
def coco_dev(data_dir: Path) -> Path:
    """../shared/data/coco_dev: 22 real COCO images with one annotation file."""
    return data_dir / "coco_dev"


@pytest.fixture(scope="session")
def coco_dev_paddlex(coco_dev: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """coco_dev in PaddleX's layout (images/ symlinked; the one annotation file serves train and val)."""
    from tinypose.data.layout import make_paddlex_layout

    root = tmp_path_factory.mktemp("coco_dev_paddlex")
    annotations = coco_dev / "annotations" / "person_keypoints.json"
    make_paddlex_layout(root, coco_dev / "images", {"train": annotations, "val": annotations})
    return root


@pytest.fixture(scope="session")
def upstream_reference() -> dict:
    """What PaddleDetection's own code produced on coco_dev (tests/data/upstream/make_reference.py)."""
    return json.loads(UPSTREAM_REFERENCE.read_text())
