"""PP-LCNet backbone as used by PP-PicoDet.

PP-LCNet: A Lightweight CPU Convolutional Neural Network (Cui et al., 2021), as implemented in
PaddleDetection ``ppdet/modeling/backbones/lcnet.py``. Module names mirror PaddleDetection's
(``conv1``, ``blocks2`` ... ``blocks6``, each block ``dw_conv``/``se``/``pw_conv``, each conv
``conv`` + ``bn``), so a Paddle state dict maps onto this one by renaming BatchNorm buffers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ConvBNLayer", "DepthwiseSeparable", "LCNet", "PaddleHardsigmoid", "SEModule", "make_divisible"]

# kernel, in_channels, out_channels, stride, use_se (before width scaling)
NET_CONFIG: dict[str, tuple[tuple[int, int, int, int, bool], ...]] = {
    "blocks2": ((3, 16, 32, 1, False),),
    "blocks3": ((3, 32, 64, 2, False), (3, 64, 64, 1, False)),
    "blocks4": ((3, 64, 128, 2, False), (3, 128, 128, 1, False)),
    "blocks5": (
        (3, 128, 256, 2, False),
        (5, 256, 256, 1, False),
        (5, 256, 256, 1, False),
        (5, 256, 256, 1, False),
        (5, 256, 256, 1, False),
        (5, 256, 256, 1, False),
    ),
    "blocks6": ((5, 256, 512, 2, True), (5, 512, 512, 1, True)),
}

PADDLE_HARDSIGMOID_SLOPE = 0.1666667
"""``paddle.nn.Hardsigmoid`` computes ``clip(x * 0.1666667 + 0.5, 0, 1)``, not torch's ``/ 6``."""


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a scaled channel count to a multiple of ``divisor`` (never below 90% of it)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class PaddleHardsigmoid(nn.Module):
    """``clip(slope * x + offset, 0, 1)`` with Paddle's slope.

    ``slope`` is a buffer (saved with the weights) because exported graphs store it rounded: the
    fp16 OpenVINO IRs use 0.16662598, which moves boxes by up to 0.4 px if ignored.
    """

    slope: Tensor

    def __init__(self, slope: float = PADDLE_HARDSIGMOID_SLOPE, offset: float = 0.5) -> None:
        super().__init__()
        self.register_buffer("slope", torch.tensor(slope, dtype=torch.float32))
        self.offset = offset

    def forward(self, x: Tensor) -> Tensor:
        return (x * self.slope + self.offset).clamp(0.0, 1.0)


class ConvBNLayer(nn.Module):
    """Conv (no bias, zero padding (k-1)//2) + BatchNorm + HardSwish."""

    def __init__(self, in_channels: int, kernel_size: int, out_channels: int, stride: int, groups: int = 1) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.Hardswish()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class SEModule(nn.Module):
    """Squeeze-and-excitation: global mean, 1x1 (C -> C/4) + ReLU, 1x1 (C/4 -> C) + hard sigmoid, scale."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = nn.Conv2d(channels, channels // reduction, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels // reduction, channels, 1)
        self.hardsigmoid = PaddleHardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        weight = self.hardsigmoid(self.conv2(self.relu(self.conv1(self.avg_pool(x)))))
        return x * weight


class DepthwiseSeparable(nn.Module):
    """Depthwise kxk ConvBN+HardSwish, optional SE, pointwise 1x1 ConvBN+HardSwish."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, kernel_size: int = 3, use_se: bool = False
    ) -> None:
        super().__init__()
        self.use_se = use_se
        self.dw_conv = ConvBNLayer(in_channels, kernel_size, in_channels, stride, groups=in_channels)
        if use_se:
            self.se = SEModule(in_channels)
        self.pw_conv = ConvBNLayer(in_channels, 1, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dw_conv(x)
        if self.use_se:
            x = self.se(x)
        return self.pw_conv(x)


class LCNet(nn.Module):
    """PP-LCNet; ``forward`` returns the stride 8, 16 and 32 features (``feature_maps=[3, 4, 5]``)."""

    blocks2: nn.Sequential  # the stages are set by name in __init__ (PaddleDetection's parameter names)
    blocks3: nn.Sequential
    blocks4: nn.Sequential
    blocks5: nn.Sequential
    blocks6: nn.Sequential

    def __init__(self, scale: float = 0.75, feature_maps: tuple[int, ...] = (3, 4, 5)) -> None:
        super().__init__()
        self.scale = scale
        self.feature_maps = tuple(feature_maps)
        self.conv1 = ConvBNLayer(3, 3, make_divisible(16 * scale), 2)
        stage_channels = []
        for stage in ("blocks2", "blocks3", "blocks4", "blocks5", "blocks6"):
            blocks = [
                DepthwiseSeparable(make_divisible(cin * scale), make_divisible(cout * scale), s, k, se)
                for k, cin, cout, s, se in NET_CONFIG[stage]
            ]
            setattr(self, stage, nn.Sequential(*blocks))
            stage_channels.append(make_divisible(NET_CONFIG[stage][-1][2] * scale))
        # stage index i (blocks{i}) -> channels; outputs exist for blocks3..blocks6 (indices 2..5)
        self.out_channels = [c for i, c in enumerate(stage_channels[1:]) if i + 2 in self.feature_maps]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.blocks2(self.conv1(x))
        outs = []
        for stage in (self.blocks3, self.blocks4, self.blocks5, self.blocks6):
            x = stage(x)
            outs.append(x)
        return [out for i, out in enumerate(outs) if i + 2 in self.feature_maps]
