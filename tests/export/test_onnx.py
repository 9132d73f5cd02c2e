"""ONNX export: a valid graph with the agreed shape contract, and ONNX Runtime reproducing PyTorch and
PaddleDetection on the random-weight fixtures (batch 1 and 7, both sizes)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from tinypose.export import build_onnx, export_onnx
from tinypose.export.cli import main as export_main

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

SIZES = ["128x96", "256x192"]
TORCH_TOLERANCE = 1e-4
PADDLE_TOLERANCE = {"128x96": 1e-4, "256x192": 3e-4}
"""The model parity tests' bounds against PaddleDetection."""


@pytest.fixture(scope="module")
def onnx_files(fixture_models, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("onnx")
    return {size: export_onnx(model, folder / f"{size}.onnx") for size, model in fixture_models.items()}


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("batch", [1, 7])
def test_onnxruntime_matches_torch_and_paddle(
    onnx_files, fixture_models, paddle_batches, size: str, batch: int
) -> None:
    x, paddle_heatmaps = paddle_batches[size][batch]
    ours = _session(onnx_files[size]).run(None, {"image": x})[0]
    with torch.inference_mode():
        reference = fixture_models[size](torch.from_numpy(x)).numpy()
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= TORCH_TOLERANCE
    assert np.abs(ours - paddle_heatmaps).max() <= PADDLE_TOLERANCE[size]


@pytest.mark.parametrize("size", SIZES)
def test_graph_contract(onnx_files, fixture_models, size: str) -> None:
    """Batch dynamic, H/W static, opset >= 11, nearest resizes asymmetric/floor, no shuffles left."""
    proto = onnx.load(str(onnx_files[size]))
    onnx.checker.check_model(proto, full_check=True)
    spec = fixture_models[size].spec
    (graph_input,), (graph_output,) = proto.graph.input, proto.graph.output

    def dims(value: object) -> list:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert dims(graph_input) == ["batch", 3, spec.input_height, spec.input_width]
    assert dims(graph_output) == ["batch", spec.num_joints, spec.input_height // 4, spec.input_width // 4]
    assert next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 11
    ops = Counter(node.op_type for node in proto.graph.node)
    assert ops["Conv"] == 269 and not {"BatchNormalization", "Transpose", "Reshape", "Shape"} & set(ops)
    for node in proto.graph.node:
        if node.op_type == "Resize":
            attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if attributes["mode"] == b"nearest":
                assert attributes["coordinate_transformation_mode"] == b"asymmetric"
                assert attributes["nearest_mode"] == b"floor"
            else:
                assert (attributes["mode"], attributes["coordinate_transformation_mode"]) == (
                    b"linear",
                    b"align_corners",
                )
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert metadata["model_name"] == spec.name and metadata["input_size"] == f"{spec.input_width}x{spec.input_height}"


def test_fp16_graph_keeps_float32_io_and_close_heatmaps(fixture_models, paddle_batches) -> None:
    proto = build_onnx(fixture_models["128x96"], precision="fp16")
    weights = {init.data_type for init in proto.graph.initializer if len(init.dims) == 4}
    assert weights == {onnx.TensorProto.FLOAT16}
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    x, paddle_heatmaps = paddle_batches["128x96"][7]
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ours = session.run(None, {"image": x})[0]
    assert ours.dtype == np.float32
    assert np.abs(ours - paddle_heatmaps).max() < 2e-2  # heatmaps reach |2.3|; fp16 has 11 bits

    def argmax(h: np.ndarray) -> np.ndarray:
        return h.reshape(*h.shape[:2], -1).argmax(-1)

    assert (argmax(ours) == argmax(paddle_heatmaps)).mean() > 0.95


def test_cli_exports_a_weights_file(fixtures_dir, tmp_path, capsys) -> None:
    output = tmp_path / "pose.onnx"
    weights = fixtures_dir / "paddlex_infer_128x96"  # a PaddleX inference folder, read without paddle
    assert export_main(["--model", "128x96", "--weights", str(weights), "-o", str(output)]) == 0
    assert "max |diff|" in capsys.readouterr().out
    onnx.checker.check_model(str(output))


def test_cli_rejects_weights_of_the_other_size(fixtures_dir, tmp_path, capsys) -> None:
    weights = fixtures_dir / "tinypose_128x96_random.pdparams"
    assert export_main(["--model", "256x192", "--weights", str(weights), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "128x96" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_export_refuses_old_opsets(fixture_models) -> None:
    with pytest.raises(ValueError, match="opset 10"):
        build_onnx(fixture_models["128x96"], opset=10)


@pytest.mark.long
@pytest.mark.slow
def test_torch_dynamo_exporter_agrees(fixture_models, paddle_batches, tmp_path) -> None:
    """torch.onnx (dynamo) on the original model, independent of our lowering; ~30-60 s on 2 cores."""
    path = export_onnx(fixture_models["128x96"], tmp_path / "dynamo.onnx", exporter="torch")
    x, paddle_heatmaps = paddle_batches["128x96"][7]
    assert np.abs(_session(path).run(None, {"image": x})[0] - paddle_heatmaps).max() <= PADDLE_TOLERANCE["128x96"]
