"""PP-PicoDet in PyTorch against the OpenVINO runtime on the released IRs, and its weight loading."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tinypose.detect import PersonDetector, build_detector, get_detector_spec, list_detectors, multiclass_nms
from tinypose.detect.predictor import preprocess_image
from tinypose.weights import WeightsError

SIZES = (192, 320)
PHOTO_PEOPLE = {"demo_2.jpg": 1, "demo_3.jpg": 1, "demo_5.jpg": 1, "demo_6.jpg": 1, "demo_7.jpg": 4}
"""People per photo, from ../shared/data/photos/README.md (what PP-PicoDet finds at score 0.5)."""


@pytest.fixture(scope="session")
def photos(data_dir: Path) -> dict[str, np.ndarray]:
    return {name: cv2.imread(str(data_dir / "photos" / name)) for name in PHOTO_PEOPLE}


@pytest.fixture(scope="session")
def ir_paths(openvino_dir: Path) -> dict[int, Path]:
    return {size: openvino_dir / f"picodet_s_{size}_lcnet_pedestrian" / "model.xml" for size in SIZES}


@pytest.fixture(scope="session")
def detectors(ir_paths: dict[int, Path]) -> dict[int, PersonDetector]:
    return {size: PersonDetector(build_detector(size, pretrained=path), "cpu") for size, path in ir_paths.items()}


@pytest.fixture(scope="session")
def openvino_outputs(ir_paths: dict[int, Path], photos: dict[str, np.ndarray]) -> dict[int, dict[str, tuple]]:
    """Raw (boxes, scores) of the OpenVINO CPU runtime at f32 precision for every photo and size."""
    ov = pytest.importorskip("openvino")
    core = ov.Core()
    outputs: dict[int, dict[str, tuple]] = {}
    for size, path in ir_paths.items():
        compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        spec = get_detector_spec(size)
        outputs[size] = {}
        for name, image in photos.items():
            pixels, factors = preprocess_image(image, spec)
            result = compiled(pixels[None])
            outputs[size][name] = (result["concat_8.tmp_0"][0], result["transpose_8.tmp_0"][0], factors)
    return outputs


@pytest.mark.parametrize("size", SIZES)
def test_preprocessing_table_is_bit_identical_to_per_pixel_normalization(size: int) -> None:
    """The lookup table gives the bits of PaddleDetection's per-pixel ``x / 255``, ``- mean``,
    ``/ std`` (float32 multiply, float64 subtract and divide stored as float32): on an image holding
    every byte value in every channel, and on random images of odd sizes."""
    spec = get_detector_spec(size)
    rng = np.random.default_rng(size)
    every_value = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1)[..., [0, 1, 0]]
    images = [every_value.astype(np.uint8)] + [
        rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for height, width in ((1, 1), (7, 5), (901, 333))
    ]
    for image in images:
        resized = cv2.resize(
            image, None, None, fx=size / image.shape[1], fy=size / image.shape[0], interpolation=cv2.INTER_CUBIC
        )
        expected = resized[..., ::-1].astype(np.float32)
        expected *= 1.0 / 255.0
        expected -= np.array(spec.mean)[None, None, :]
        expected /= np.array(spec.std)[None, None, :]
        pixels, factors = preprocess_image(image, spec)
        assert pixels.dtype == np.float32 and pixels.flags.c_contiguous
        assert np.array_equal(pixels, expected.transpose(2, 0, 1))
        assert np.array_equal(factors, np.array([size / image.shape[0], size / image.shape[1]], np.float32))
    with pytest.raises(ValueError, match="expected a BGR uint8 image, got float32"):
        preprocess_image(np.zeros((4, 4, 3), np.float32), spec)


def test_registry_and_shapes() -> None:
    assert list_detectors() == ["picodet_s_192_lcnet_pedestrian", "picodet_s_320_lcnet_pedestrian"]
    assert get_detector_spec("320") is get_detector_spec("picodet_s_320_lcnet_pedestrian")
    with pytest.raises(ValueError, match="unknown detector"):
        get_detector_spec("yolo")
    model = build_detector(192)
    boxes, scores = model(torch.randn(2, 3, 192, 192))
    assert boxes.shape == (2, 765, 4) and scores.shape == (2, 1, 765)
    assert model.spec.num_anchors == 765 and get_detector_spec(320).num_anchors == 2125
    single, _ = model(torch.randn(1, 3, 192, 192))
    assert single.shape == (1, 765, 4)


@pytest.mark.parametrize("size", SIZES)
def test_raw_outputs_match_openvino(
    size: int, detectors: dict[int, PersonDetector], photos: dict[str, np.ndarray], openvino_outputs: dict
) -> None:
    """Boxes within 0.01 px and scores within 1e-4 of the OpenVINO runtime, before NMS, all photos in one batch."""
    names = list(photos)
    boxes, scores, factors = detectors[size].raw([photos[n] for n in names])
    for index, name in enumerate(names):
        ov_boxes, ov_scores, ov_factors = openvino_outputs[size][name]
        np.testing.assert_array_equal(factors[index], ov_factors)
        box_error = np.abs(boxes[index] - ov_boxes).max()
        score_error = np.abs(scores[index] - ov_scores).max()
        assert box_error < 0.01, f"{name}: boxes differ by {box_error:.4g} px"
        assert score_error < 1e-4, f"{name}: scores differ by {score_error:.3g}"


@pytest.mark.parametrize("size", SIZES)
def test_same_people_as_openvino_after_nms(
    size: int, detectors: dict[int, PersonDetector], photos: dict[str, np.ndarray], openvino_outputs: dict
) -> None:
    for name, image in photos.items():
        ours = detectors[size](image)
        ov_boxes, ov_scores, (scale_y, scale_x) = openvino_outputs[size][name]
        reference = multiclass_nms(ov_boxes / np.array([scale_x, scale_y] * 2, np.float32), ov_scores)
        reference = reference[reference[:, 1] > 0.5]
        assert len(ours) == len(reference) == PHOTO_PEOPLE[name], name
        np.testing.assert_allclose(ours[:, :4], reference[:, 2:], atol=0.05)
        np.testing.assert_allclose(ours[:, 4], reference[:, 1], atol=1e-4)


def test_boxes_are_in_image_pixels(detectors: dict[int, PersonDetector], photos: dict[str, np.ndarray]) -> None:
    image = photos["demo_7.jpg"]
    small = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    full, half = detectors[320](image), detectors[320](small)
    assert len(full) == len(half) == 4
    order_full, order_half = np.argsort(full[:, 0]), np.argsort(half[:, 0])
    np.testing.assert_allclose(full[order_full, :4] / 2, half[order_half, :4], atol=4.0)
    height, width = image.shape[:2]
    assert (full[:, :2] > -20).all() and (full[:, 2] < width + 20).all() and (full[:, 3] < height + 20).all()
    rgb_detector = PersonDetector(detectors[320].model, input_color="rgb")
    np.testing.assert_array_equal(rgb_detector(image[..., ::-1]), full)


def _paddle_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Our weights under PaddleDetection's ``PicoDet.state_dict()`` names, with its extra entries."""
    state = {}
    for name, value in model.state_dict().items():
        if name.endswith(("num_batches_tracked", ".slope")) or name == "head.score_eps":
            continue
        name = name.replace("running_mean", "_mean").replace("running_var", "_variance")
        state[name] = value.numpy()
    for level in range(4):
        state[f"head.p{level + 3}_feat.scale_reg"] = np.ones(1, np.float32)
        for kind in ("cls", "reg"):
            for part in ("weight", "bias"):
                state[f"head.head_{kind}{level}.{part}"] = state[f"head.head_{kind}_list.{level}.{part}"]
    state["head.distribution_project.project"] = np.arange(8, dtype=np.float32)
    return state


