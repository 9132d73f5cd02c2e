"""The ONNX we hand TensorRT uses only what TensorRT 10's ONNX parser supports (issue 15, item 3).

TensorRT cannot be installed here, so the check is against the parser's published support matrix:
onnx/onnx-tensorrt, docs/operators.md, branch 10.1-GA (commit 96e781103cfc4adf4a6bb557e94bac8e693f6f4c,
"ONNX-TensorRT 10.1 GA release"): "TensorRT 10.0 supports operators in the inclusive range of opset 9
to opset 20". The operator names below are the rows marked ``Y`` in that table, the Resize
restrictions its Restrictions column, and the data types its FP32/FP16 columns for these ops.
"""

from __future__ import annotations

import pytest
import torch

import tinypose
from tinypose.export import build_onnx
from tinypose.export.onnx import DEFAULT_OPSET

onnx = pytest.importorskip("onnx")

TRT10_OPSETS = range(9, 21)
_TRT10_TABLE_ROWS = """Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike Ceil
    Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace
    DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements
    GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
    GroupNormalization GRU HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN
    LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max
    MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
    ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range
    Reciprocal ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare
    Relu Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu
    Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum
    Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor"""
TRT10_SUPPORTED_OPS = frozenset(_TRT10_TABLE_ROWS.split())
RESIZE_MODES = {"nearest", "linear"}
RESIZE_TRANSFORMS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
RESIZE_NEAREST = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}


def _attributes(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
@pytest.mark.parametrize("size", ["128x96", "256x192"])
def test_exported_onnx_uses_only_what_tensorrt_10_parses(size: str, precision: str) -> None:
    torch.manual_seed(0)
    proto = build_onnx(tinypose.build_model(size), DEFAULT_OPSET, precision, None)
    opsets = {entry.domain: entry.version for entry in proto.opset_import}
    assert set(opsets) == {""} and opsets[""] in TRT10_OPSETS
    ops = {node.op_type for node in proto.graph.node}
    assert ops <= TRT10_SUPPORTED_OPS, ops - TRT10_SUPPORTED_OPS
    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    float_type = onnx.TensorProto.FLOAT16 if precision == "fp16" else onnx.TensorProto.FLOAT
    for node in proto.graph.node:
        attributes = _attributes(node)
        if node.op_type == "Conv":
            assert node.input[1] in initializers, f"{node.name}: Conv weights must be an initializer"
            assert initializers[node.input[1]].data_type == float_type
        elif node.op_type == "Resize":
            assert attributes["mode"].decode() in RESIZE_MODES
            assert attributes.get("coordinate_transformation_mode", b"half_pixel").decode() in RESIZE_TRANSFORMS
            if attributes["mode"] == b"nearest":
                assert attributes.get("nearest_mode", b"round_prefer_floor").decode() in RESIZE_NEAREST
            assert not attributes.get("antialias", 0), "antialiasing is not supported"
            assert node.input[2] in initializers  # constant scales
            assert len(node.input) < 4 or not node.input[3]  # no sizes input
    for value in [*proto.graph.input, *proto.graph.output]:
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 I/O, Casts inside for fp16
    assert {t.data_type for t in initializers.values()} <= {float_type, onnx.TensorProto.INT64, onnx.TensorProto.FLOAT}
