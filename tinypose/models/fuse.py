"""Inference-time graph simplification for PP-TinyPose: BatchNorm folding and channel-shuffle folding.

Two levels, each measured in ``benchmarks/bench_backends.py``:

* :func:`fuse_batchnorm` folds every BatchNorm into the conv before it (computed in float64) and
  keeps the module structure; heatmaps change by ~1e-6. Works on any module built from
  ``Conv2d -> BatchNorm2d`` pairs inside ``nn.Sequential`` containers.
* :func:`fuse_model` rebuilds a :class:`~tinypose.models.TinyPose` as :class:`FusedTinyPose`, a plain
  ``nn.Module`` with BatchNorm folded *and every channel shuffle removed*. A shuffle is a fixed
  channel permutation; instead of moving data, each tensor is kept in a *storage order* (which
  logical channel sits in which slot) and the permutation is absorbed by the weights of the convs
  that read or write it: 1x1 convs permute input columns / output rows, depthwise convs permute
  their channels, and the concat of each shuffle unit writes its pieces straight into the order the
  next unit wants. The storage order of a branch is chosen so that the next unit's split is always a
  contiguous slice: channels are sorted by how many units they still pass through before a conv
  consumes them. The residual additions of the fuse layers and the head line up because the conv
  on the other side of each addition writes its output rows in the same order. The ``2 *`` of the
  fuse-layer quirk is folded into conv weights where it multiplies a conv output (exact in binary
  floating point). What is left per shuffle unit: two slices, three convs, one concat.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterable, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from .litehrnet import DepthwiseSeparable, LiteHRNet, LiteHRNetModule, ShuffleUnit, Stem
from .tinypose import TinyPose

__all__ = ["ConvAct", "FoldedShuffleUnit", "FusedTinyPose", "fuse_batchnorm", "fuse_model"]

Order = list[int]
"""Storage order of a tensor: ``order[slot]`` is the logical channel stored at ``slot``."""


def _pair(size: tuple[int, ...]) -> tuple[int, int]:
    """A Conv2d's stored size (typed as a tuple of any length) as the pair it is."""
    first, second = size
    return first, second


def _bias(conv: nn.Conv2d) -> Tensor:
    """The bias of a folded conv (folding always gives one)."""
    if conv.bias is None:
        raise ValueError("expected a folded conv with a bias")
    return conv.bias


def _fold_conv_bn(conv: nn.Conv2d, norm: nn.BatchNorm2d | None) -> nn.Conv2d:
    """A new conv with bias computing ``norm(conv(x))`` (eval-mode statistics), folded in float64."""
    padding = conv.padding if isinstance(conv.padding, str) else _pair(conv.padding)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, _pair(conv.kernel_size), _pair(conv.stride), padding,
        _pair(conv.dilation), conv.groups, bias=True, padding_mode=conv.padding_mode,
    )  # fmt: skip
    weight, bias = conv.weight.detach().double(), None if conv.bias is None else conv.bias.detach().double()
    if norm is not None:
        if norm.running_mean is None or norm.running_var is None:
            raise ValueError("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
        weight, bias = fuse_conv_bn_weights(
            weight, bias, norm.running_mean.double(), norm.running_var.double(), norm.eps,
            None if norm.weight is None else norm.weight.detach().double(),
            None if norm.bias is None else norm.bias.detach().double(),
        )  # fmt: skip
    if bias is None:
        bias = torch.zeros(conv.out_channels, dtype=torch.float64)
    with torch.no_grad():
        fused.weight.copy_(weight.to(conv.weight.dtype))
        _bias(fused).copy_(bias.detach().to(conv.weight.dtype))
    return fused.to(conv.weight.device)


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Copy of ``model`` in eval mode with each ``Conv2d -> BatchNorm2d`` pair of a ``Sequential``
    replaced by one biased conv (the BatchNorm becomes ``nn.Identity``); same forward, fewer ops."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            conv, norm = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                module._modules[first] = _fold_conv_bn(conv, norm)
                module._modules[second] = nn.Identity()
    return model


class ConvAct(nn.Module):
    """A biased conv (BatchNorm folded in) with an optional ReLU, the unit of a fused graph."""

    def __init__(self, conv: nn.Conv2d, relu: bool = False) -> None:
        super().__init__()
        self.conv = conv
        self.relu = relu

    @property
    def depthwise(self) -> bool:
        conv = self.conv
        return conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return F.relu(x, inplace=True) if self.relu else x

    def extra_repr(self) -> str:
        return f"relu={self.relu}"


def _convs_of(module: nn.Module) -> list[nn.Module]:
    """Flatten a ConvNorm / Sequential(conv, bn, ..., ReLU, Upsample) path into ConvActs (BN folded)."""
    layers = list(module.modules())[1:] if isinstance(module, nn.Sequential) else [module]
    flat = [m for m in layers if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Upsample))]
    out: list[nn.Module] = []
    for index, layer in enumerate(flat):
        if isinstance(layer, nn.Conv2d):
            following = flat[index + 1] if index + 1 < len(flat) else None
            out.append(ConvAct(_fold_conv_bn(layer, following if isinstance(following, nn.BatchNorm2d) else None)))
        elif isinstance(layer, nn.ReLU):
            if not out or not isinstance(out[-1], ConvAct) or out[-1].relu:
                raise ValueError(f"ReLU without a conv before it in {type(module).__name__}")
            out[-1].relu = True
        elif isinstance(layer, nn.Upsample):
            out.append(copy.deepcopy(layer))
    return out


