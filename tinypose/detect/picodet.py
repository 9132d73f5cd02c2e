"""PP-PicoDet pedestrian detector: LCNet x0.75 + LC-PAN + PicoHeadV2 (distribution focal regression).

PaddleDetection ``configs/picodet/application/pedestrian_detection/picodet_s_{192,320}_lcnet_pedestrian.yml``
(``ppdet/modeling/architectures/picodet.py``, ``heads/pico_head.py``). Module names mirror
PaddleDetection's, so a ``.pdparams`` state dict maps onto this one by renaming BatchNorm buffers.

``forward`` returns what the exported detector returns without NMS: boxes ``[N, A, 4]`` (x1, y1,
x2, y2 in input pixels) and per-class scores ``[N, C, A]`` over all anchor points of the four
levels (strides 8, 16, 32, 64). Boxes are decoded level by level as ``(grid + 0.5) * stride -/+
distance * stride``, in the order the released OpenVINO export computes them. Pre-processing,
NMS and rescaling to the image live in :mod:`tinypose.detect.predictor`; the registry of variants
in :mod:`tinypose.detect.spec`; :data:`DETECTOR_WEIGHTS` is what the shared weights loader needs
to know about this family.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.litehrnet import ConvNorm
from ..weights import WeightFamily, load_weights, resolve_pretrained
from .lcnet import LCNet
from .lcpan import LCPAN, DPModule
from .spec import DETECTOR_SPECS, DetectorSpec, NMSConfig, get_detector_spec, list_detectors
from .weights import ENV_DETECTOR_WEIGHTS, check_picodet_file, picodet_arrays

__all__ = [
    "DETECTOR_SPECS",
    "DETECTOR_WEIGHTS",
    "DetectorSpec",
    "NMSConfig",
    "PicoDet",
    "PicoFeat",
    "PicoHeadV2",
    "build_detector",
    "get_detector_spec",
    "list_detectors",
    "load_detector_weights",
]


class PicoSE(nn.Module):
    """Head squeeze-excitation: ``conv(feat * sigmoid(fc(mean(feat))))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)
        self.conv = ConvNorm(channels, channels, 1)

    def forward(self, feat: Tensor, avg_feat: Tensor) -> Tensor:
        return self.conv(feat * torch.sigmoid(self.fc(avg_feat)))


class PicoFeat(nn.Module):
    """Shared cls/reg tower per level: ``num_convs`` x (dw 5x5 + pw 1x1, HardSwish), then PicoSE.

    Upstream registers the convs as ``cls_conv_dw{level}.{i}``; here ``cls_conv_dw{level}`` is a
    ``ModuleList`` so that the state-dict names are identical.
    """

    def __init__(self, channels: int = 96, num_levels: int = 4, num_convs: int = 2) -> None:
        super().__init__()
        self.num_levels = num_levels
        self.se = nn.ModuleList()
        for level in range(num_levels):
            dw = nn.ModuleList(ConvNorm(channels, channels, 5, groups=channels) for _ in range(num_convs))
            pw = nn.ModuleList(ConvNorm(channels, channels, 1) for _ in range(num_convs))
            setattr(self, f"cls_conv_dw{level}", dw)
            setattr(self, f"cls_conv_pw{level}", pw)
            self.se.append(PicoSE(channels))

    def forward(self, feat: Tensor, level: int) -> tuple[Tensor, Tensor]:
        dw_convs: nn.ModuleList = getattr(self, f"cls_conv_dw{level}")
        pw_convs: nn.ModuleList = getattr(self, f"cls_conv_pw{level}")
        for dw, pw in zip(dw_convs, pw_convs):
            feat = F.hardswish(pw(F.hardswish(dw(feat))))
        se_feat = F.hardswish(self.se[level](feat, F.adaptive_avg_pool2d(feat, 1)))
        return feat, se_feat


