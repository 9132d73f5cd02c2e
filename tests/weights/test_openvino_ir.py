"""OpenVINO IR without OpenVINO: the generic graph reader, and the real PP-TinyPose weights loaded from
the IRs reproducing the OpenVINO runtime on real person crops."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import tinypose
from tinypose.crop import box_xyxy_to_center_scale, get_affine_transform, warp_affine
from tinypose.models import MODEL_SPECS, TinyPose, get_spec, load_state_dict
from tinypose.weights import WeightsError, read_weights
from tinypose.weights.loader import to_torch_state
from tinypose.weights.openvino_ir import read_ir_graph, read_openvino_ir

HEATMAP_TOLERANCE = 2e-4  # max abs difference vs the OpenVINO CPU plugin at f32 precision
CROPS = {"PP-TinyPose_128x96": 8, "PP-TinyPose_256x192": 4}  # kept small: the 2-core test budget


def _ir(openvino_dir: Path, size: str) -> Path:
    return openvino_dir / f"tinypose_{size}" / "model.xml"


# ----------------------------------------------------------------------------- generic reader
TINY_IR = """<?xml version="1.0"?>
<net name="tiny" version="11">
  <layers>
    <layer id="0" name="x" type="Parameter" version="opset1">
      <data shape="1,2,4,4" element_type="f32"/>
      <output><port id="0" precision="FP32" names="x"><dim>1</dim><dim>2</dim><dim>4</dim><dim>4</dim></port></output>
    </layer>
    <layer id="1" name="w_compressed" type="Const" version="opset1">
      <data element_type="f16" shape="3, 2, 1, 1" offset="0" size="12"/>
      <output><port id="0" precision="FP16"><dim>3</dim><dim>2</dim><dim>1</dim><dim>1</dim></port></output>
    </layer>
    <layer id="2" name="w" type="Convert" version="opset1">
      <data destination_type="f32"/>
      <rt_info><attribute name="decompression" version="0"/></rt_info>
      <input><port id="0" precision="FP16"><dim>3</dim><dim>2</dim><dim>1</dim><dim>1</dim></port></input>
      <output><port id="1" precision="FP32"><dim>3</dim><dim>2</dim><dim>1</dim><dim>1</dim></port></output>
    </layer>
    <layer id="3" name="conv" type="Convolution" version="opset1">
      <data strides="1, 1" dilations="1, 1" pads_begin="0, 0" pads_end="0, 0" auto_pad="explicit"/>
      <rt_info><attribute name="fused_names" version="0" value="batch_norm2d_7.b_0, batch_norm2d_7.w_0, conv2d_9.tmp_0"/></rt_info>
      <input>
        <port id="0" precision="FP32"><dim>1</dim><dim>2</dim><dim>4</dim><dim>4</dim></port>
        <port id="1" precision="FP32"><dim>3</dim><dim>2</dim><dim>1</dim><dim>1</dim></port>
      </input>
      <output><port id="2" precision="FP32"><dim>1</dim><dim>3</dim><dim>4</dim><dim>4</dim></port></output>
    </layer>
    <layer id="4" name="shift" type="Const" version="opset1">
      <data element_type="f32" shape="1, 3, 1, 1" offset="12" size="12"/>
      <output><port id="0" precision="FP32"><dim>1</dim><dim>3</dim><dim>1</dim><dim>1</dim></port></output>
    </layer>
    <layer id="5" name="add" type="Add" version="opset1">
      <data auto_broadcast="numpy"/>
      <input>
        <port id="0" precision="FP32"><dim>1</dim><dim>3</dim><dim>4</dim><dim>4</dim></port>
        <port id="1" precision="FP32"><dim>1</dim><dim>3</dim><dim>1</dim><dim>1</dim></port>
      </input>
      <output><port id="2" precision="FP32" names="y"><dim>1</dim><dim>3</dim><dim>4</dim><dim>4</dim></port></output>
    </layer>
    <layer id="6" name="y/sink_port_0" type="Result" version="opset1">
      <input><port id="0" precision="FP32"><dim>1</dim><dim>3</dim><dim>4</dim><dim>4</dim></port></input>
    </layer>
  </layers>
  <edges>
    <edge from-layer="0" from-port="0" to-layer="3" to-port="0"/>
    <edge from-layer="1" from-port="0" to-layer="2" to-port="0"/>
    <edge from-layer="2" from-port="1" to-layer="3" to-port="1"/>
    <edge from-layer="3" from-port="2" to-layer="5" to-port="0"/>
    <edge from-layer="4" from-port="0" to-layer="5" to-port="1"/>
    <edge from-layer="5" from-port="2" to-layer="6" to-port="0"/>
  </edges>
  <meta_data><MO_version value="handmade"/></meta_data>
