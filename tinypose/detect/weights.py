"""The PP-PicoDet name mapping: OpenVINO IR (BatchNorm folded, fp16), Paddle ``.pdparams``, safetensors.

:func:`picodet_arrays` is the detector family's ``filter_fn`` for the shared loader
(:data:`tinypose.detect.picodet.DETECTOR_WEIGHTS`): it maps what a reader returned onto
:class:`~tinypose.detect.picodet.PicoDet`'s state-dict names; the loader then checks the result
strictly (names, shapes, finite values) before anything is loaded. This module takes the model as
an argument and never imports it.

OpenVINO IR: the released IRs went Paddle -> ONNX -> OpenVINO, so parameter names are not
reliable. Convs are matched to modules by **execution order**: the IR keeps the ONNX node names,
``BatchNormalization_N`` on the bias ``Add`` that follows each BN-folded conv and ``Conv_N`` on
convs with a real bias, numbered in the order the Paddle program ran them; our modules are
ordered by running the model once with hooks. Each pair is then checked on weight shape, groups,
stride and padding. The folded shift becomes a BatchNorm that computes ``x + shift``. Two graph
constants that differ from Paddle's are carried over as buffers: the fp16-rounded HardSigmoid
slope and the score epsilon (dropped by fp16 compression).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..weights.errors import WeightsError
from ..weights.ir_graph import IRGraph, IRLayer, read_ir_graph
from ..weights.loader import shift_batchnorm_state
from ..weights.mapping import paddle_to_torch_name
from ..weights.raw import RawWeights
from .spec import DetectorSpec

__all__ = [
    "ENV_DETECTOR_WEIGHTS",
    "IRConv",
    "IRGraphConstants",
    "check_picodet_file",
    "convs_from_graph",
    "execution_order",
    "picodet_arrays",
    "read_detector_ir",
    "state_from_ir_convs",
    "state_from_pdparams",
]

ENV_DETECTOR_WEIGHTS = "TINYPOSE_DETECTOR_WEIGHTS"
"""Environment variable naming an explicit detector weights file (``$TINYPOSE_WEIGHTS`` is the pose model's)."""


@dataclass
class IRConv:
    """One convolution of an IR graph with what follows it: its bias/BatchNorm-shift ``Add``."""

    name: str
    order: tuple[str, int]
    """``("bn", N)`` for a BN-folded conv (ONNX ``BatchNormalization_N``), ``("conv", N)`` for a biased one."""
    weight: np.ndarray
    """``[out, in/groups, kh, kw]`` float32 (grouped IR weights already reshaped)."""
    groups: int
    shift: np.ndarray
    strides: tuple[int, int]
    pads_begin: tuple[int, int]
    pads_end: tuple[int, int]


@dataclass
class IRGraphConstants:
    """Per-graph scalar constants that the torch model keeps as buffers."""

    hardsigmoid_slopes: list[float]
    score_eps: float
    input_hw: tuple[int, int] | None = None


def execution_order(model: nn.Module, spec: DetectorSpec) -> tuple[list[tuple[str, str]], list[str]]:
    """(conv, BatchNorm) pairs in the order the BatchNorms run, and biased convs in run order."""
    order: list[str] = []
    modules = dict(model.named_modules())
    hooks = [
        module.register_forward_pre_hook(lambda _m, _x, name=name: order.append(name))
        for name, module in modules.items()
        if isinstance(module, (nn.Conv2d, nn.BatchNorm2d))
    ]
    try:
        size = spec.input_size
        parameter = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, dtype=parameter.dtype, device=parameter.device))
    finally:
        for hook in hooks:
            hook.remove()
    folded: list[tuple[str, str]] = []
    biased: list[str] = []
    last_conv = None
    for name in order:
        module = modules[name]
        if isinstance(module, nn.Conv2d):
            last_conv = name
            if module.bias is not None:
                biased.append(name)
        else:
            if last_conv is None:
                raise RuntimeError(f"BatchNorm {name} runs before any conv")
            folded.append((last_conv, name))
    return folded, biased


def _check_conv(conv: nn.Conv2d, ir: IRConv, module_name: str, source: str) -> None:
    expected = (tuple(conv.weight.shape), conv.groups, tuple(conv.stride), tuple(conv.padding))
    found = (tuple(ir.weight.shape), ir.groups, tuple(ir.strides), tuple(ir.pads_begin))
    if expected != found or tuple(ir.pads_begin) != tuple(ir.pads_end):
        raise WeightsError(
            f"{source}: IR conv {ir.name} (weight {found[0]}, groups {found[1]}, stride {found[2]}, pads "
            f"{ir.pads_begin}/{ir.pads_end}) does not match {module_name} (weight {expected[0]}, groups "
            f"{expected[1]}, stride {expected[2]}, padding {expected[3]}); this is not a PP-PicoDet "
            f"{type(conv).__name__} layout this model knows"
        )