class Integral(nn.Module):
    """Expected value of a softmax distribution over ``0..reg_max`` (the DFL box-side decoder)."""

    project: Tensor

    def __init__(self, reg_max: int = 7) -> None:
        super().__init__()
        self.reg_max = reg_max
        self.register_buffer("project", torch.linspace(0, reg_max, reg_max + 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``[..., 4 * (reg_max + 1)]`` logits -> ``[..., 4]`` distances in stride units."""
        probs = F.softmax(x.reshape(*x.shape[:-1], 4, self.reg_max + 1), dim=-1)
        return probs @ self.project


class PicoHeadV2(nn.Module):
    """PicoHeadV2 with the task-alignment branch: ``score = sqrt(sigmoid(cls) * sigmoid(align) + eps)``.

    ``score_eps`` (Paddle: 1e-9) is a buffer saved with the weights: the fp16 OpenVINO IRs drop it
    (it underflows in fp16), which changes near-zero scores by up to 3e-5.
    """

    score_eps: Tensor

    def __init__(
        self,
        channels: int = 96,
        num_classes: int = 1,
        fpn_strides: tuple[int, ...] = (8, 16, 32, 64),
        reg_max: int = 7,
        cell_offset: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.fpn_strides = tuple(fpn_strides)
        self.reg_max = reg_max
        self.cell_offset = cell_offset
        self.conv_feat = PicoFeat(channels, len(fpn_strides))
        self.head_cls_list = nn.ModuleList()
        self.head_reg_list = nn.ModuleList()
        self.cls_align = nn.ModuleList()
        for _ in fpn_strides:
            self.head_cls_list.append(nn.Conv2d(channels, num_classes, 1))
            self.head_reg_list.append(nn.Conv2d(channels, 4 * (reg_max + 1), 1))
            self.cls_align.append(DPModule(channels, 1, 5, act_after_pointwise=False))
        self.distribution_project = Integral(reg_max)
        self.register_buffer("score_eps", torch.tensor(1e-9, dtype=torch.float32))

    def forward(self, feats: list[Tensor]) -> tuple[Tensor, Tensor]:
        boxes, scores = [], []
        for level, (feat, stride) in enumerate(zip(feats, self.fpn_strides)):
            cls_feat, se_feat = self.conv_feat(feat, level)
            cls_logit = self.head_cls_list[level](se_feat)
            reg_pred = self.head_reg_list[level](se_feat)
            cls_prob = torch.sigmoid(self.cls_align[level](cls_feat))
            score = (torch.sigmoid(cls_logit) * cls_prob + self.score_eps).sqrt()
            batch, _, height, width = score.shape
            scores.append(score.reshape(batch, self.num_classes, height * width))
            distances = self.distribution_project(reg_pred.permute(0, 2, 3, 1)) * stride
            boxes.append(self._decode(distances.reshape(batch, height * width, 4), height, width, stride))
        return torch.cat(boxes, 1), torch.cat(scores, 2)

    def _decode(self, distances: Tensor, height: int, width: int, stride: int) -> Tensor:
        """Anchor point ``(grid + offset) * stride`` minus left/top, plus right/bottom."""
        xs = (torch.arange(width, dtype=distances.dtype, device=distances.device) + self.cell_offset) * stride
        ys = (torch.arange(height, dtype=distances.dtype, device=distances.device) + self.cell_offset) * stride
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], -1)
        left_top, right_bottom = distances[..., :2], distances[..., 2:]
        return torch.cat([-left_top + points, right_bottom + points], -1)


class PicoDet(nn.Module):
    """PP-PicoDet: normalized RGB ``[N,3,S,S]`` -> (boxes ``[N,A,4]`` in input pixels, scores ``[N,C,A]``)."""

    def __init__(self, spec: DetectorSpec) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = LCNet(spec.backbone_scale)
        self.neck = LCPAN(self.backbone.out_channels, spec.neck_channels, num_features=len(spec.fpn_strides))
        self.head = PicoHeadV2(spec.neck_channels, spec.num_classes, spec.fpn_strides, spec.reg_max, spec.cell_offset)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.neck(self.backbone(x)))


DETECTOR_WEIGHTS = WeightFamily(
    title="PP-PicoDet",
    specs=DETECTOR_SPECS,
    lookup=get_detector_spec,
    build=PicoDet,
    filter_fn=picodet_arrays,
    check_fn=check_picodet_file,
    formats=("openvino", "pdparams", "safetensors"),
    env_var=ENV_DETECTOR_WEIGHTS,
    local_names=lambda spec: [f"{spec.name}/model.xml"],
)
"""The PP-PicoDet family for :mod:`tinypose.weights` (name mapping: :func:`tinypose.detect.weights.picodet_arrays`)."""


def load_detector_weights(model: PicoDet, source: Literal[True] | str | os.PathLike[str]) -> PicoDet:
    """Load weights into ``model`` in place (strict); ``source=True`` means the default release."""
    path = resolve_pretrained(model.spec, DETECTOR_WEIGHTS) if source is True else Path(source)
    model.load_state_dict(load_weights(path, DETECTOR_WEIGHTS, model.spec.name), strict=True)
    return model


def build_detector(
    name: str | int = "picodet_s_320_lcnet_pedestrian", pretrained: bool | str | os.PathLike[str] | None = False
) -> PicoDet:
    """Build a PP-PicoDet pedestrian detector in eval mode.

    ``pretrained``: ``False`` (random init), ``True`` (the default released weights, downloaded
    or found in the cache), or a path to weights (OpenVINO ``.xml`` or its folder, ``.pdparams``,
    ``.safetensors``).
    """
    spec = get_detector_spec(name)
    model = PicoDet(spec)
    if pretrained is True or isinstance(pretrained, (str, os.PathLike)):
        load_detector_weights(model, pretrained)
    elif pretrained is not False and pretrained is not None:
        raise TypeError(f"pretrained must be True, False or a path, not {pretrained!r}")
    return model.eval()
