"""Crop geometry: PaddleX's network input from the image file, and the box conventions upstream uses."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tinypose import get_spec
from tinypose.crop import (
    affine_transform_points,
    box_xywh_to_center_scale,
    box_xyxy_to_center_scale,
    clean_coco_box,
    get_affine_transform,
    get_udp_warp_matrix,
    transform_preds,
    warp_affine,
    whole_image_center_scale,
)

SPEC = get_spec("PP-TinyPose_128x96")
GREY_LEVEL = 1.0 / 255.0 / min(SPEC.std)  # one uint8 step after normalization


def _normalize(crop_rgb: np.ndarray) -> np.ndarray:
    alpha = np.float32(1 / 255) / np.array(SPEC.std, dtype=np.float32)
    beta = -np.array(SPEC.mean, dtype=np.float32) / np.array(SPEC.std, dtype=np.float32)
    return (crop_rgb.astype(np.float32) * alpha + beta).transpose(2, 0, 1)


@pytest.mark.parametrize("name", ["demo_3", "demo_5"])
def test_whole_image_crop_reproduces_paddlex_network_input(fixtures_dir, name: str) -> None:
    e2e = fixtures_dir / "paddlex_e2e"
    reference = np.load(e2e / "paddlex_intermediates.npz")
    image = cv2.cvtColor(cv2.imread(str(e2e / "images" / f"{name}.jpg")), cv2.COLOR_BGR2RGB)
    center, scale = whole_image_center_scale(image.shape[1], image.shape[0])
    np.testing.assert_array_equal(center, reference[f"{name}_center"])
    np.testing.assert_array_equal(scale, reference[f"{name}_scale"])
    crop = warp_affine(image, get_affine_transform(center, scale, 0, SPEC.input_size), SPEC.input_size)
    difference = np.abs(_normalize(crop) - reference[f"{name}_input"][0])
    # OpenCV 5.0 vs 5.1 round warpAffine's bilinear weights differently: at most one grey level
    assert difference.max() <= GREY_LEVEL * 1.001
    assert (difference > 1e-5).mean() < 0.2


def test_plain_affine_uses_the_box_width_only() -> None:
    center, scale, output = np.array([100.0, 50.0]), np.array([40.0, 1000.0]), (96, 128)
    matrix = get_affine_transform(center, scale, 0, output)
    s = 96 / 40
    np.testing.assert_allclose(matrix, [[s, 0, 48 - s * 100], [0, s, 64 - s * 50]], atol=1e-5)
    inverse = get_affine_transform(center, scale, 0, output, inv=True)
    np.testing.assert_allclose(
        affine_transform_points(affine_transform_points([[3.0, 7.0]], matrix), inverse), [[3.0, 7.0]], atol=1e-4
    )


def test_plain_affine_rotation_turns_the_box_about_its_center() -> None:
    matrix = get_affine_transform(np.array([10.0, 20.0]), np.array([96.0, 128.0]), 90, (96, 128))
    np.testing.assert_allclose(matrix[:, :2], [[0, 1], [-1, 0]], atol=1e-6)
    np.testing.assert_allclose(affine_transform_points([[10.0, 20.0]], matrix), [[48, 64]], atol=1e-4)


def test_udp_matrix_maps_box_corners_to_pixel_centers() -> None:
    center, scale, output = np.array([120.0, 80.0]), np.array([60.0, 80.0]), (192, 256)
    matrix = get_udp_warp_matrix(center, scale, output)
    assert matrix.dtype == np.float32
    corners = [
        [center[0] - scale[0] / 2, center[1] - scale[1] / 2],
        [center[0] + scale[0] / 2, center[1] + scale[1] / 2],
    ]
    np.testing.assert_allclose(affine_transform_points(corners, matrix), [[0, 0], [191, 255]], atol=1e-3)


def test_paddlex_pipeline_box_fixes_aspect_then_pads() -> None:
    # tall box: width grows to h * 96/128, then x1.25
    center, scale = box_xyxy_to_center_scale([10, 20, 50, 220, 0.9], SPEC.aspect_ratio)
    np.testing.assert_allclose(center, [30, 120])
    np.testing.assert_allclose(scale, [150 * 1.25, 200 * 1.25])
    center, scale = box_xyxy_to_center_scale([0, 0, 300, 40], SPEC.aspect_ratio)
    np.testing.assert_allclose(scale, [300 * 1.25, 400 * 1.25])


def test_paddledetection_eval_box_in_pixel_std_units() -> None:
    cleaned = clean_coco_box([-5.0, 10.0, 100.0, 500.0], width=80, height=300)
    assert cleaned == (0.0, 10.0, 79.0, 289.0)
    assert clean_coco_box([90.0, 10.0, 5.0, 5.0], width=80, height=300) is None
    center, scale = box_xywh_to_center_scale(cleaned, SPEC.aspect_ratio)
    assert center.dtype == scale.dtype == np.float32
    np.testing.assert_allclose(center, [39.5, 154.5])
    np.testing.assert_allclose(scale, [289 * 0.75 / 200 * 1.25, 289 / 200 * 1.25], rtol=1e-6)


def test_transform_preds_inverts_the_crop_of_each_box() -> None:
    centers = np.array([[100.0, 200.0], [50.0, 60.0]])
    scales = np.array([[48.0, 64.0], [24.0, 32.0]])
    heatmap_points = np.array([[[12.0, 16.0], [0.0, 0.0]], [[12.0, 16.0], [24.0, 32.0]]])
    image_points = transform_preds(heatmap_points, centers, scales, SPEC.heatmap_size)
    np.testing.assert_allclose(image_points[0], [[100, 200], [76, 168]], atol=1e-4)
    np.testing.assert_allclose(image_points[1], [[50, 60], [62, 76]], atol=1e-4)
