"""LiteHRNet (``wider_naive``), the backbone of PP-TinyPose.

Lite-HRNet: A Lightweight High-Resolution Network (Yu et al., CVPR 2021), as implemented in
PaddleDetection ``ppdet/modeling/backbones/lite_hrnet.py``. Module names mirror PaddleDetection's
so that a Paddle state dict maps onto this one by renaming BatchNorm buffers only, and modules
are created in the same order as upstream, so Paddle's static parameter numbering
(``conv2d_K`` / ``batch_norm2d_K``) follows ``named_modules()`` order.

Two upstream behaviours are reproduced on purpose because the released weights depend on them:
the fuse layers alias the first branch in place (see :class:`LiteHRNetModule`), and every new
branch is built from the *last* branch of the previous stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["WIDER_NAIVE", "BatchNorm2d", "ConvNorm", "LiteHRNet", "LiteHRNetConfig", "channel_shuffle"]


@dataclass(frozen=True)
class LiteHRNetConfig:
    """Stage layout of a naive LiteHRNet (plain shuffle units, no channel weighting)."""

    num_modules: tuple[int, ...] = (2, 4, 2)
    num_branches: tuple[int, ...] = (2, 3, 4)
    num_blocks: tuple[int, ...] = (2, 2, 2)
    num_channels: tuple[tuple[int, ...], ...] = ((40, 80), (40, 80, 160), (40, 80, 160, 320))
    stem_channels: int = 32


WIDER_NAIVE = LiteHRNetConfig()


def channel_shuffle(x: Tensor, groups: int = 2) -> Tensor:
    """ShuffleNet channel shuffle: [N, g, C/g, H, W] -> swap g and C/g -> [N, C, H, W]."""
    channels, height, width = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    x = x.reshape(-1, groups, channels // groups, height, width)
    return x.transpose(1, 2).reshape(-1, channels, height, width)


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose running variance averages the *biased* batch variance, as Paddle's
    ``BatchNorm2D`` does (torch averages the unbiased one, larger by n/(n-1), n = N*H*W per channel).

    Momentum 0.1 here is Paddle's 0.9 (Paddle weighs the old statistics by its momentum), epsilon
    1e-5 in both; normalisation itself always uses the biased batch variance. The correction is exact
    algebra on torch's own update, so training costs no extra pass over the activations.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and self.track_running_stats and self.running_var is not None):
            return super().forward(x)
        before = self.running_var.clone()
        out = super().forward(x)
        count = x.numel() // x.shape[1]
        momentum = self.momentum if self.momentum is not None else 0.0
        if count > 1 and momentum > 0:
            # torch added momentum * var * n/(n-1); Paddle adds momentum * var. Through ``.data``: autograd
            # keeps running_var as an input of batch_norm (unused by its backward) and checks its version
            running = self.running_var.data
            running.sub_((running - (1.0 - momentum) * before) / count)
        return out


class ConvNorm(nn.Sequential):
    """Conv (no bias) + BatchNorm + optional ReLU; PaddleDetection's ``ConvNormLayer``.

    Registered as ``conv`` then ``norm`` (Paddle registers ``norm`` first; only the per-type
    creation order matters for name mapping, and that is the same).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        relu: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False
        )
        self.norm = BatchNorm2d(out_channels)
        if relu:
            self.act = nn.ReLU()


def _dw_bn(channels: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False), BatchNorm2d(channels)]


def _pw_bn(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False), BatchNorm2d(out_channels)]


class Stem(nn.Module):
    """Stride-4 stem: 3x3/s2 conv, then a two-way shuffle block with another stride 2."""

    def __init__(self, in_channels: int = 3, channels: int = 32) -> None:
        super().__init__()
        half = channels // 2
        self.conv1 = ConvNorm(in_channels, channels, 3, stride=2, relu=True)
        self.branch1 = nn.Sequential(ConvNorm(half, half, 3, 2, groups=half), ConvNorm(half, half, 1, relu=True))
        self.expand_conv = ConvNorm(half, channels, 1, relu=True)
        self.depthwise_conv = ConvNorm(channels, channels, 3, 2, groups=channels)
        self.linear_conv = ConvNorm(channels, half, 1, relu=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x1, x2 = x.chunk(2, dim=1)
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(x2)))
        return channel_shuffle(torch.cat([self.branch1(x1), x2], dim=1))


