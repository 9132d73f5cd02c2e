"""One meaning per name: old public names keep working (with a warning) after the renames of issue 10."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import tinypose.predict.predictor as predictor_module
from tinypose.data.transforms import AugmentConfig
from tinypose.detect import PersonDetector, create_detector
from tinypose.pipeline import create_pipeline
from tinypose.predict import create_model


def test_training_flip_is_random_flip_and_the_old_key_still_works() -> None:
    assert AugmentConfig().random_flip is True
    assert AugmentConfig.from_options({"random_flip": False, "flip": None}).random_flip is False
    with pytest.warns(DeprecationWarning, match="augment.flip is the old name of augment.random_flip"):
        assert AugmentConfig.from_options({"random_flip": True, "flip": False}).random_flip is False
    with pytest.raises(ValueError, match="augment.flip .* must be true or false, not 'no'"):
        AugmentConfig.from_options({"flip": "no"})
    with pytest.raises(ValueError, match="unknown augment option.*flip_prob"):
        AugmentConfig.from_options({"flip_prob": 0.5})


def test_the_training_config_old_key_sets_random_flip(compose_config) -> None:
    from tinypose.train.datamodule import CocoKeypointDataModule

    cfg = compose_config("train", ["dataset_dir=unused", "data.augment.flip=false"])
    with pytest.warns(DeprecationWarning):
        datamodule = CocoKeypointDataModule(**{k: v for k, v in cfg.data.items() if k != "_target_"})
    assert datamodule.augment_config.random_flip is False


def test_heatmap_fn_is_the_predictors_callable_type() -> None:
    assert "HeatmapFn" in predictor_module.__all__ and not hasattr(predictor_module, "Backend")


def test_detector_weights_come_from_model_dir_and_the_old_names_warn(fixtures_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detector = create_detector(192, model_dir=False, device="cpu")
    with pytest.warns(DeprecationWarning, match=r"create_detector\(weights=...\) is now model_dir"):
        assert isinstance(create_detector(192, weights=False, device="cpu"), PersonDetector)
    with pytest.raises(TypeError, match="give model_dir only"):
        create_detector(192, model_dir=False, weights=False)
    pose = create_model("PP-TinyPose_128x96", fixtures_dir / "paddlex_infer_128x96", device="cpu")
    with pytest.warns(DeprecationWarning, match=r"detector_weights=...\) is now detector_model_dir"):
        pipeline = create_pipeline(pose=pose, detector=192, detector_weights=False)
    assert isinstance(pipeline.detector, PersonDetector) and isinstance(detector, PersonDetector)
    with pytest.raises(TypeError, match="give detector_model_dir only"):
        create_pipeline(pose=pose, detector=192, detector_weights=False, detector_model_dir=False)
