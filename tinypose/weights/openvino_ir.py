"""PP-TinyPose weights from an OpenVINO IR exported by Model Optimizer from PaddleDetection.

Every conv except ``final_conv`` carries a folded BatchNorm (weights already scaled, the BN shift is
the ``[1,C,1,1]`` constant of the ``Add`` that follows the conv), and ``final_conv`` is followed by an
``Add`` of its real bias. Conv names come from ``rt_info``: a folded conv lists ``batch_norm2d_K.*``
in its ``fused_names`` and is named ``conv2d_K.w_0`` (PaddleDetection creates each conv right before
its BatchNorm, so both counters advance together); a conv without BatchNorm is named by its weight
constant's ``fused_names`` (``conv2d_268.w_0``). The result uses Paddle's static names, which
:func:`tinypose.weights.mapping.static_name_table` maps onto a model. The graph itself is read by
:mod:`tinypose.weights.ir_graph` (re-exported here).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import WeightsError
from .ir_graph import ELEMENT_TYPES, IREdge, IRGraph, IRLayer, IRPort, read_ir_graph
from .raw import RawWeights

__all__ = [
    "ELEMENT_TYPES",
    "IREdge",
    "IRGraph",
    "IRLayer",
    "IRPort",
    "paddle_static_arrays",
    "read_ir_graph",
    "read_openvino_graph",
    "read_openvino_ir",
]

_CONVOLUTIONS = ("Convolution", "GroupConvolution")
_BN_NAME = re.compile(r"^(batch_norm2d_\d+)\.[wb]_\d+$")
_CONV_WEIGHT_NAME = re.compile(r"^(conv2d_\d+)\.w_0$")


def _conv_weight(graph: IRGraph, conv: IRLayer) -> np.ndarray:
    """The conv kernel as float32, in torch layout (GroupConvolution [G,O/G,I/G,kh,kw] -> [O,I/G,kh,kw])."""
    weight = graph.constant_input(conv.id, conv.inputs[1].id)
    if weight is None:
        raise WeightsError(f"{graph.xml_path}: the weights of {conv.type} {conv.name} are not a constant")
    weight = weight.astype(np.float32)
    if conv.type == "GroupConvolution":
        groups, out_per_group, in_per_group, *kernel = weight.shape
        weight = weight.reshape(groups * out_per_group, in_per_group, *kernel)
    return weight


def _following_shift(graph: IRGraph, conv: IRLayer, channels: int) -> tuple[IRLayer, np.ndarray]:
    """The ``Add`` right after ``conv`` and its per-channel constant ``[1,C,1,1]``."""
    consumers = graph.consumers(conv.id)
    if len(consumers) != 1 or consumers[0][0].type != "Add":
        raise WeightsError(
            f"{graph.xml_path}: {conv.type} {conv.name} is not followed by a single Add (a folded BatchNorm "
            "shift or a bias); this is not a PP-TinyPose IR exported by Model Optimizer"
        )
    add, port = consumers[0]
    other = next(p.id for p in add.inputs if p.id != port)
    shift = graph.constant_input(add.id, other)
    if shift is None or shift.size != channels or shift.ndim != 4 or shift.shape[1] != channels:
        raise WeightsError(
            f"{graph.xml_path}: the Add {add.name} after {conv.name} does not add a [1,{channels},1,1] constant"
        )
    return add, shift.astype(np.float32).reshape(channels)


def read_openvino_graph(path: str | Path) -> RawWeights:
    """Any OpenVINO IR (``.xml``, its ``.bin`` or a folder with one ``.xml``) as :class:`RawWeights`
    with ``naming="ir_graph"``: the parsed graph, to be interpreted by a model family."""
    graph = read_ir_graph(_xml_path(path))
    return RawWeights(graph.xml_path, "openvino", {}, "ir_graph", input_hw=graph.input_hw, graph=graph)


def _xml_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix(".xml") if path.suffix == ".bin" else path


def paddle_static_arrays(graph: IRGraph) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(conv weights and biases under Paddle static names, folded BatchNorm shifts keyed by conv weight name)."""
    arrays: dict[str, np.ndarray] = {}
    shifts: dict[str, np.ndarray] = {}
    for conv in graph.by_type(*_CONVOLUTIONS):
        weight = _conv_weight(graph, conv)
        add, shift = _following_shift(graph, conv, weight.shape[0])
        norms = {m.group(1) for n in (*conv.fused_names, *add.fused_names) if (m := _BN_NAME.match(n))}
        if len(norms) > 1:
            raise WeightsError(f"{graph.xml_path}: {conv.name} has several BatchNorms fused: {sorted(norms)}")
        if norms:
            name = f"conv2d_{norms.pop().rsplit('_', 1)[1]}.w_0"
            shifts[name] = shift
        else:
            source = graph.constant_source(conv.id, conv.inputs[1].id)
            names = [conv.name, *conv.fused_names]
            if source is not None:
                names += [source.name, *source.fused_names]
                names += [layer.name for layer, _ in graph.consumers(source.id)]
                names += [n for layer, _ in graph.consumers(source.id) for n in layer.fused_names]
            found = {m.group(1) for n in names if (m := _CONV_WEIGHT_NAME.match(n))}
            if len(found) != 1:
                raise WeightsError(
                    f"{graph.xml_path}: cannot name {conv.type} {conv.name}: no batch_norm2d_K in its rt_info "
                    "fused_names and no single conv2d_K.w_0 weight name"
                )
            base = found.pop()
            name = f"{base}.w_0"
            arrays[f"{base}.b_0"] = shift
        if name in arrays:
            raise WeightsError(f"{graph.xml_path}: two convolutions map to {name}")
        arrays[name] = weight
    if not arrays:
        raise WeightsError(f"{graph.xml_path}: no convolutions in this IR")
    return arrays, shifts


def read_openvino_ir(path: str | Path) -> RawWeights:
    """Read a BatchNorm-folded PP-TinyPose OpenVINO IR as static-named conv weights + BN shifts."""
    graph = read_ir_graph(_xml_path(path))
    arrays, shifts = paddle_static_arrays(graph)
    return RawWeights(graph.xml_path, "openvino", arrays, "static", folded_shifts=shifts, input_hw=graph.input_hw)