def state_from_ir_convs(
    model: nn.Module, spec: DetectorSpec, convs: list[IRConv], constants: IRGraphConstants, source: str
) -> dict[str, np.ndarray]:
    """Map IR convs onto ``model`` by execution order, unfolding BatchNorm to ``x + shift``."""
    size = spec.input_size
    if constants.input_hw is not None and tuple(constants.input_hw) != (size, size):
        height, width = constants.input_hw
        raise WeightsError(
            f"{source}: this IR takes {height}x{width} inputs, {spec.name} takes {size}x{size}; "
            "pick the detector of that size"
        )
    folded, biased = execution_order(model, spec)
    ir_folded = sorted((c for c in convs if c.order[0] == "bn"), key=lambda c: c.order[1])
    ir_biased = sorted((c for c in convs if c.order[0] == "conv"), key=lambda c: c.order[1])
    if len(ir_folded) != len(folded) or len(ir_biased) != len(biased):
        raise WeightsError(
            f"{source}: the IR has {len(ir_folded)} BatchNorm-folded and {len(ir_biased)} biased convs, "
            f"{spec.name} has {len(folded)} and {len(biased)}; not this detector"
        )
    modules = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    state: dict[str, np.ndarray] = {}
    for (conv_name, norm_name), ir in zip(folded, ir_folded):
        _check_conv(modules[conv_name], ir, conv_name, source)
        channels = ir.weight.shape[0]
        if ir.shift.shape != (channels,):
            raise WeightsError(
                f"{source}: shift after IR conv {ir.name} has {ir.shift.size} values, expected {channels}"
            )
        state[f"{conv_name}.weight"] = ir.weight
        state.update(shift_batchnorm_state(norm_name, ir.shift))
    for conv_name, ir in zip(biased, ir_biased):
        _check_conv(modules[conv_name], ir, conv_name, source)
        state[f"{conv_name}.weight"] = ir.weight
        state[f"{conv_name}.bias"] = ir.shift
    slopes = [name for name in model.state_dict() if name.endswith(".slope")]
    if len(constants.hardsigmoid_slopes) != len(slopes):
        raise WeightsError(
            f"{source}: the IR has {len(constants.hardsigmoid_slopes)} HardSigmoid layers, the model {len(slopes)}"
        )
    for name, slope in zip(slopes, constants.hardsigmoid_slopes):
        state[name] = np.asarray(slope, np.float32)
    state["head.score_eps"] = np.asarray(constants.score_eps, np.float32)
    return state


_ONNX_BN = re.compile(r"^BatchNormalization_(\d+)$")
_ONNX_CONV = re.compile(r"^Conv_(\d+)$")


def read_detector_ir(xml_path: str | Path) -> tuple[list[IRConv], IRGraphConstants]:
    """Convs (with their following bias ``Add``) and scalar constants of a PP-PicoDet OpenVINO IR."""
    path = Path(xml_path)
    return convs_from_graph(read_ir_graph(path.with_suffix(".xml") if path.suffix == ".bin" else path))


def _pair(text: str, name: str, layer_name: str, source: str) -> tuple[int, int]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 2:
        raise WeightsError(f"{source}: {layer_name} has {name}={text!r}; expected two integers (2-D conv)")
    return values[0], values[1]


def _execution_key(conv: IRLayer, add: IRLayer, source: str) -> tuple[str, int]:
    """Where the ONNX exporter placed this conv: ``BatchNormalization_N`` or ``Conv_N``."""
    for name in (add.name, *add.fused_names, *conv.fused_names):
        if match := _ONNX_BN.match(name):
            return "bn", int(match.group(1))
    for name in (conv.name, *conv.fused_names):
        if match := _ONNX_CONV.match(name):
            return "conv", int(match.group(1))
    raise WeightsError(
        f"{source}: cannot place {conv.type} {conv.name} in execution order: neither it nor the Add after it "
        "carries an ONNX node name (BatchNormalization_N / Conv_N); only IRs converted from the Paddle2ONNX "
        "export of PP-PicoDet are supported"
    )


