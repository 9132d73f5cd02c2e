"""PP-PicoDet pedestrian detector: LCNet x0.75 + LC-PAN + PicoHeadV2 (distribution focal regression).

PaddleDetection ``configs/picodet/application/pedestrian_detection/picodet_s_{192,320}_lcnet_pedestrian.yml``
(``ppdet/modeling/architectures/picodet.py``, ``heads/pico_head.py``). Module names mirror
PaddleDetection's, so a ``.pdparams`` state dict maps onto this one by renaming BatchNorm buffers.

``forward`` returns what the exported detector returns without NMS: boxes ``[N, A, 4]`` (x1, y1,
x2, y2 in input pixels) and per-class scores ``[N, C, A]`` over all anchor points of the four
levels (strides 8, 16, 32, 64). Boxes are decoded level by level as ``(grid + 0.5) * stride -/+
distance * stride``, in the order the released OpenVINO export computes them. Pre-processing,
NMS and rescaling to the image live in :mod:`tinypose.detect.predictor`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.litehrnet import ConvNorm
from ..models.tinypose import IMAGENET_MEAN, IMAGENET_STD, OPENVINO_IR_REPO, WeightSource
from .lcnet import LCNet
from .lcpan import LCPAN, DPModule

__all__ = [
    "DETECTOR_SPECS",
    "DetectorSpec",
    "NMSConfig",
    "PicoDet",
    "PicoFeat",
    "PicoHeadV2",
    "build_detector",
    "get_detector_spec",
    "list_detectors",
]


@dataclass(frozen=True)
class NMSConfig:
    """PaddleDetection ``MultiClassNMS`` settings (``normalized=True``, ``nms_eta=1``, no background)."""

    score_threshold: float = 0.025
    nms_top_k: int = 1000
    keep_top_k: int = 100
    nms_threshold: float = 0.6


@dataclass(frozen=True)
class DetectorSpec:
    """Everything that differs between PP-PicoDet variants."""

    name: str
    input_size: int
    labels: tuple[str, ...] = ("pedestrian",)
    backbone_scale: float = 0.75
    neck_channels: int = 96
    fpn_strides: tuple[int, ...] = (8, 16, 32, 64)
    reg_max: int = 7
    cell_offset: float = 0.5
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    nms: NMSConfig = NMSConfig()
    weights: tuple[WeightSource, ...] = field(default_factory=tuple)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def num_anchors(self) -> int:
        """Anchor points over all levels for a square ``input_size`` input."""
        return sum(math.ceil(self.input_size / stride) ** 2 for stride in self.fpn_strides)


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


_PADDLEDET_WEIGHTS = "https://bj.bcebos.com/v1/paddledet/models/keypoint/tinypose_enhance"


def _sources(size: int, xml_sha: str, bin_sha: str) -> tuple[WeightSource, ...]:
    name = f"picodet_s_{size}_lcnet_pedestrian"
    ir_dir = f"{OPENVINO_IR_REPO}/model/picodet_v2_s_{size}_pedestrian/ir_fp16"
    return (
        WeightSource(
            url=f"{_PADDLEDET_WEIGHTS}/{name}.pdparams",
            sha256=None,
            filename=f"{name}.pdparams",
            format="pdparams",
            description="PaddleDetection PP-PicoDet pedestrian checkpoint (PP-TinyPose enhanced release)",
        ),
        WeightSource.openvino_ir(
            f"{ir_dir}/{name}.xml",
            xml_sha,
            bin_sha,
            f"{name}_openvino/{name}.xml",
            "the same detector as OpenVINO IR (fp16, BatchNorm folded, no NMS)",
        ),
    )


DETECTOR_SPECS: dict[str, DetectorSpec] = {
    spec.name: spec
    for spec in (
        DetectorSpec(
            name="picodet_s_192_lcnet_pedestrian",
            input_size=192,
            weights=_sources(
                192,
                "0e3c425c08b666e31d98ce751cd38d2244b0c93d2d1250cc3f9fc823e118c321",
                "747ec2d2d9b8f3f0bb842a67b3e8872f8ae56cc9682858b04d275517f07fd2ff",
            ),
        ),
        DetectorSpec(
            name="picodet_s_320_lcnet_pedestrian",
            input_size=320,
            weights=_sources(
                320,
                "fc69d950abc656f657e59874e2466f82da5370166c975367fa83b1f4f72c92da",
                "f3b8b2de41f9b34c05f10bd4640f9dd66f4ec191be3740b261183eaff9e554d2",
            ),
        ),
    )
}


def list_detectors() -> list[str]:
    """Names accepted by :func:`build_detector` and ``create_detector``."""
    return sorted(DETECTOR_SPECS)


def get_detector_spec(name: str | int) -> DetectorSpec:
    """Look up a detector by name; ``picodet_s_320_lcnet_pedestrian``, ``PicoDet_320`` or ``320`` all work."""
    key = str(name).strip().lower()
    for spec_name, spec in DETECTOR_SPECS.items():
        size = str(spec.input_size)
        if key in (spec_name, size, f"picodet_{size}", f"picodet_s_{size}", f"pp-picodet_{size}"):
            return spec
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(list_detectors())}")


def build_detector(
    name: str | int = "picodet_s_320_lcnet_pedestrian", pretrained: bool | str | Path = False
) -> PicoDet:
    """Build a PP-PicoDet pedestrian detector in eval mode.

    ``pretrained``: ``False`` (random init), ``True`` (the default released weights, downloaded
    or found in the cache), or a path to weights (OpenVINO ``.xml`` or its folder, ``.pdparams``,
    ``.safetensors``).
    """
    spec = get_detector_spec(name)
    model = PicoDet(spec)
    if pretrained is not False and pretrained is not None:
        from .weights import load_detector_weights

        load_detector_weights(model, pretrained)
    return model.eval()