</net>
"""
TINY_WEIGHT = np.array([0.5, -1.25, 2.0, 0.125, -0.75, 3.5], np.float16).reshape(3, 2, 1, 1)
TINY_SHIFT = np.array([0.1, -0.2, 0.3], np.float32).reshape(1, 3, 1, 1)


@pytest.fixture
def tiny_ir(tmp_path) -> Path:
    xml = tmp_path / "tiny.xml"
    xml.write_text(TINY_IR)
    xml.with_suffix(".bin").write_bytes(TINY_WEIGHT.tobytes() + TINY_SHIFT.tobytes())
    return xml


def test_read_ir_graph_on_a_handmade_ir(tiny_ir) -> None:
    graph = read_ir_graph(tiny_ir)
    assert (graph.name, graph.version, graph.meta_data["MO_version"]) == ("tiny", 11, "handmade")
    assert [layer.type for layer in graph.layers.values()] == [
        "Parameter", "Const", "Convert", "Convolution", "Const", "Add", "Result"
    ]  # fmt: skip
    conv = graph.by_name("conv")
    assert conv.attributes["strides"] == "1, 1"
    assert conv.fused_names == ("batch_norm2d_7.b_0", "batch_norm2d_7.w_0", "conv2d_9.tmp_0")
    assert conv.inputs[1].shape == (3, 2, 1, 1) and conv.outputs[0].shape == (1, 3, 4, 4)
    assert graph.by_name("w_compressed").value.dtype == np.float16  # stored type kept
    weight = graph.constant_input(conv.id, 1)  # through the decompression Convert
    assert weight.dtype == np.float32 and np.array_equal(weight, TINY_WEIGHT.astype(np.float32))
    assert graph.producer(conv.id, 0)[0].name == "x"
    assert [(layer.name, port) for layer, port in graph.consumers(conv.id)] == [("add", 0)]
    assert [p.name for p in graph.parameters] == ["x"] and graph.results[0].inputs[0].shape == (1, 3, 4, 4)

    raw = read_openvino_ir(tiny_ir)  # named from batch_norm2d_7 -> conv2d_7
    assert list(raw.arrays) == ["conv2d_7.w_0"] and raw.input_hw == (4, 4)
    assert np.array_equal(raw.folded_shifts["conv2d_7.w_0"], TINY_SHIFT.reshape(3))
    with pytest.raises(WeightsError, match="tiny.xml: the model in this file takes 4x4 inputs"):
        load_state_dict(tiny_ir, "PP-TinyPose_128x96")
    with pytest.raises(WeightsError, match="tiny.xml: found 1 conv2d layers, the model has 269"):
        to_torch_state(raw, TinyPose(get_spec("128x96")))


def test_truncated_ir_files_are_named(tiny_ir) -> None:
    data = tiny_ir.with_suffix(".bin").read_bytes()
    tiny_ir.with_suffix(".bin").write_bytes(data[:-4])
    with pytest.raises(WeightsError, match=r"tiny.bin: constant shift needs bytes 12..24 but the file has 20"):
        read_ir_graph(tiny_ir)
    tiny_ir.write_text(TINY_IR[:2000])
    with pytest.raises(WeightsError, match=r"tiny.xml: not a readable OpenVINO IR XML \(truncated or corrupt\?\)"):
        read_ir_graph(tiny_ir)


def test_entity_declarations_are_refused(tmp_path) -> None:
    xml = tmp_path / "bomb.xml"
    xml.write_text('<?xml version="1.0"?><!DOCTYPE net [<!ENTITY a "aaaa">]><net><layers/></net>')
    with pytest.raises(WeightsError, match="bomb.xml: refusing an IR with a DOCTYPE"):
        read_ir_graph(xml)


@pytest.mark.parametrize("ir", ["tinypose_128x96", "picodet_s_192_lcnet_pedestrian"])
def test_constants_equal_openvinos_own_decoding(openvino_dir, ir) -> None:
    """Every Const of real IRs (f16, f32, i32, i64, u64) decodes to what OpenVINO itself reads."""
    ov = pytest.importorskip("openvino", reason="the openvino package is an optional test dependency")
    xml = openvino_dir / ir / "model.xml"
    graph = read_ir_graph(xml)
    constants = [op for op in ov.Core().read_model(xml).get_ops() if op.get_type_name() == "Constant"]
    assert len(constants) == len(graph.by_type("Const"))
    for op in constants:
        ours, theirs = graph.by_name(op.get_friendly_name()).value, op.get_data()
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), op.get_friendly_name()


# ----------------------------------------------------------------------------- PP-TinyPose IRs
def test_ir_conv_names_match_the_reference_table(openvino_dir) -> None:
    """Names from rt_info == ../shared's independent conv table (graph order -> Paddle names)."""
    graph = read_ir_graph(_ir(openvino_dir, "128x96"))
    raw = read_openvino_ir(_ir(openvino_dir, "128x96"))
    table = json.loads((openvino_dir / "tinypose_ir_convs.json").read_text())
    assert len(table) == 269 and len(raw.arrays) == 270 and len(raw.folded_shifts) == 268
    for conv in table:
        name = conv["paddle_conv_param"][0]
        layer = graph.by_name(conv["ir_name"])
        expected = graph.constant_input(layer.id, 1).astype(np.float32)
        assert np.array_equal(raw.arrays[name].reshape(expected.shape), expected), name
        assert (name in raw.folded_shifts) == bool(conv["bn_fused"])
    assert raw.arrays["conv2d_268.b_0"].shape == (17,)


