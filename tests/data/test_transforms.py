"""Training augmentation and heatmap targets against PaddleDetection's own operators, and the codec round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinypose.codec import HeatmapCodec
from tinypose.data.coco import gt_instances, validate_coco
from tinypose.data.dataset import EpochSampler
from tinypose.data.transforms import AugmentConfig, augment, read_image
from tinypose.models.tinypose import get_spec


@pytest.mark.parametrize("size", ["128x96", "256x192"])
def test_augment_matches_paddledetection(coco_dev: Path, upstream_reference: dict, size: str) -> None:
    """Same seed -> same half-body/scale/rotation/flip/cut-out draws, UDP crop, joints and DARK-style targets.

    Reference: RandomFlipHalfBodyTransform, AugmentationbyInformantionDropping, TopDownAffine(use_udp=True),
    ToHeatmapsTopDown_DARK with the tinypose_*.yml settings, run by PaddleDetection after np.random.seed(seed).
    """
    spec = get_spec(size)
    codec = HeatmapCodec.from_spec(spec)
    data, _ = validate_coco(coco_dev / "annotations" / "person_keypoints.json", coco_dev / "images")
    instances = gt_instances(data, coco_dev / "images", spec.input_size)
    samples = upstream_reference["augment"][size]
    rotated = 0
    for sample in samples:
        instance = instances[sample["index"]]
        out = augment(
            read_image(instance.image_file),
            instance.keypoints,
            instance.visibility,
            instance.center,
            instance.scale,
            spec.input_size,
            spec.flip_pairs,
            AugmentConfig(),
            np.random.RandomState(sample["seed"]),
        )
        target, weight = codec.encode(out.keypoints, out.visibility)
        np.testing.assert_array_equal(out.center, np.float32(sample["center"]))
        np.testing.assert_allclose(out.scale, sample["scale"], rtol=1e-7)
        assert out.rotation == pytest.approx(sample["rotate"], abs=1e-9)
        np.testing.assert_array_equal(out.keypoints, np.float32(sample["joints"]))
        np.testing.assert_array_equal(weight[:, 0], sample["target_weight"])
        np.testing.assert_allclose(
            target.astype(np.float64).sum(axis=(1, 2)), sample["target_sum"], rtol=1e-6, atol=1e-6
        )
        assert target.reshape(spec.num_joints, -1).argmax(axis=1).tolist() == sample["target_argmax"]
        height, width = out.image.shape[:2]
        thumbnail = out.image.reshape(8, height // 8, 6, width // 6, 3).astype(np.float64).mean(axis=(1, 3))
        # block means of the crop: exact with the reference's OpenCV, within a grey level with another release
        np.testing.assert_allclose(thumbnail, sample["crop_thumbnail"], atol=1.0)
        rotated += sample["rotate"] != 0
    assert rotated > 0, "the reference covers rotated samples"


@pytest.mark.parametrize("size", ["128x96", "256x192"])
def test_encode_decode_round_trip(size: str) -> None:
    """Gaussian targets decoded by the codec (argmax + DARK + inverse affine) give the keypoints back."""
    spec = get_spec(size)
    codec = HeatmapCodec.from_spec(spec)
    rng = np.random.default_rng(0)
    width, height = spec.input_size
    keypoints = rng.uniform([16, 16], [width - 16, height - 16], size=(spec.num_joints, 2)).astype(np.float32)
    target, weight = codec.encode(keypoints, np.ones(spec.num_joints, np.float32))
    assert target.shape == (spec.num_joints, *spec.heatmap_size[::-1]) and target.max() <= 1.0
    np.testing.assert_array_equal(weight, 1.0)
    # center/scale that make the inverse affine map heatmap pixels to input pixels (x4)
    center = np.array([[width / 2, height / 2]], np.float32)
    scale = np.array([[width, height]], np.float32)
    decoded, _ = codec.decode(target[None], center, scale)
    np.testing.assert_allclose(decoded[0, :, :2], keypoints, atol=0.05)
    np.testing.assert_allclose(decoded[0, :, 2], target.reshape(spec.num_joints, -1).max(axis=1))


def test_encode_weights_follow_visibility_and_map_bounds() -> None:
    codec = HeatmapCodec.from_spec(get_spec("128x96"))
    keypoints = np.array([[48, 64], [48, 64], [-40, 64], [200, 64], [48, 500]] + [[10, 10]] * 12, np.float32)
    visibility = np.array([1, 0, 1, 1, 1] + [1] * 12, np.float32)
    target, weight = codec.encode(keypoints, visibility)
    assert weight[:5, 0].tolist() == [1, 0, 0, 0, 0]
    assert target[1].max() == 0 and target[2].max() == 0 and target[0].max() == pytest.approx(1.0)


def test_epoch_sampler_is_a_function_of_seed_and_epoch() -> None:
    sampler = EpochSampler(10, seed=3, batch_size=4)
    first = list(sampler)
    assert sorted(i for i, _ in first) == list(range(10)) and list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    sampler.skip_batches(2)  # resuming after two batches of epoch 1
    assert list(sampler) == second[8:]
    assert list(sampler) == second, "the skip applies to one iteration only"