def convs_from_graph(graph: IRGraph) -> tuple[list[IRConv], IRGraphConstants]:
    source = str(graph.xml_path)
    convs: list[IRConv] = []
    for conv in graph.by_type("Convolution", "GroupConvolution"):
        weight = graph.constant_input(conv.id, conv.inputs[1].id)
        if weight is None:
            raise WeightsError(f"{source}: the weights of {conv.type} {conv.name} are not a constant")
        weight = weight.astype(np.float32)
        groups = 1
        if conv.type == "GroupConvolution":
            groups, per_group, *rest = weight.shape
            weight = weight.reshape(groups * per_group, *rest)
        consumers = graph.consumers(conv.id)
        if len(consumers) != 1 or consumers[0][0].type != "Add":
            raise WeightsError(
                f"{source}: {conv.type} {conv.name} is not followed by one Add (bias or folded BatchNorm)"
            )
        add, port = consumers[0]
        shift = graph.constant_input(add.id, next(p.id for p in add.inputs if p.id != port))
        if shift is None or shift.size != weight.shape[0]:
            raise WeightsError(f"{source}: the Add {add.name} after {conv.name} does not add a per-channel constant")
        attributes = conv.attributes
        if _pair(attributes.get("dilations", "1, 1"), "dilations", conv.name, source) != (1, 1):
            raise WeightsError(f"{source}: {conv.name} is dilated; PP-PicoDet has no dilated convs")
        convs.append(
            IRConv(
                name=conv.name,
                order=_execution_key(conv, add, source),
                weight=weight,
                groups=groups,
                shift=shift.astype(np.float32).reshape(-1),
                strides=_pair(attributes.get("strides", ""), "strides", conv.name, source),
                pads_begin=_pair(attributes.get("pads_begin", ""), "pads_begin", conv.name, source),
                pads_end=_pair(attributes.get("pads_end", ""), "pads_end", conv.name, source),
            )
        )
    slopes = []
    for layer in graph.by_type("HardSigmoid"):
        alpha, beta = graph.constant_input(layer.id, 1), graph.constant_input(layer.id, 2)
        if alpha is None or beta is None or float(beta) != 0.5:
            raise WeightsError(f"{source}: HardSigmoid {layer.name} is not clip(alpha * x + 0.5, 0, 1) with constants")
        slopes.append(float(alpha))
    epsilons = set()
    for layer in graph.by_type("Sqrt"):
        producer, _ = graph.producer(layer.id, layer.inputs[0].id)
        if producer.type == "Add":
            values = [graph.constant_input(producer.id, p.id) for p in producer.inputs]
            constant = next((v for v in values if v is not None), None)
            if constant is None or constant.size != 1:
                raise WeightsError(f"{source}: Sqrt {layer.name} follows an Add without a scalar constant")
            epsilons.add(float(constant.reshape(())))
        else:
            epsilons.add(0.0)
    if len(epsilons) != 1:
        raise WeightsError(f"{source}: expected one score epsilon before the Sqrt layers, found {sorted(epsilons)}")
    return convs, IRGraphConstants(slopes, epsilons.pop(), graph.input_hw)


_PADDLE_UNUSED = re.compile(
    r"^head\.(p\d+_feat\.scale_reg|distribution_project\.project|head_(cls|reg)\d+\.(weight|bias))$"
)
"""Entries of a PicoDet ``.pdparams`` with no torch counterpart: GFLHead's unused ``ScaleReg``s, the
fixed DFL projection, and ``head_cls{i}``/``head_reg{i}``, which alias ``head_{cls,reg}_list.{i}``."""


def state_from_pdparams(
    arrays: dict[str, np.ndarray], model: nn.Module, spec: DetectorSpec, source: str
) -> dict[str, np.ndarray]:
    """Rename a PicoDet ``.pdparams`` state dict to ours, checking the aliased and fixed entries."""
    state: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        match = _PADDLE_UNUSED.match(name)
        if not match:
            state[paddle_to_torch_name(name)] = value
            continue
        if name.endswith("distribution_project.project"):
            expected = np.linspace(0, spec.reg_max, spec.reg_max + 1, dtype=np.float32)
            if not np.allclose(value, expected):
                raise WeightsError(f"{source}: {name} is {value}, expected 0..{spec.reg_max}")
        elif match.group(2):
            level = re.search(r"\d+", name.split(".")[1]).group(0)  # type: ignore[union-attr]
            alias = f"head.head_{match.group(2)}_list.{level}.{match.group(3)}"
            if alias in arrays and not np.array_equal(arrays[alias], value):
                raise WeightsError(f"{source}: {name} differs from {alias}, which upstream shares with it")
            if alias not in arrays:
                state[alias] = value
    for name, value in model.state_dict().items():
        if name.endswith(".slope") or name == "head.score_eps":
            state.setdefault(name, value.numpy())
    return state


def check_picodet_file(raw: RawWeights) -> None:
    """The detector family's ``check_fn``: an IR must be a Paddle2ONNX export whose convs can be placed
    in execution order (read again, cheaply, by :func:`picodet_arrays`)."""
    if raw.naming == "ir_graph" and raw.graph is not None:
        convs_from_graph(raw.graph)


def picodet_arrays(raw: RawWeights, model: nn.Module, spec: DetectorSpec) -> dict[str, np.ndarray]:
    """The detector family's ``filter_fn``: ``raw`` under ``model``'s state-dict names.

    An IR graph is matched by execution order (module docstring), a ``.pdparams`` renamed with its
    aliases checked, safetensors (our own names) taken as they are.
    """
    source = str(raw.source)
    if raw.naming == "ir_graph" and raw.graph is not None:
        convs, constants = convs_from_graph(raw.graph)
        return state_from_ir_convs(model, spec, convs, constants, source)
    if raw.naming == "structured":
        return state_from_pdparams(raw.arrays, model, spec, source)
    if raw.naming == "torch":
        return raw.arrays
    raise WeightsError(
        f"{source}: PP-PicoDet weights are read from OpenVINO IR, .pdparams or .safetensors, not {raw.format}"
    )
