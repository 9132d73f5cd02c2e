"""ONNX export of PP-TinyPose: batch dynamic, H and W static, heatmaps out.

Two exporters, chosen explicitly:

* ``"graph"`` (default) lowers the fused graph (:class:`~tinypose.models.fuse.FusedTinyPose`:
  BatchNorm and channel shuffles folded) node by node with ``onnx.helper``. It takes well under a
  second, and every node is one ONNX Runtime, OpenVINO and TensorRT all run: Conv, Relu, Add,
  Split, Concat and Resize with constant ``scales`` (nearest ``asymmetric``/``floor`` for the fuse
  layers, linear ``align_corners`` in the head), so no shape arithmetic depends on the batch.
  ``precision="fp16"`` stores weights and activations in float16 behind a Cast at the input and
  output (float32 I/O), the form TensorRT's strongly typed networks want.
* ``"torch"`` runs ``torch.onnx.export(..., dynamo=True)`` on any module (fused or not); slower
  (tens of seconds here) but independent of this file's lowering, used as a cross-check.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..files import atomic_write
from ..models.fuse import ConvAct, FoldedModule, FoldedShuffleUnit, FusedTinyPose, fuse_model
from ..models.tinypose import TinyPose
from .cache import cached_artifact, export_cache_dir, state_dict_sha256

if TYPE_CHECKING:
    import onnx

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "build_onnx",
    "check_onnx",
    "export_onnx",
    "onnx_for",
]

logger = logging.getLogger("tinypose")

DEFAULT_OPSET = 17
"""Resize with ``align_corners`` needs >= 11, Split with a sizes input >= 13; 17 is read by
TensorRT 8.6+, OpenVINO 2023+ and ONNX Runtime 1.13+."""
MIN_OPSET = 13
EXPORTERS = ("graph", "torch")
INPUT_NAME = "image"
OUTPUT_NAME = "heatmaps"
BATCH_DIM = "batch"


class _Graph:
    """Accumulates ONNX nodes and initializers with unique names."""

    def __init__(self, dtype: np.dtype) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.dtype = dtype
        self.nodes: list = []
        self.initializers: list = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def constant(self, array: np.ndarray, prefix: str) -> str:
        name = self.name(prefix)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: int = 1, **attributes: Any) -> list[str]:
        names = [self.name(op.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op, inputs, names, name=self.name(f"{op}_node"), **attributes))
        return names

    def one(self, op: str, inputs: list[str], **attributes: Any) -> str:
        return self.node(op, inputs, **attributes)[0]

    def conv(self, layer: ConvAct, x: str) -> str:
        conv = layer.conv
        weight = self.constant(conv.weight.detach().cpu().numpy().astype(self.dtype), "weight")
        if conv.bias is None or isinstance(conv.padding, str):
            raise NotImplementedError(f"cannot lower {conv}: folded convs have a bias and numeric padding")
        bias = self.constant(conv.bias.detach().cpu().numpy().astype(self.dtype), "bias")
        pad_h, pad_w = conv.padding
        y = self.one(
            "Conv", [x, weight, bias], kernel_shape=list(conv.kernel_size), strides=list(conv.stride),
            pads=[pad_h, pad_w, pad_h, pad_w], dilations=list(conv.dilation), group=conv.groups,
        )  # fmt: skip
        return self.one("Relu", [y]) if layer.relu else y

    def split(self, x: str, sizes: list[int]) -> list[str]:
        if len(sizes) == 1:
            return [x]
        return self.node("Split", [x, self.constant(np.asarray(sizes, np.int64), "split")], len(sizes), axis=1)

    def resize(self, x: str, scale: float, mode: str) -> str:
        scales = self.constant(np.asarray([1.0, 1.0, scale, scale], np.float32), "scales")
        if mode == "nearest":
            attributes = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
        else:
            attributes = {"mode": "linear", "coordinate_transformation_mode": "align_corners"}
        return self.one("Resize", [x, "", scales], **attributes)

    def run(self, layers: nn.Module, x: str) -> str:
        """Lower a Sequential of ConvAct / nearest Upsample / FoldedShuffleUnit (or one of them)."""
        for layer in layers if isinstance(layers, nn.Sequential) else [layers]:
            if isinstance(layer, ConvAct):
                x = self.conv(layer, x)
            elif isinstance(layer, FoldedShuffleUnit):
                parts = self.split(x, layer.input_sizes)
                parts += self.split(self.run(layer.branch, parts[-1]), layer.branch_sizes)
                x = self.one("Concat", [parts[k] for k in layer.concat_order], axis=1)
            elif isinstance(layer, nn.Upsample):
                if layer.mode != "nearest" or layer.scale_factor is None:
                    raise NotImplementedError(f"cannot lower {layer}")
                x = self.resize(x, float(layer.scale_factor), "nearest")  # type: ignore[arg-type]
            elif not isinstance(layer, nn.Identity):
                raise NotImplementedError(f"no ONNX lowering for {type(layer).__name__}")
        return x


def _lower(fused: FusedTinyPose, graph: _Graph, x: str) -> str:
    """FusedTinyPose.forward, node for node (keep the two in step)."""
    stem = fused.stem
    stem_out = cast(ConvAct, stem.conv1[-1]).conv.out_channels
    x1, x2 = graph.split(graph.run(stem.conv1, x), [stem_out // 2] * 2)
    branches = [graph.one("Concat", [graph.run(stem.branch1, x1), graph.run(stem.branch2, x2)], axis=1)]
    for transition, stage in zip(cast(Iterable[nn.ModuleList], fused.transitions), fused.stages):
        branches = [graph.run(layer, branches[min(j, len(branches) - 1)]) for j, layer in enumerate(transition)]
        for module in cast(Iterable[FoldedModule], stage):
            fuse_layers = cast(Sequence[nn.ModuleList], module.fuse_layers)
            xs = [graph.run(layers, xi) for layers, xi in zip(module.layers, branches)]
            f0 = graph.one("Add", [xs[0], xs[0]])
            for j in range(1, module.num_branches):
                f0 = graph.one("Add", [f0, graph.run(fuse_layers[0][j], xs[j])])
            outputs = [graph.one("Relu", [f0])]
            for i in range(1, module.num_branches):
                y = graph.run(fuse_layers[i][0], f0)
                for j in range(1, module.num_branches):
                    y = graph.one("Add", [y, xs[j] if j == i else graph.run(fuse_layers[i][j], xs[j])])
                outputs.append(graph.one("Relu", [y]))
            branches = outputs
    # H and W are static, so the head's upsampling is a constant scale (the ratio of strides).
    strides = fused.out_strides[::-1]
    last: str | None = None
    for k, (project, feature) in enumerate(zip(fused.head, branches[::-1])):
        if last is not None:
            feature = graph.one("Add", [feature, graph.resize(last, strides[k - 1] / strides[k], "linear")])
        last = graph.run(project, feature)
    assert last is not None
    return graph.conv(ConvAct(fused.final_conv), last)


def _as_fused(model: nn.Module) -> FusedTinyPose:
    if isinstance(model, FusedTinyPose):
        return model
    if isinstance(model, TinyPose):
        return fuse_model(model)
    raise TypeError(f"the graph exporter takes a TinyPose or FusedTinyPose, got {type(model).__name__}")


def build_onnx(
    model: nn.Module, opset: int = DEFAULT_OPSET, precision: str = "fp32", metadata: dict[str, str] | None = None
) -> onnx.ModelProto:
    """Lower ``model`` (TinyPose or FusedTinyPose) to an in-memory ONNX model (see module doc)."""
    import onnx
    from onnx import TensorProto, helper

    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old: the graph needs >= {MIN_OPSET} (Split sizes input, Resize)")
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be 'fp32' or 'fp16', not {precision!r}")
    fused = _as_fused(model)
    spec = fused.spec
    graph = _Graph(np.dtype(np.float16 if precision == "fp16" else np.float32))
    x = INPUT_NAME
    if precision == "fp16":
        x = graph.one("Cast", [x], to=TensorProto.FLOAT16)
    y = _lower(fused, graph, x)
    if precision == "fp16":
        y = graph.one("Cast", [y], to=TensorProto.FLOAT)
    graph.nodes.append(helper.make_node("Identity", [y], [OUTPUT_NAME], name="output"))
    heatmap_w, heatmap_h = spec.heatmap_size
    inputs = [
        helper.make_tensor_value_info(
            INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, 3, spec.input_height, spec.input_width]
        )
    ]
    outputs = [
        helper.make_tensor_value_info(
            OUTPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, spec.num_joints, heatmap_h, heatmap_w]
        )
    ]
    onnx_graph = helper.make_graph(graph.nodes, spec.name, inputs, outputs, graph.initializers)
    proto = helper.make_model(
        onnx_graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tinypose",
        doc_string=f"{spec.name}: normalized RGB [N,3,{spec.input_height},{spec.input_width}] -> heatmaps",
    )  # fmt: skip
    proto.ir_version = min(proto.ir_version, 8)  # readable by runtimes from 2022 on
    onnx.helper.set_model_props(proto, {**_metadata(fused, precision), **(metadata or {})})
    return proto


def _metadata(fused: FusedTinyPose, precision: str) -> dict[str, str]:
    spec = fused.spec
    return {
        "model_name": spec.name,
        "input_size": f"{spec.input_width}x{spec.input_height}",
        "heatmap_size": "x".join(map(str, spec.heatmap_size)),
        "mean": ",".join(map(str, spec.mean)),
        "std": ",".join(map(str, spec.std)),
        "precision": precision,
        "tinypose_version": __version__,
    }


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    precision: str = "fp32",
    exporter: str = "graph",
    check: bool = True,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``model`` (TinyPose, FusedTinyPose, or any module with ``exporter="torch"``) as ONNX.

    The file is written to a temp name and renamed, so a crash never leaves a half file behind.
    ``check`` runs ``onnx.checker`` (full) on the result.
    """
    import onnx

    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, not {exporter!r}")
    path = Path(path)
    with atomic_write(path) as temporary:
        if exporter == "graph":
            onnx.save(build_onnx(model, opset, precision, metadata), temporary)
        else:
            _export_with_torch(model, temporary, opset, precision)
        if check:
            check_onnx(temporary)
    return path


