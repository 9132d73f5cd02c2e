"""PP-TinyPose: LiteHRNet ``wider_naive`` + a 1x1 conv to 17 COCO keypoint heatmaps.

PaddleDetection ``configs/keypoint/tiny_pose/tinypose_{128x96,256x192}.yml`` and
``ppdet/modeling/architectures/keypoint_hrnet.py`` (``TopDownHRNet``). The registry below is the
one place where input size, heatmap size, sigma, flip pairs, normalization and weight sources of
each variant are written down; the rest of the project reads them from here. :data:`POSE_WEIGHTS`
is what the shared weights loader needs to know about this family (registry, model, Paddle name
mapping); the COCO vocabulary comes from :mod:`tinypose.vocab` and is re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ..vocab import (
    COCO_FLIP_PAIRS,
    COCO_KEYPOINTS,
    COCO_SIGMAS,
    COCO_SKELETON,
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPENVINO_IR_REPO,
    WeightSource,
)
from ..weights import WeightFamily, load_weights, resolve_pretrained
from ..weights.loader import paddle_arrays
from .litehrnet import WIDER_NAIVE, LiteHRNet, LiteHRNetConfig

__all__ = [
    "COCO_FLIP_PAIRS",
    "COCO_KEYPOINTS",
    "COCO_SIGMAS",
    "COCO_SKELETON",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODEL_SPECS",
    "OPENVINO_IR_REPO",
    "POSE_WEIGHTS",
    "ModelSpec",
    "TinyPose",
    "WeightSource",
    "build_model",
    "forward_with_flip",
    "get_spec",
    "list_models",
    "load_state_dict",
]


@dataclass(frozen=True)
class ModelSpec:
    """Everything that differs between PP-TinyPose variants."""

    name: str
    input_height: int
    input_width: int
    sigma: float
    backbone: LiteHRNetConfig = WIDER_NAIVE
    num_joints: int = 17
    heatmap_stride: int = 4
    flip_pairs: tuple[tuple[int, int], ...] = COCO_FLIP_PAIRS
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    keypoint_names: tuple[str, ...] = COCO_KEYPOINTS
    skeleton: tuple[tuple[int, int], ...] = COCO_SKELETON
    oks_sigmas: tuple[float, ...] = COCO_SIGMAS
    weights: tuple[WeightSource, ...] = field(default_factory=tuple)

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height), the order OpenCV and PaddleDetection's ``trainsize`` use."""
        return self.input_width, self.input_height

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(width, height) of the output heatmaps."""
        return self.input_width // self.heatmap_stride, self.input_height // self.heatmap_stride

    @property
    def aspect_ratio(self) -> float:
        """Input width / height, used to fix box aspect before cropping."""
        return self.input_width / self.input_height

    @property
    def input_hw(self) -> tuple[int, int]:
        """(height, width), the order of an NCHW input shape."""
        return self.input_height, self.input_width

    @property
    def size_tag(self) -> str:
        """The size as release file names spell it: ``128x96``."""
        return self.name.split("_", 1)[1]


_PADDLEX_PRETRAINED = "https://paddle-model-ecology.bj.bcebos.com/paddlex/official_pretrained_model"


def _sources(name: str, ir_dir: str, xml_sha: str, bin_sha: str) -> tuple[WeightSource, ...]:
    return (
        WeightSource(
            url=f"{_PADDLEX_PRETRAINED}/{name}_pretrained.pdparams",
            sha256=None,
            filename=f"{name}_pretrained.pdparams",
            format="pdparams",
            description="PaddleX official pretrained checkpoint",
        ),
        WeightSource.openvino_ir(
            f"{OPENVINO_IR_REPO}/model/{ir_dir}/ir_fp16/model.xml",
            xml_sha,
            bin_sha,
            f"{name}_openvino/model.xml",
            "PaddleDetection enhanced PP-TinyPose as OpenVINO IR (fp16, BatchNorm folded)",
        ),
    )


MODEL_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="PP-TinyPose_128x96",
            input_height=128,
            input_width=96,
            sigma=1.0,
            weights=_sources(
                "PP-TinyPose_128x96",
                "tinypose_128_96",
                "f743e248d871ce647c63e05cde6a1bc660bf612208687acf70173bbe18e1885a",
                "aa745b5711155bf07b3c60bb9d0b17ad4f5cd6ff57606fba564f20764fe79daf",
            ),
        ),
        ModelSpec(
            name="PP-TinyPose_256x192",
            input_height=256,
            input_width=192,
            sigma=2.0,
            weights=_sources(
                "PP-TinyPose_256x192",
                "tinypose_256_192",
                "71990905e8ee8de250c57c4d52a6bb25028fecb7f3fc35d43707febefa45ba14",
                "b16cdb387b96f431c4e0052a8f1c5344bb5cc7c71cc14e245be260624968e462",
            ),
        ),
    )
}


def list_models() -> list[str]:
    """Names accepted by :func:`build_model` and ``create_model``."""
    return sorted(MODEL_SPECS)


def get_spec(name: str) -> ModelSpec:
    """Look up a variant by name; accepts ``PP-TinyPose_128x96``, ``tinypose_128x96`` or ``128x96``."""
    key = name.strip()
    for spec_name, spec in MODEL_SPECS.items():
        short = spec_name.split("_", 1)[1]
        if key in (spec_name, short, f"tinypose_{short}") or key.lower() == spec_name.lower():
            return spec
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")


class TinyPose(nn.Module):
    """Top-down keypoint model: normalized RGB [N,3,H,W] -> raw heatmaps [N,K,H/4,W/4]."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = LiteHRNet(spec.backbone)
        self.final_conv = nn.Conv2d(self.backbone.out_channels[0], spec.num_joints, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.final_conv(self.backbone(x)[0])


def forward_with_flip(forward: Callable[[Tensor], Tensor], images: Tensor, flip: bool) -> tuple[Tensor, Tensor | None]:
    """Heatmaps of ``images`` and, with ``flip``, of their W-mirrored twins, from ONE forward call
    (the flip test of predict, evaluation and validation; merging is :meth:`HeatmapCodec.flip_merge`)."""
    if not flip:
        return forward(images), None
    both = forward(torch.cat([images, images.flip(3)]))
    return both[: images.shape[0]], both[images.shape[0] :]


def _local_names(spec: ModelSpec) -> list[str]:
    """Upstream file layouts of PP-TinyPose weights: PaddleX (``<model>_infer/``, ``<model>/``),
    PaddleDetection (``tinypose_128x96.pdparams``, exported ``tinypose_128x96/``), OpenVINO IR copies."""
    short = f"tinypose_{spec.size_tag}"
    underscored = f"tinypose_{spec.size_tag.replace('x', '_')}"
    return [
        f"{short}.safetensors",
        f"{short}.pdparams",
        f"{spec.name}_infer",
        spec.name,
        f"{short}/model.pdiparams",
        f"{short}/model.xml",
        f"{spec.name}/model.xml",
        f"{underscored}/ir_fp16/model.xml",
    ]


POSE_WEIGHTS = WeightFamily(
    title="PP-TinyPose",
    specs=MODEL_SPECS,
    lookup=get_spec,
    build=TinyPose,
    filter_fn=paddle_arrays,
    architecture="HRNet",
    local_names=_local_names,
)
"""The PP-TinyPose family for :mod:`tinypose.weights`: our module names equal Paddle's structured names
and our modules are created in Paddle's order, so Paddle's conventions map every format."""


def load_state_dict(path: str | Path, model_name: str) -> dict[str, Tensor]:
    """Read ``path`` (any supported format) as a complete, checked state dict for ``model_name``."""
    return load_weights(path, POSE_WEIGHTS, model_name)


def build_model(name: str = "PP-TinyPose_128x96", pretrained: bool | str | os.PathLike[str] | None = False) -> TinyPose:
    """Build a PP-TinyPose variant in eval mode.

    ``pretrained``: ``False`` (random init), ``True`` (the default released weights, downloaded
    or found in the cache), or a path to weights in any supported format (``.safetensors``,
    ``.pdparams``, a Paddle/PaddleX inference folder or ``.pdmodel``/``.json``, OpenVINO ``.xml``).
    """
    spec = get_spec(name)
    model = TinyPose(spec)
    if pretrained is True or isinstance(pretrained, (str, os.PathLike)):
        path = resolve_pretrained(spec, POSE_WEIGHTS) if pretrained is True else Path(pretrained)
        model.load_state_dict(load_weights(path, POSE_WEIGHTS, spec.name), strict=True)
    elif pretrained is not False and pretrained is not None:
        raise TypeError(f"pretrained must be True, False or a path, not {pretrained!r}")
    return model.eval()
