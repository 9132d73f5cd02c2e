"""The predictor on every runtime: ``create_model(..., backend=NAME)`` gives the eager model's keypoints
to 0.01 px (measured: <= 0.003 px for onnxruntime, <= 0.0003 px for openvino).

Real weights, real photos, flip on and three images per batch, so every backend runs a multi-crop
batch (its micro-batch path) and a single-crop one.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinypose
from tinypose.predict import create_model
from tinypose.runtimes import available_backends

PHOTOS = ["demo_2.jpg", "demo_5.jpg", "demo_7.jpg"]
KEYPOINT_TOLERANCE_PX = 0.01


def _keypoints(predictor, photos: list[str], batch_size: int) -> np.ndarray:
    results = list(predictor.predict(photos, batch_size=batch_size))
    assert len(results) == len(photos)
    return np.array([[person["keypoints"] for person in r.json["res"]["kpts"]] for r in results])


@pytest.mark.long
@pytest.mark.parametrize("size", ["128x96", "256x192"])
def test_every_backend_gives_torch_keypoints(openvino_dir, data_dir, export_cache, size: str) -> None:
    model = tinypose.build_model(size, pretrained=openvino_dir / f"tinypose_{size}" / "model.xml")
    photos = [str(data_dir / "photos" / name) for name in PHOTOS]
    # The reference: the unfused eager model (the torch backend itself folds BatchNorm and shuffles).
    eager = create_model(
        model.spec.name, model=model, flip=True, device="cpu", backend="torch", backend_options={"fuse": False}
    )
    reference = {batch: _keypoints(eager, photos, batch) for batch in (1, 3)}
    assert np.abs(reference[1] - reference[3]).max() <= KEYPOINT_TOLERANCE_PX
    for name in available_backends("cpu"):
        predictor = create_model(
            model.spec.name,
            model=model,
            flip=True,
            device="cpu",
            backend=name,
            backend_options={"cache_dir": export_cache},
        )
        for batch in (1, 3):
            ours = _keypoints(predictor, photos, batch)
            xy_error = np.abs(ours[..., :2] - reference[batch][..., :2]).max()
            assert xy_error <= KEYPOINT_TOLERANCE_PX, f"{name}, batch {batch}: {xy_error:.4f} px"
            assert np.abs(ours[..., 2] - reference[batch][..., 2]).max() <= 1e-4, name
