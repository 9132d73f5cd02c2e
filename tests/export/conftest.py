"""Fixtures of the export tests: random-weight fixture models, Paddle's references, batches of 1 and 7."""

from __future__ import annotations

import numpy as np
import pytest

import tinypose

SIZES = ["128x96", "256x192"]


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory):
    """One export cache for the session: a backend of the same weights reuses the ONNX file."""
    return tmp_path_factory.mktemp("export_cache")


@pytest.fixture(scope="session")
def fixture_models(fixtures_dir) -> dict[str, tinypose.TinyPose]:
    """The random-weight checkpoints PaddleDetection's fixtures were made with, per size."""
    return {
        size: tinypose.build_model(size, pretrained=fixtures_dir / f"tinypose_{size}_random.pdparams") for size in SIZES
    }


@pytest.fixture(scope="session")
def paddle_batches(fixtures_dir) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Per size, per batch size (1 and 7): (input, PaddleDetection's heatmaps), from the stored inputs
    (random, random, a real photo and its mirror)."""
    out: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for size in SIZES:
        reference = np.load(fixtures_dir / f"forward_{size}.npz")
        inputs = np.concatenate([reference[f"input{i}"] for i in range(3)])
        heatmaps = np.concatenate([reference[f"input{i}_heatmap"] for i in range(3)])
        order = [4, 0, 1, 2, 3, 4, 5]  # 7 rows: the photo first, one row repeated
        out[size] = {1: (inputs[4:5], heatmaps[4:5]), 7: (inputs[order], heatmaps[order])}
    return out