def test_pdparams_with_paddle_names_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = build_detector(192)
    for module in source.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.running_var, 0.5, 2.0)
            torch.nn.init.normal_(module.running_mean, 0, 0.3)
    path = tmp_path / "picodet_s_192_lcnet_pedestrian.pdparams"
    path.write_bytes(pickle.dumps(_paddle_state(source), protocol=4))
    loaded = build_detector(192, pretrained=path)
    x = torch.randn(1, 3, 192, 192)
    with torch.no_grad():
        for ours, theirs in zip(loaded(x), source(x)):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert float(loaded.backbone.blocks6[0].se.hardsigmoid.slope) == pytest.approx(0.1666667)
    assert float(loaded.head.score_eps) == pytest.approx(1e-9)

    broken = _paddle_state(source)
    broken["head.head_cls1.weight"] = broken["head.head_cls1.weight"] + 1
    path.write_bytes(pickle.dumps(broken, protocol=4))
    with pytest.raises(WeightsError, match="head_cls1.weight differs"):
        build_detector(192, pretrained=path)
    del broken["head.head_cls1.weight"], broken["neck.conv_t.convs.0.bn._mean"]
    path.write_bytes(pickle.dumps(broken, protocol=4))
    with pytest.raises(WeightsError, match="missing"):
        build_detector(192, pretrained=path)


def test_safetensors_round_trip_keeps_ir_constants(ir_paths: dict[int, Path], tmp_path: Path) -> None:
    from tinypose.weights import save_safetensors

    model = build_detector(192, pretrained=ir_paths[192])
    path = save_safetensors(model.state_dict(), tmp_path / "det.safetensors", model.spec.name)
    again = build_detector(192, pretrained=path)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], value, rtol=0, atol=0, msg=name)
    assert float(again.head.score_eps) == 0.0  # the fp16 IR has no epsilon before the sqrt
    with pytest.raises(WeightsError, match="not picodet_s_320"):
        build_detector(320, pretrained=path)


def test_wrong_ir_is_refused(openvino_dir: Path) -> None:
    with pytest.raises(WeightsError, match="not this detector|cannot place|does not match"):
        build_detector(192, pretrained=openvino_dir / "tinypose_128x96" / "model.xml")
    with pytest.raises(WeightsError, match="takes 320x320 inputs, picodet_s_192_lcnet_pedestrian takes 192x192"):
        build_detector(192, pretrained=openvino_dir / "picodet_s_320_lcnet_pedestrian" / "model.xml")


def test_convert_weights_handles_detectors(ir_paths: dict[int, Path], tmp_path: Path) -> None:
    from tinypose.families import convert_weights as convert

    output = convert(ir_paths[320], tmp_path / "picodet.safetensors")  # detector and size read from the path
    model = build_detector(320, pretrained=output)
    reference = build_detector(320, pretrained=ir_paths[320])
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    with pytest.raises(WeightsError, match="already exists"):
        convert(ir_paths[320], output)
