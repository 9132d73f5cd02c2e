"""The ``executorch`` runtime (optional extra): the ``.pte`` with the XNNPACK delegate gives torch's
heatmaps to 1e-4 on the PaddleDetection fixtures and the eager model's keypoints to 0.01 px on real
photos with the real weights; ``export.py --format executorch`` writes it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tinypose
from tinypose.predict import create_model
from tinypose.runtimes import RuntimeUnavailable, available_backends, create_backend, export_formats

REPO = Path(__file__).resolve().parents[2]
HAVE_EXECUTORCH = importlib.util.find_spec("executorch") is not None
needs_executorch = pytest.mark.skipif(
    not HAVE_EXECUTORCH, reason="needs ExecuTorch (pip install tinypose[executorch]); not installed"
)


def test_executorch_is_registered_with_its_export_format() -> None:
    assert export_formats()["executorch"].suffix == ".pte"
    assert ("executorch" in available_backends("cpu")) == HAVE_EXECUTORCH


@pytest.mark.skipif(HAVE_EXECUTORCH, reason="ExecuTorch is installed: the missing-package message is not shown")
def test_missing_executorch_says_what_to_install(fixture_models) -> None:
    with pytest.raises(RuntimeUnavailable, match="pip install executorch"):
        create_backend("executorch", fixture_models["128x96"])


@needs_executorch
@pytest.mark.slow
@pytest.mark.parametrize("size", ["128x96", "256x192"])
def test_executorch_matches_torch_on_the_fixtures(fixture_models, paddle_batches, export_cache, size: str) -> None:
    model = fixture_models[size]
    backend = create_backend("executorch", model, cache_dir=export_cache)
    for batch in (1, 7):
        x, _ = paddle_batches[size][batch]
        heatmaps = backend(torch.from_numpy(x))
        with torch.inference_mode():
            reference = model(torch.from_numpy(x)).numpy()
        assert np.abs(heatmaps.numpy() - reference).max() <= 1e-4


@needs_executorch
@pytest.mark.slow
@pytest.mark.parametrize("size", ["128x96", "256x192"])
def test_executorch_keypoints_match_eager_on_photos(
    openvino_dir: Path, data_dir: Path, export_cache, size: str
) -> None:
    model = tinypose.build_model(size, pretrained=openvino_dir / f"tinypose_{size}" / "model.xml")
    photos = [str(data_dir / "photos" / name) for name in ("demo_2.jpg", "demo_5.jpg", "demo_7.jpg")]
    eager = create_model(
        model.spec.name, model=model, flip=True, device="cpu", backend="torch", backend_options={"fuse": False}
    )
    ours = create_model(
        model.spec.name, model=model, flip=True, device="cpu", backend="executorch", backend_options={"cache_dir": export_cache}
    )  # fmt: skip
    mine = [r.json["res"]["kpts"] for r in ours.predict(photos, batch_size=3)]
    reference = [r.json["res"]["kpts"] for r in eager.predict(photos, batch_size=3)]
    for a, b in zip(mine, reference):
        diff = np.abs(np.array([p["keypoints"] for p in a])[..., :2] - np.array([p["keypoints"] for p in b])[..., :2])
        assert diff.max() <= 0.01


@needs_executorch
@pytest.mark.slow
def test_export_py_writes_a_pte(tmp_path: Path) -> None:
    output = tmp_path / "pose.pte"
    done = subprocess.run(
        [sys.executable, "export.py", "--model", "128x96", "--random", "--format", "executorch", "-o", str(output)],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert output.stat().st_size > 100_000 and "max |diff|" in done.stdout
