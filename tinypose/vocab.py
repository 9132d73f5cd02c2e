"""Shared vocabulary: COCO keypoint names, flip pairs, skeleton and OKS sigmas, ImageNet
normalization, and :class:`WeightSource` (one downloadable weights file of a release).

A leaf module: it imports nothing from tinypose, so every layer (weights, models, detector, data,
pipeline) can use these names without pulling in a model.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COCO_FLIP_PAIRS",
    "COCO_KEYPOINTS",
    "COCO_SIGMAS",
    "COCO_SKELETON",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OPENVINO_IR_REPO",
    "WeightSource",
]

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
COCO_FLIP_PAIRS: tuple[tuple[int, int], ...] = tuple((i, i + 1) for i in range(1, 17, 2))
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
"""Limb pairs as drawn by PaddleDetection's ``visualize_pose`` / the COCO keypoint skeleton."""
COCO_SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
    0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip
"""Per-keypoint OKS sigmas of COCO (pycocotools ``COCOeval.kpt_oks_sigmas``)."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

OPENVINO_IR_REPO = (
    "https://github.com/guojin-yan/Csharp_and_OpenVINO_deploy_PP-TinyPose/raw/0f6a4845d37b5b16edacbb76f1b1debb39e28a11"
)
"""Pinned repository holding the OpenVINO IRs of the PaddleDetection PP-TinyPose and PP-PicoDet releases."""


@dataclass(frozen=True)
class WeightSource:
    """One downloadable file of a weight release, with the files that must sit next to it."""

    url: str
    sha256: str | None
    filename: str
    format: str
    description: str = ""
    companions: tuple[tuple[str, str, str], ...] = ()
    """(url, sha256, filename) of files that must sit next to ``filename`` (an IR's ``.bin``)."""

    @classmethod
    def openvino_ir(
        cls, xml_url: str, xml_sha256: str, bin_sha256: str, filename: str, description: str
    ) -> WeightSource:
        """An OpenVINO IR release: the ``.xml`` and, as its companion, the ``.bin`` of the same URL and name stem."""
        companion = (xml_url.removesuffix(".xml") + ".bin", bin_sha256, filename.removesuffix(".xml") + ".bin")
        return cls(xml_url, xml_sha256, filename, "openvino", description, companions=(companion,))