def _permute_(layers: Sequence[nn.Module], in_order: Order | None, out_order: Order | None, scale: float = 1.0) -> None:
    """Make a conv path read a tensor stored in ``in_order`` and write its output in ``out_order``.

    Depthwise convs pass the order through (their channels are permuted); the first dense conv
    absorbs it in its input columns. The last conv's output rows are permuted (and scaled by
    ``scale``, exact for powers of two); layers after it must be channel-wise (ReLU, Upsample).
    """
    convs = [m.conv for m in layers if isinstance(m, ConvAct)]
    with torch.no_grad():
        carried = in_order
        for conv in convs:
            if carried is None:
                break
            index = torch.as_tensor(carried, device=conv.weight.device)
            if conv.groups > 1:
                if not (conv.groups == conv.in_channels == conv.out_channels):
                    raise ValueError("only depthwise grouped convs can carry a channel order")
                conv.weight.copy_(conv.weight[index])
                _bias(conv).copy_(_bias(conv)[index])
            else:
                conv.weight.copy_(conv.weight[:, index])
                carried = None
        last = convs[-1]
        if carried is not None:
            if out_order is not None and list(carried) != list(out_order):
                raise ValueError("a path of depthwise convs cannot change the channel order")
        elif out_order is not None:
            if last.groups > 1:
                raise ValueError("the output order can only be set by a dense conv")
            index = torch.as_tensor(out_order, device=last.weight.device)
            last.weight.copy_(last.weight[index])
            _bias(last).copy_(_bias(last)[index])
        if scale != 1.0:
            last.weight.mul_(scale)
            _bias(last).mul_(scale)


def _time_to_consume(channel: int, channels: int, units_left: int) -> float:
    """Units a logical channel at a shuffle-unit input passes through before a conv reads it.

    In a unit the upper half ``[C/2, C)`` goes through the branch convs; a lower-half channel ``m``
    passes and, after the shuffle, sits at ``2m`` of the next unit's input. ``inf`` = never (within
    the remaining ``units_left`` units).
    """
    half = channels // 2
    time = 1
    while units_left > 0:
        if channel >= half:
            return float(time)
        channel, time, units_left = 2 * channel, time + 1, units_left - 1
    return math.inf


def _chain_start_order(channels: int, units_left: int) -> Order:
    """Storage order for a fresh tensor (written by a conv) that feeds ``units_left`` shuffle units."""
    return sorted(range(channels), key=lambda c: (-_time_to_consume(c, channels, units_left), c))


def _coalesce(sources: Sequence[tuple[int, int]]) -> tuple[tuple[int, int, int], ...]:
    """(source, position) per output slot -> (source, start, stop) runs of consecutive positions."""
    pieces: list[list[int]] = []
    for source, position in sources:
        if pieces and pieces[-1][0] == source and pieces[-1][2] == position:
            pieces[-1][2] += 1
        else:
            pieces.append([source, position, position + 1])
    return tuple((s, a, b) for s, a, b in pieces)


class FoldedShuffleUnit(nn.Module):
    """A ShuffleUnit whose split, concat and shuffle became two splits and one concat in storage order.

    The input splits into ``input_sizes`` runs (the last run, ``x[:, split:]``, feeds ``branch``),
    the branch output into ``branch_sizes`` runs, and the output concatenates the runs
    ``concat_order`` names (index into ``input runs + branch runs``).
    """

    def __init__(
        self, split: int, branch: nn.Sequential, pieces: tuple[tuple[int, int, int], ...], channels: int
    ) -> None:
        super().__init__()
        self.split = split
        self.branch = branch
        runs = {source: sorted((a, b) for s, a, b in pieces if s == source) for source in (0, 1)}
        runs[0].append((split, channels))
        for source, limit in ((0, channels), (1, channels - split)):
            bounds = [a for a, _ in runs[source]] + [limit]
            if bounds[0] != 0 or any(b != c for (_, b), c in zip(runs[source], bounds[1:])):
                raise AssertionError("folded shuffle pieces must tile their source")
        self.input_sizes = [b - a for a, b in runs[0]]
        self.branch_sizes = [b - a for a, b in runs[1]]
        index = {(0, a, b): k for k, (a, b) in enumerate(runs[0])}
        index.update({(1, a, b): len(runs[0]) + k for k, (a, b) in enumerate(runs[1])})
        self.concat_order = [index[piece] for piece in pieces]

    def forward(self, x: Tensor) -> Tensor:
        parts = list(x.split(self.input_sizes, dim=1))
        parts += self.branch(parts[-1]).split(self.branch_sizes, dim=1)
        return torch.cat([parts[k] for k in self.concat_order], dim=1)

    def extra_repr(self) -> str:
        return f"split={self.split}, pieces={len(self.concat_order)}"


