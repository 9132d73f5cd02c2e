"""Shared test settings and fixtures: torch's thread count per test folder (the one place it is set),
where ../shared lives (skipping with a clear message when it is absent), the real Hydra configs
(``compose_config``), the coco_dev dataset used by the data, training and evaluation tests, and the
random-weight models PaddleDetection's forward fixtures were made with (export and runtime tests)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Spinning OpenMP workers make torch ~5x slower on a loaded 2-core machine; must precede `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

import tinypose

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
UPSTREAM_REFERENCE = TESTS / "data" / "upstream" / "reference_coco_dev.json"
FIXTURE_SIZES = ("128x96", "256x192")
"""The model sizes of PaddleDetection's forward fixtures."""
SHARED = Path(os.environ.get("TINYPOSE_SHARED", REPO.parent / "shared")).resolve()

DEFAULT_THREADS = min(2, torch.get_num_threads())
"""torch intra-op threads for the tests."""
ONE_THREAD_SUITES = frozenset({"detect", "pipeline", "predict", "scale", "serve", "train"})
"""Test folders that run one torch thread: many small forwards (or training steps) where two OpenMP
threads on a busy 2-core machine stall each other (measured ~6x slower for a PicoDet forward, ~10x
for training steps)."""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Set torch's thread count for the test's folder before its fixtures are set up, so that module-
    and session-scoped fixtures first built by that test run with the same setting as the test."""
    suite = item.path.resolve().relative_to(TESTS).parts[0]
    threads = 1 if suite in ONE_THREAD_SUITES else DEFAULT_THREADS
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def shared_path(*parts: str) -> Path:
    """A path under ../shared (or $TINYPOSE_SHARED); skips the test when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"needs {path} (the read-only ../shared folder with fixtures, weights and data; "
            "set TINYPOSE_SHARED to point elsewhere)"
        )
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
def compose_config() -> Callable[..., Any]:
    """``compose_config(name, overrides)``: ``conf/<name>.yaml`` composed with Hydra overrides, as
    ``train.py`` / ``infer.py`` compose it (lightning-hydra-template style: tests run the real configs)."""
    from hydra import compose, initialize_config_dir

    def compose_config(name: str, overrides: Sequence[str] = ()) -> Any:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            return compose(config_name=name, overrides=list(overrides))

    return compose_config


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


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory):
    """One export cache for the session: a backend of the same weights reuses the ONNX file."""
    return tmp_path_factory.mktemp("export_cache")


@pytest.fixture(scope="session")
def fixture_models(fixtures_dir) -> dict[str, tinypose.TinyPose]:
    """The random-weight checkpoints PaddleDetection's fixtures were made with, per size."""
    return {
        size: tinypose.build_model(size, pretrained=fixtures_dir / f"tinypose_{size}_random.pdparams")
        for size in FIXTURE_SIZES
    }


@pytest.fixture(scope="session")
def paddle_batches(fixtures_dir) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Per size, per batch size (1 and 7): (input, PaddleDetection's heatmaps), from the stored inputs
    (random, random, a real photo and its mirror)."""
    out: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for size in FIXTURE_SIZES:
        reference = np.load(fixtures_dir / f"forward_{size}.npz")
        inputs = np.concatenate([reference[f"input{i}"] for i in range(3)])
        heatmaps = np.concatenate([reference[f"input{i}_heatmap"] for i in range(3)])
        order = [4, 0, 1, 2, 3, 4, 5]  # 7 rows: the photo first, one row repeated
        out[size] = {1: (inputs[4:5], heatmaps[4:5]), 7: (inputs[order], heatmaps[order])}
    return out