class ShuffleUnit(nn.Module):
    """Stride-1 ShuffleNetV2 unit: half the channels pass, the other half go 1x1-dw3x3-1x1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.branch2 = nn.Sequential(
            ConvNorm(half, half, 1, relu=True), ConvNorm(half, half, 3, groups=half), ConvNorm(half, half, 1, relu=True)
        )

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat([x1, self.branch2(x2)], dim=1))


class LiteHRNetModule(nn.Module):
    """Parallel branches of shuffle units followed by multi-resolution fusion.

    PaddleDetection accumulates the fusion in place (``y += y`` on an alias of branch 0), which
    makes the arithmetic, reproduced here exactly::

        f0 = 2 * x0 + sum_{j>0} F0j(xj);             out0 = relu(f0)
        fi = 2 * Fi0(f0) + xi + sum_{j>=1, j!=i} Fij(xj);  outi = relu(fi)

    where ``Fi0`` sees the pre-activation ``f0``. The released weights were trained this way.
    """

    def __init__(self, channels: tuple[int, ...], num_blocks: int) -> None:
        super().__init__()
        self.num_branches = len(channels)
        self.layers = nn.ModuleList(nn.Sequential(*(ShuffleUnit(c) for _ in range(num_blocks))) for c in channels)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(self._fuse_path(channels, i, j) for j in range(self.num_branches))
            for i in range(self.num_branches)
        )
        self.relu = nn.ReLU()

    @staticmethod
    def _fuse_path(channels: tuple[int, ...], i: int, j: int) -> nn.Module:
        if j > i:
            return nn.Sequential(
                *_pw_bn(channels[j], channels[i]), nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")
            )
        if j == i:
            return nn.Identity()
        steps = []
        for k in range(i - j):
            if k == i - j - 1:
                steps.append(nn.Sequential(*_dw_bn(channels[j], 2), *_pw_bn(channels[j], channels[i])))
            else:
                steps.append(nn.Sequential(*_dw_bn(channels[j], 2), *_pw_bn(channels[j], channels[j]), nn.ReLU()))
        return nn.Sequential(*steps)

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        fuse_layers = cast(Sequence[nn.ModuleList], self.fuse_layers)  # rows of layers: [i][j] maps branch j to i
        x = [branch(xi) for branch, xi in zip(self.layers, x)]
        f0 = x[0] + x[0]
        for j in range(1, self.num_branches):
            f0 = f0 + fuse_layers[0][j](x[j])
        outputs = [self.relu(f0)]
        for i in range(1, self.num_branches):
            y = fuse_layers[i][0](f0)
            y = y + y
            for j in range(1, self.num_branches):
                y = y + (x[j] if j == i else fuse_layers[i][j](x[j]))
            outputs.append(self.relu(y))
        return outputs


class DepthwiseSeparable(nn.Module):
    """dw3x3 + BN (no activation), then 1x1 + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise_conv = ConvNorm(in_channels, in_channels, 3, groups=in_channels)
        self.pointwise_conv = ConvNorm(in_channels, out_channels, 1, relu=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class IterativeHead(nn.Module):
    """Top-down refinement from the lowest to the highest resolution (bilinear, align_corners)."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        reversed_channels = channels[::-1]
        out_channels = reversed_channels[1:] + reversed_channels[-1:]
        self.projects = nn.ModuleList(DepthwiseSeparable(c, o) for c, o in zip(reversed_channels, out_channels))
        self.out_channels = out_channels[::-1]

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        outputs: list[Tensor] = []
        last: Tensor | None = None
        for project, feature in zip(self.projects, x[::-1]):
            if last is not None:
                size = (int(feature.shape[2]), int(feature.shape[3]))
                feature = feature + F.interpolate(last, size=size, mode="bilinear", align_corners=True)
            last = project(feature)
            outputs.append(last)
        return outputs[::-1]


class LiteHRNet(nn.Module):
    """LiteHRNet backbone returning multi-resolution features, highest resolution first.

    With the default ``wider_naive`` config and a [N, 3, H, W] input, ``forward`` returns
    features of 40, 40, 80 and 160 channels at strides 4, 8, 16 and 32 (``out_channels``,
    ``out_strides``); PP-TinyPose uses the first.
    """

    def __init__(self, config: LiteHRNetConfig = WIDER_NAIVE, in_channels: int = 3) -> None:
        super().__init__()
        self.config = config
        self.stem = Stem(in_channels, config.stem_channels)
        previous: tuple[int, ...] = (config.stem_channels,)
        for stage, channels in enumerate(config.num_channels):
            setattr(self, f"transition{stage}", self._transition(previous, channels))
            modules = [LiteHRNetModule(channels, config.num_blocks[stage]) for _ in range(config.num_modules[stage])]
            setattr(self, f"stage{stage}", nn.Sequential(*modules))
            previous = channels
        self.head_layer = IterativeHead(previous)
        self.out_channels: tuple[int, ...] = tuple(self.head_layer.out_channels)
        self.out_strides: tuple[int, ...] = tuple(4 * 2**i for i in range(len(previous)))

    @staticmethod
    def _transition(previous: tuple[int, ...], current: tuple[int, ...]) -> nn.ModuleList:
        layers: list[nn.Module] = []
        for i, channels in enumerate(current):
            if i < len(previous):
                if channels == previous[i]:
                    layers.append(nn.Identity())
                else:
                    layers.append(nn.Sequential(*_dw_bn(previous[i], 1), *_pw_bn(previous[i], channels), nn.ReLU()))
                continue
            steps = []
            for j in range(i + 1 - len(previous)):
                out = channels if j == i - len(previous) else previous[-1]
                steps.append(nn.Sequential(*_dw_bn(previous[-1], 2), *_pw_bn(previous[-1], out), nn.ReLU()))
            layers.append(nn.Sequential(*steps))
        return nn.ModuleList(layers)

    def forward_stages(self, x: Tensor) -> tuple[Tensor, list[list[Tensor]], list[Tensor]]:
        """Stem output, each stage's branch outputs, and the head outputs (for parity checks)."""
        stem = self.stem(x)
        branches = [stem]
        stage_outputs: list[list[Tensor]] = []
        for stage in range(len(self.config.num_channels)):
            transition: nn.ModuleList = getattr(self, f"transition{stage}")
            inputs = [layer(branches[min(j, len(branches) - 1)]) for j, layer in enumerate(transition)]
            branches = getattr(self, f"stage{stage}")(inputs)
            stage_outputs.append(branches)
        return stem, stage_outputs, self.head_layer(branches)

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.forward_stages(x)[2]