def _fold_unit(unit: ShuffleUnit, in_order: Order, units_left_after: int) -> tuple[FoldedShuffleUnit, Order]:
    """Fold one unit whose input is stored in ``in_order`` (upper half at the tail); returns the
    folded unit and the storage order of its output (chosen for the ``units_left_after`` next units)."""
    channels = len(in_order)
    half = channels // 2
    if sorted(in_order[half:]) != list(range(half, channels)):
        raise AssertionError("the branch half of a shuffle unit must sit at the tail of its input")
    branch = _convs_of(unit.branch2)
    position_in = {logical: slot for slot, logical in enumerate(in_order)}
    # After the shuffle, output channel 2m is passthrough channel m and 2m+1 is branch channel m.
    times = [_time_to_consume(o, channels, units_left_after) for o in range(channels)]
    groups = sorted({times[o] for o in range(channels)}, reverse=True)
    best: tuple[tuple[tuple[int, int, int], ...], Order, Order] | None = None
    for parity in (0, 1):
        out_order: Order = []
        for rank, time in enumerate(groups):
            passed = sorted((o for o in range(0, channels, 2) if times[o] == time), key=lambda o: position_in[o // 2])
            computed = [o for o in range(1, channels, 2) if times[o] == time]
            # Alternate [pass, branch], [branch, pass] so neighbouring groups share a run.
            out_order += passed + computed if (rank + parity) % 2 == 0 else computed + passed
        branch_order = [o // 2 for o in out_order if o % 2 == 1]
        branch_slot = {m: slot for slot, m in enumerate(branch_order)}
        sources = [(0, position_in[o // 2]) if o % 2 == 0 else (1, branch_slot[o // 2]) for o in out_order]
        pieces = _coalesce(sources)
        if best is None or len(pieces) < len(best[0]):
            best = (pieces, out_order, branch_order)
    assert best is not None
    pieces, out_order, branch_order = best
    _permute_(branch, [o - half for o in in_order[half:]], branch_order)
    return FoldedShuffleUnit(half, nn.Sequential(*branch), pieces, channels), out_order


class FoldedStem(nn.Module):
    """The stem without its final shuffle: output = concat(branch1, branch2), shuffled order."""

    def __init__(self, stem: Stem) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(*_convs_of(stem.conv1))
        self.branch1 = nn.Sequential(*_convs_of(stem.branch1[0]), *_convs_of(stem.branch1[1]))
        self.branch2 = nn.Sequential(
            *_convs_of(stem.expand_conv), *_convs_of(stem.depthwise_conv), *_convs_of(stem.linear_conv)
        )
        channels = stem.conv1.conv.out_channels
        half = channels // 2
        # concat slot g*half + k holds logical (shuffled) channel 2k + g.
        self.out_order: Order = [2 * (slot % half) + slot // half for slot in range(channels)]

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = self.conv1(x).chunk(2, dim=1)
        return torch.cat([self.branch1(x1), self.branch2(x2)], dim=1)


class FoldedModule(nn.Module):
    """A LiteHRNet module on storage-ordered branches; same arithmetic as :class:`LiteHRNetModule`."""

    def __init__(self, module: LiteHRNetModule, orders: list[Order], units_left: list[int]) -> None:
        super().__init__()
        self.num_branches = module.num_branches
        layers = []
        for i, branch in enumerate(module.layers):
            units = []
            for unit in cast(Iterable[ShuffleUnit], branch):
                units_left[i] -= 1
                folded, orders[i] = _fold_unit(unit, orders[i], units_left[i])
                units.append(folded)
            layers.append(nn.Sequential(*units))
        self.layers = nn.ModuleList(layers)
        fuse_layers = []
        source_fuse_layers = cast(Sequence[nn.ModuleList], module.fuse_layers)
        for i in range(self.num_branches):
            row: list[nn.Module] = []
            for j in range(self.num_branches):
                if j == i:
                    row.append(nn.Identity())
                    continue
                path = _convs_of(source_fuse_layers[i][j])
                # fi = 2 * Fi0(f0) + ...: the factor 2 goes into Fi0's last conv.
                _permute_(path, orders[j], orders[i], scale=2.0 if (i > 0 and j == 0) else 1.0)
                row.append(nn.Sequential(*path))
            fuse_layers.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse_layers)

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        fuse_layers = cast(Sequence[nn.ModuleList], self.fuse_layers)  # as LiteHRNetModule's
        x = [branch(xi) for branch, xi in zip(self.layers, x)]
        f0 = x[0] + x[0]
        for j in range(1, self.num_branches):
            f0 = f0 + fuse_layers[0][j](x[j])
        outputs = [F.relu(f0)]
        for i in range(1, self.num_branches):
            y = fuse_layers[i][0](f0)
            for j in range(1, self.num_branches):
                y = y + (x[j] if j == i else fuse_layers[i][j](x[j]))
            outputs.append(F.relu(y, inplace=True))
        return outputs


class FusedTinyPose(nn.Module):
    """PP-TinyPose for inference: BatchNorm folded, channel shuffles folded into the convs.

    Same input and output as :class:`~tinypose.models.TinyPose` (normalized RGB [N,3,H,W] ->
    heatmaps [N,K,H/4,W/4]); build it with :func:`fuse_model`. Not trainable as such (the weights
    are permuted copies), and intermediate features are stored in permuted channel order.
    """

    def __init__(self, model: TinyPose) -> None:
        super().__init__()
        self.spec = model.spec
        backbone: LiteHRNet = model.backbone
        self.out_strides: tuple[int, ...] = backbone.out_strides
        config = backbone.config
        stages = len(config.num_channels)
        self.stem = FoldedStem(backbone.stem)
        # Units each branch still has to go through, from its creation to the head.
        units_from = [
            [sum(config.num_modules[s] * config.num_blocks[s] for s in range(stage, stages)) for _ in channels]
            for stage, channels in enumerate(config.num_channels)
        ]
        orders: list[Order] = [self.stem.out_order]
        units_left: list[int] = []
        transitions, stage_modules = [], []
        for stage in range(stages):
            old: nn.ModuleList = getattr(backbone, f"transition{stage}")
            new_orders: list[Order] = []
            layers: list[nn.Module] = []
            for i, layer in enumerate(old):
                if isinstance(layer, nn.Identity):
                    new_orders.append(orders[i])
                    layers.append(nn.Identity())
                    continue
                source = min(i, len(orders) - 1)
                order = _chain_start_order(config.num_channels[stage][i], units_from[stage][i])
                path = _convs_of(layer)
                _permute_(path, orders[source], order)
                new_orders.append(order)
                layers.append(nn.Sequential(*path))
                if i >= len(units_left):
                    units_left.append(units_from[stage][i])
                else:
                    units_left[i] = units_from[stage][i]
            orders = new_orders
            transitions.append(nn.ModuleList(layers))
            stage_modules.append(
                nn.Sequential(*(FoldedModule(m, orders, units_left) for m in getattr(backbone, f"stage{stage}")))
            )
        self.transitions = nn.ModuleList(transitions)
        self.stages = nn.ModuleList(stage_modules)
        projects = []
        reversed_orders = orders[::-1]
        for k, project in enumerate(cast(Iterable[DepthwiseSeparable], backbone.head_layer.projects)):
            path = _convs_of(project.depthwise_conv) + _convs_of(project.pointwise_conv)
            next_order = reversed_orders[k + 1] if k + 1 < len(reversed_orders) else None
            _permute_(path, reversed_orders[k], next_order)
            projects.append(nn.Sequential(*path))
        self.head = nn.ModuleList(projects)
        self.final_conv = _fold_conv_bn(model.final_conv, None)

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.stem(x)]
        for transition, stage in zip(cast(Iterable[nn.ModuleList], self.transitions), self.stages):
            branches = [layer(branches[min(j, len(branches) - 1)]) for j, layer in enumerate(transition)]
            branches = stage(branches)
        last: Tensor | None = None
        for project, feature in zip(self.head, branches[::-1]):
            if last is not None:
                size = (int(feature.shape[2]), int(feature.shape[3]))
                feature = feature + F.interpolate(last, size=size, mode="bilinear", align_corners=True)
            last = project(feature)
        assert last is not None
        return self.final_conv(last)


def fuse_model(model: TinyPose) -> FusedTinyPose:
    """Inference copy of a PP-TinyPose model with BatchNorm and channel shuffles folded away.

    The input model is left untouched. Heatmaps equal the original's to float32 rounding.
    """
    if not isinstance(model, TinyPose):
        raise TypeError(f"fuse_model expects a tinypose TinyPose model, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        fused = FusedTinyPose(model)
    finally:
        model.train(was_training)
    return fused.eval().requires_grad_(False)
