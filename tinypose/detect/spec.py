"""The PP-PicoDet pedestrian detectors: what differs between them, their NMS settings and weight sources.

PaddleDetection ``configs/picodet/application/pedestrian_detection/picodet_s_{192,320}_lcnet_pedestrian.yml``
(the PP-TinyPose "enhanced" release). Everything else reads sizes and sources from this registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..vocab import IMAGENET_MEAN, IMAGENET_STD, OPENVINO_IR_REPO, WeightSource

__all__ = ["DETECTOR_SPECS", "DetectorSpec", "NMSConfig", "get_detector_spec", "list_detectors"]


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

    @property
    def input_hw(self) -> tuple[int, int]:
        """(height, width) of the square network input."""
        return self.input_size, self.input_size

    @property
    def size_tag(self) -> str:
        """The size as release file names spell it (``picodet_s_320_lcnet_pedestrian``): ``320``."""
        return str(self.input_size)


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
