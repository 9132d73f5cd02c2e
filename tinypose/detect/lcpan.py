"""LC-PAN: the path-aggregation neck of PP-PicoDet (LCNet variant).

PaddleDetection ``ppdet/modeling/necks/lc_pan.py`` with ``ConvBNLayer``, ``DPModule`` and
``Channel_T`` from ``necks/csp_pan.py``. Module names mirror PaddleDetection's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .lcnet import DepthwiseSeparable

__all__ = ["LCPAN", "ChannelT", "DPModule", "PanConvBN"]


class PanConvBN(nn.Module):
    """csp_pan ``ConvBNLayer``: conv (no bias) + BatchNorm + HardSwish."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.hardswish(self.bn(self.conv(x)))


class DPModule(nn.Module):
    """Depthwise-then-pointwise conv, each with BatchNorm, HardSwish after the first and optionally the second.

    Upstream sets the depthwise conv's groups to ``out_channels``; with ``out_channels=1`` (the
    PicoHeadV2 alignment branch) it is therefore a dense kxk conv.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, act_after_pointwise: bool = True
    ) -> None:
        super().__init__()
        self.act_after_pointwise = act_after_pointwise
        padding = (kernel_size - 1) // 2
        self.dwconv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, groups=out_channels, bias=False
        )
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.pwconv = nn.Conv2d(out_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = F.hardswish(self.bn1(self.dwconv(x)))
        x = self.bn2(self.pwconv(x))
        return F.hardswish(x) if self.act_after_pointwise else x


class ChannelT(nn.Module):
    """One 1x1 ConvBN+HardSwish per input level, bringing every level to ``out_channels``."""

    def __init__(self, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(PanConvBN(c, out_channels, 1) for c in in_channels)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        return [conv(feat) for conv, feat in zip(self.convs, feats)]


def _lc_block(channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        DepthwiseSeparable(channels * 2, channels * 2, 1, kernel_size),
        DepthwiseSeparable(channels * 2, channels, 1, kernel_size),
    )


class LCPAN(nn.Module):
    """Top-down then bottom-up aggregation of 3 levels; ``num_features=4`` adds a stride-64 level."""

    def __init__(
        self, in_channels: list[int], out_channels: int = 96, kernel_size: int = 5, num_features: int = 4
    ) -> None:
        super().__init__()
        num_levels = len(in_channels)
        self.num_levels = num_levels
        self.num_features = num_features
        self.out_channels = out_channels
        self.conv_t = ChannelT(list(in_channels), out_channels)
        if num_features == 4:
            self.first_top_conv = DPModule(out_channels, out_channels, kernel_size, stride=2)
            self.second_top_conv = DPModule(out_channels, out_channels, kernel_size, stride=2)
        self.top_down_blocks = nn.ModuleList(_lc_block(out_channels, kernel_size) for _ in range(num_levels - 1))
        self.downsamples = nn.ModuleList()
        self.bottom_up_blocks = nn.ModuleList()
        for _ in range(num_levels - 1):
            self.downsamples.append(DPModule(out_channels, out_channels, kernel_size, stride=2))
            self.bottom_up_blocks.append(_lc_block(out_channels, kernel_size))

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        feats = self.conv_t(feats)
        inner_outs = [feats[-1]]
        for idx in range(self.num_levels - 1, 0, -1):
            upsampled = F.interpolate(inner_outs[0], scale_factor=2.0, mode="nearest")
            block = self.top_down_blocks[self.num_levels - 1 - idx]
            inner_outs.insert(0, block(torch.cat([upsampled, feats[idx - 1]], 1)))
        outs = [inner_outs[0]]
        for idx in range(self.num_levels - 1):
            downsampled = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat([downsampled, inner_outs[idx + 1]], 1)))
        if self.num_features == 4:
            outs.append(self.first_top_conv(feats[-1]) + self.second_top_conv(outs[-1]))
        return outs