def _person_crops(data_dir: Path, name: str, count: int) -> np.ndarray:
    """Normalized crops of COCO GT person boxes as the PaddleX pipeline makes them (tinypose.crop:
    xyxy box -> aspect-fixed x1.25 center/scale, width-only affine, cv2.warpAffine; ImageNet
    mean/std on RGB/255)."""
    cv2 = pytest.importorskip("cv2")
    spec = get_spec(name)
    annotations = json.loads((data_dir / "coco_dev" / "annotations" / "person_keypoints.json").read_text())
    files = {image["id"]: image["file_name"] for image in annotations["images"]}
    crops = []
    for annotation in annotations["annotations"]:
        if annotation["iscrowd"] or annotation["num_keypoints"] < 5:
            continue
        image = cv2.imread(str(data_dir / "coco_dev" / "images" / files[annotation["image_id"]]))[:, :, ::-1]
        x, y, w, h = annotation["bbox"]
        center, scale = box_xyxy_to_center_scale((x, y, x + w, y + h), spec.aspect_ratio)
        crop = warp_affine(image, get_affine_transform(center, scale, 0, spec.input_size), spec.input_size)
        crops.append(((crop / 255.0 - spec.mean) / spec.std).transpose(2, 0, 1))
        if len(crops) == count:
            break
    return np.stack(crops).astype(np.float32)


@pytest.mark.parametrize("name", sorted(MODEL_SPECS))
def test_real_weights_reproduce_openvino(openvino_dir, data_dir, name) -> None:
    ov = pytest.importorskip("openvino", reason="the openvino package is an optional test dependency")
    spec = get_spec(name)
    xml = _ir(openvino_dir, name.split("_")[1])
    crops = _person_crops(data_dir, name, CROPS[name])
    model = tinypose.build_model(name, pretrained=xml)
    with torch.no_grad():
        ours = model(torch.from_numpy(crops)).numpy()
    compiled = ov.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    reference = np.concatenate([compiled(crops[i : i + 1])[compiled.output(0)] for i in range(len(crops))])
    argmax = np.concatenate([compiled(crops[i : i + 1])[compiled.output(1)] for i in range(2)]).reshape(2, -1)
    assert ours.shape == reference.shape == (len(crops), 17, *spec.heatmap_size[::-1])
    assert np.abs(reference).max() > 0.5  # real responses, not a dead model
    assert np.abs(ours - reference).max() <= HEATMAP_TOLERANCE
    flat_ours = ours.reshape(len(crops), 17, -1).argmax(-1)
    assert np.array_equal(flat_ours, reference.reshape(len(crops), 17, -1).argmax(-1))
    assert np.array_equal(flat_ours[:2], argmax)  # the IR's own in-graph argmax output


def test_wrong_variant_ir_is_refused(openvino_dir) -> None:
    xml = _ir(openvino_dir, "256x192")
    with pytest.raises(
        WeightsError,
        match=r"tinypose_256x192/model.xml: the model in this file takes 256x192 inputs, PP-TinyPose_128x96 takes 128x96",
    ):
        tinypose.build_model("PP-TinyPose_128x96", pretrained=xml)


def test_truncated_real_ir_is_refused(openvino_dir, tmp_path) -> None:
    folder = tmp_path / "ir"
    shutil.copytree(openvino_dir / "tinypose_128x96", folder)
    data = (folder / "model.bin").read_bytes()
    (folder / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"model.bin: constant \S+ needs bytes .*truncated \.bin"):
        read_weights(folder / "model.xml")
    for path in (folder, folder / "model.bin"):  # the folder or the .bin name the IR too
        with pytest.raises(WeightsError, match=r"model.bin: constant"):
            read_weights(path)