def _export_with_torch(model: nn.Module, path: Path, opset: int, precision: str) -> None:
    """``torch.onnx.export`` with the dynamo exporter (explicitly: the default changed in torch 2.9)."""
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError("the torch exporter needs a model with a .spec (TinyPose or FusedTinyPose)")
    if precision != "fp32":
        raise ValueError("the torch exporter writes fp32 only; use exporter='graph' for fp16")
    example = torch.zeros(2, 3, spec.input_height, spec.input_width)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        model.eval(), (example,), dynamo=True, opset_version=max(opset, 18), input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), optimize=True, verbose=False,
    )  # fmt: skip
    if program is None:  # only the legacy (dynamo=False) exporter returns nothing
        raise RuntimeError(f"torch.onnx.export returned no program for {spec.name}")
    program.save(str(path), external_data=False)


def check_onnx(path: str | Path) -> None:
    """``onnx.checker`` with shape inference; raises ``onnx.checker.ValidationError`` naming ``path``."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as error:
        raise onnx.checker.ValidationError(f"{path}: invalid ONNX model: {error}") from error


def onnx_for(
    model: TinyPose,
    runtime: str,
    runtime_version: str,
    *,
    cache_dir: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    precision: str = "fp32",
) -> Path:
    """The cached ONNX export of ``model`` for ``runtime`` (exported now when missing or stale)."""
    import onnx

    spec = model.spec
    if precision not in ("fp32", "fp16"):
        raise ValueError(
            f"precision {precision!r}: the ONNX is fp32 or fp16 (int8: backend='openvino', precision='int8')"
        )
    fields = {
        "model_name": spec.name,
        "weights_sha256": state_dict_sha256(model),
        "tinypose": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "runtime": runtime,
        "runtime_version": runtime_version,
        "opset": opset,
        "precision": precision,
        "exporter": "graph",
    }
    folder = export_cache_dir(cache_dir)

    def build(path: Path) -> None:
        logger.info("exporting %s to ONNX for %s (%s) in %s", spec.name, runtime, precision, folder)
        export_onnx(model, path, opset=opset, precision=precision)

    return cached_artifact(folder, f"{spec.name}-{precision}-{runtime}", ".onnx", fields, build)
