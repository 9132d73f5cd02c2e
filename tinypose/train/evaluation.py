"""PaddleDetection's top-down COCO keypoint evaluation, usable with or without Lightning.

``ppdet/metrics/keypoint_metrics.py::KeyPointTopDownCOCOEval`` and ``ppdet/modeling/keypoint_utils.py``:
every person box (ground truth, a COCO detection-results file, or a detector callable) is cropped with
the UDP warp, run through the model (and mirrored, when ``flip``), decoded by the codec (flip merge
with shift, argmax, DARK, *non-UDP* inverse affine with ``scale * 200``), rescored (mean of the
keypoint scores above 0.2, times the box score), filtered per image by OKS-NMS at 0.9 and scored
with pycocotools' ``COCOeval``.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..boxes import Detector, parse_boxes
from ..codec import HeatmapCodec
from ..data.coco import PersonInstance, detection_instances, gt_instances, load_detections, validate_coco
from ..data.dataset import TopDownEvalDataset
from ..data.layout import DatasetError, resolve_layout
from ..data.transforms import read_image
from ..models.tinypose import ModelSpec, forward_with_flip, get_spec
from ..vocab import COCO_SIGMAS

if TYPE_CHECKING:
    from pycocotools.coco import COCO

__all__ = [
    "STAT_NAMES",
    "KeypointEvaluator",
    "coco_keypoint_stats",
    "decode_batch",
    "detector_results",
    "evaluate",
    "iter_heatmaps",
    "normalize_batch",
    "oks_iou",
    "oks_nms",
    "person_instances",
    "predict_keypoints",
    "rescore_and_nms",
]

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
"""Names of ``COCOeval.stats`` for keypoints, in order."""


def normalize_batch(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 RGB [N,3,H,W] -> float32 network input with PaddleDetection's ``NormalizeImage`` rounding.

    ``x * (1/255)`` in float32, then ``- mean`` and ``/ std`` each computed in float64 and stored as
    float32, as numpy's in-place ``im -= mean; im /= std`` on a float32 image does.
    """
    x = images.to(torch.float32) * (1.0 / 255.0)
    mean_t = torch.tensor(mean, dtype=torch.float64, device=x.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float64, device=x.device).view(1, -1, 1, 1)
    x = (x.to(torch.float64) - mean_t).to(torch.float32)
    return (x.to(torch.float64) / std_t).to(torch.float32)


def oks_iou(
    reference: np.ndarray, others: np.ndarray, reference_area: float, other_areas: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """Object keypoint similarity of one person's keypoints (flat [3K]) to each row of ``others`` [M,3K].

    ``ppdet/modeling/keypoint_utils.py::oks_iou`` without ``in_vis_thre`` (as the evaluation calls it).
    """
    variances = (sigmas * 2) ** 2
    dx = others[:, 0::3] - reference[0::3]
    dy = others[:, 1::3] - reference[1::3]
    e = (dx**2 + dy**2) / variances / ((reference_area + other_areas[:, None]) / 2 + np.spacing(1)) / 2
    return np.sum(np.exp(-e), axis=1) / e.shape[1] if e.shape[1] else np.zeros(len(others))


def oks_nms(
    keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, threshold: float, sigmas: np.ndarray | None = None
) -> list[int]:
    """Greedy OKS-NMS (``keypoint_utils.oks_nms``): keep the best, drop others with OKS > ``threshold``."""
    if len(keypoints) == 0:
        return []
    if sigmas is None:  # upstream's constants, np.array([.26, .25, ...]) / 10.0, bit for bit
        sigmas = np.round(np.asarray(COCO_SIGMAS, dtype=np.float64) * 10, 2) / 10.0
    flat = keypoints.reshape(len(keypoints), -1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        best = order[0]
        keep.append(int(best))
        overlap = oks_iou(flat[best], flat[order[1:]], areas[best], areas[order[1:]], sigmas)
        order = order[np.where(overlap <= threshold)[0] + 1]
    return keep


def rescore_and_nms(
    keypoints: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    box_scores: np.ndarray,
    image_ids: Sequence[int],
    in_vis_thre: float = 0.2,
    oks_thre: float = 0.9,
    pixel_std: float = 200.0,
) -> list[dict[str, Any]]:
    """``KeyPointTopDownCOCOEval.get_final_results``: per-person COCO results after rescoring and OKS-NMS.

    ``keypoints`` [N,K,3] float32 (x, y, score) in image pixels; ``centers``/``scales`` [N,2] as
    cropped (scale in ``pixel_std`` units; the OKS area is the padded box ``prod(scale * 200)``);
    ``box_scores`` [N] (1 for ground-truth boxes). The new score is the mean of the keypoint scores
    above ``in_vis_thre`` (0 if none) times the box score. Images come in order of first appearance,
    kept persons by descending score, as upstream writes them.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if len(keypoints) == 0:
        return []
    areas = np.prod(np.asarray(scales, dtype=np.float32) * np.float32(pixel_std), 1).astype(np.float64)
    box_scores = np.asarray(box_scores, dtype=np.float64)
    joint_scores = keypoints[:, :, 2]
    above = joint_scores > in_vis_thre
    # upstream adds the kept float32 scores one by one; cumsum is the same sequential float32 sum
    summed = np.cumsum(np.where(above, joint_scores, np.float32(0)), axis=1, dtype=np.float32)[:, -1]
    counts = above.sum(axis=1)
    mean = np.where(counts > 0, summed / np.maximum(counts, 1).astype(np.float32), np.float32(0))
    scores = np.where(counts > 0, mean.astype(np.float32) * box_scores, 0.0)

    by_image: dict[int, list[int]] = {}
    for index, image_id in enumerate(image_ids):
        by_image.setdefault(int(image_id), []).append(index)
    results = []
    for image_id, members in by_image.items():
        members_array = np.asarray(members)
        keep = oks_nms(keypoints[members_array], scores[members_array], areas[members_array], oks_thre)
        for k in keep or range(len(members)):
            index = members[k]
            results.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": keypoints[index].reshape(-1).tolist(),
                    "score": float(scores[index]),
                }
            )
    return results


def _coco_from(data: Mapping[str, Any]) -> COCO:
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dict(data)  # type: ignore[assignment]  # COCO-format data; the stub's TypedDict lists fixed keys
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_keypoint_stats(
    gt_data: Mapping[str, Any], results: Sequence[Mapping[str, Any]], verbose: bool = False
) -> dict[str, float]:
    """The ten ``COCOeval(iouType='keypoints')`` stats of ``results`` against the annotation data."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        return dict.fromkeys(STAT_NAMES, 0.0)
    gt = _coco_from(gt_data)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        dt = gt.loadRes([dict(r) for r in results])
        evaluator = COCOeval(gt, dt, "keypoints")
        evaluator.params.useSegm = None
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    if verbose:
        print("\n".join(line for line in buffer.getvalue().splitlines() if line.lstrip().startswith("Average")))
    return {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats)}


class KeypointEvaluator:
    """Collects decoded persons batch by batch, then rescoring + OKS-NMS + COCOeval (upstream's update/accumulate)."""

    def __init__(self, gt_data: Mapping[str, Any], in_vis_thre: float = 0.2, oks_thre: float = 0.9) -> None:
        self.gt_data = gt_data
        self.in_vis_thre = in_vis_thre
        self.oks_thre = oks_thre
        self.reset()

    def reset(self) -> None:
        self._parts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, float, int]] = {}

    def update(self, indices: Iterable[int], keypoints: np.ndarray, instances: Sequence[PersonInstance]) -> None:
        """Record decoded ``keypoints`` [B,K,3] of dataset rows ``indices`` (duplicates from padding are ignored)."""
        for index, kpts in zip(indices, keypoints):
            index = int(index)
            instance = instances[index]
            self._parts[index] = (kpts, instance.center, instance.scale, instance.score, instance.image_id)

    def __len__(self) -> int:
        return len(self._parts)

    @property
    def parts(self) -> dict[int, tuple]:
        """What was recorded, by dataset row: picklable, to gather across processes."""
        return dict(self._parts)

    def merge(self, parts: Mapping[int, tuple]) -> None:
        """Add rows recorded elsewhere (another DDP rank); a row seen twice is kept once."""
        self._parts.update(parts)

    def results(self) -> list[dict[str, Any]]:
        """Rescored, OKS-NMS-filtered COCO results in dataset order of the persons."""
        if not self._parts:
            return []
        rows = [self._parts[i] for i in sorted(self._parts)]
        return rescore_and_nms(
            np.stack([r[0] for r in rows]),
            np.stack([r[1] for r in rows]),
            np.stack([r[2] for r in rows]),
            np.array([r[3] for r in rows], dtype=np.float64),
            [r[4] for r in rows],
            self.in_vis_thre,
            self.oks_thre,
        )

    def compute(self, verbose: bool = False) -> dict[str, float]:
        return coco_keypoint_stats(self.gt_data, self.results(), verbose)


def detector_results(
    detector: Detector, gt_data: Mapping[str, Any], images_dir: str | Path, progress: bool = True
) -> list[dict[str, Any]]:
    """Run ``detector(image_bgr)`` on every image of the annotation file -> COCO detection results (xywh).

    The callable gets the image as ``cv2.imread`` gives it (BGR uint8 [H,W,3], EXIF orientation
    ignored, as PaddleDetection reads it) and returns person boxes with scores in any form
    :func:`~tinypose.boxes.parse_boxes` reads (an [N,5] array ``x1, y1, x2, y2, score``, or dicts
    with ``coordinate`` and ``score``); boxes become ``[x1, y1, x2 - x1, y2 - y1]`` as
    PaddleDetection's ``get_det_res`` writes them.
    """
    from tqdm.auto import tqdm

    results = []
    for image in tqdm(gt_data["images"], desc="detect", disable=not progress):
        path = Path(images_dir) / image["file_name"]
        boxes = parse_boxes(
            detector(read_image(str(path), bgr=True)),
            f"{path}: detector output",
            default_score=None,
            require_extent=False,
        )
        for x1, y1, x2, y2, score in boxes.tolist():
            results.append(
                {"image_id": image["id"], "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}
            )
    return results


def person_instances(
    gt_data: Mapping[str, Any],
    images_dir: str | Path,
    spec: ModelSpec,
    boxes: str | Path | Detector | Sequence[Mapping[str, Any]] | None = None,
    image_thre: float = 0.5,
    progress: bool = True,
) -> list[PersonInstance]:
    """The persons to evaluate: ground-truth boxes (``boxes=None``), a detection-results file, a list of
    COCO detection results, or a detector callable (boxes under ``image_thre`` dropped)."""
    if boxes is None:
        return gt_instances(gt_data, images_dir, spec.input_size, spec.num_joints)
    detections: Sequence[Mapping[str, Any]]
    if isinstance(boxes, (str, Path)):
        detections, source = load_detections(boxes), str(boxes)
    elif callable(boxes):
        detections, source = detector_results(boxes, gt_data, images_dir, progress), "detector"
    else:
        detections, source = list(boxes), "detections"
    return detection_instances(
        detections, gt_data, images_dir, spec.input_size, image_thre, spec.num_joints, source=source
    )


def _heatmap_function(model: Any, device: torch.device | str | None) -> tuple[Callable[[torch.Tensor], Any], Any]:
    """A callable normalized batch -> heatmaps, and the device to put batches on."""
    if isinstance(model, torch.nn.Module):
        device = torch.device(device) if device is not None else next(model.parameters()).device
        model = model.to(device).eval()
        return model, device
    for attribute in ("backend", "model"):
        inner = getattr(model, attribute, None)
        if inner is not None and callable(inner) and not isinstance(model, torch.nn.Module):
            return _heatmap_function(inner, device)
    if callable(model):
        return model, torch.device(device) if device is not None else torch.device("cpu")
    raise TypeError(f"cannot evaluate {type(model).__name__}: expected a torch module or a callable batch -> heatmaps")


@torch.inference_mode()
def iter_heatmaps(
    model: Any,
    instances: Sequence[PersonInstance],
    spec: ModelSpec,
    flip: bool = True,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Per batch: dataset ``indices``, heatmaps, and the heatmaps of the mirrored crops (``None`` without flip)."""
    from tqdm.auto import tqdm

    forward, device = _heatmap_function(model, device)
    loader = torch.utils.data.DataLoader(
        TopDownEvalDataset(instances, spec), batch_size=batch_size, shuffle=False, num_workers=num_workers
    )
    for batch in tqdm(loader, desc="evaluate", disable=not progress):
        images = normalize_batch(batch["image"].to(device), spec.mean, spec.std)
        heatmaps, flipped = forward_with_flip(forward, images, flip)
        yield batch["index"].numpy(), _to_numpy(heatmaps), None if flipped is None else _to_numpy(flipped)


def _to_numpy(array: Any) -> np.ndarray:
    return array.detach().float().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)


def predict_keypoints(
    model: Any,
    instances: Sequence[PersonInstance],
    spec: ModelSpec,
    flip: bool = True,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> np.ndarray:
    """Keypoints [N,K,3] (x, y, score; float32) of every person, PaddleDetection's eval path."""
    codec = HeatmapCodec.from_spec(spec)
    outputs = np.zeros((len(instances), spec.num_joints, 3), dtype=np.float32)
    for indices, heatmaps, flipped in iter_heatmaps(
        model, instances, spec, flip, batch_size, device, num_workers, progress
    ):
        outputs[indices] = decode_batch(codec, heatmaps, flipped, [instances[i] for i in indices])
    return outputs


def decode_batch(
    codec: HeatmapCodec, heatmaps: Any, flipped: Any, instances: Sequence[PersonInstance], pixel_std: float = 200.0
) -> np.ndarray:
    """Codec decode with PaddleDetection's evaluation convention (box scale ``* 200`` in float32)."""
    centers = np.stack([i.center for i in instances])
    scales = np.stack([i.scale for i in instances]) * np.float32(pixel_std)
    keypoints, _ = codec.decode(_to_numpy(heatmaps), centers, scales, None if flipped is None else _to_numpy(flipped))
    return keypoints


def evaluate(
    model: Any,
    dataset_dir: str | Path | None = None,
    *,
    annotation_file: str | Path | None = None,
    images_dir: str | Path | None = None,
    model_name: str | None = None,
    boxes: str | Path | Detector | Sequence[Mapping[str, Any]] | None = None,
    image_thre: float = 0.5,
    flip: bool = True,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    output_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """COCO keypoint AP of ``model`` on a dataset's val split (or ``annotation_file`` + ``images_dir``).

    ``model``: a ``TinyPose`` module, any callable normalized batch -> heatmaps (a runtime backend),
    or an object holding one as ``.backend``/``.model`` (a predictor); ``model_name`` is needed when
    it is not a ``TinyPose``. ``boxes``: ``None`` for ground-truth boxes, else a COCO detection-results
    JSON path, a list of such results, or a detector callable (BGR image -> boxes, see
    :func:`detector_results`). With ``output_dir``, writes ``keypoints_results.json`` (the rescored persons) and ``evaluate_result.json``.
    Returns the ten stats by name (``AP``, ``AP50``, ... ``ARl``).
    """
    if annotation_file is None:
        if dataset_dir is None:
            raise DatasetError("evaluate needs dataset_dir, or annotation_file together with images_dir")
        layout = resolve_layout(dataset_dir, require=("val",))
        annotation_file, images_dir = layout.annotations("val"), layout.images_dir
    elif images_dir is None:
        raise DatasetError(f"{annotation_file}: pass images_dir together with annotation_file")
    spec_name = model_name or getattr(getattr(model, "spec", None), "name", None)
    if spec_name is None:
        raise ValueError("model_name is required when the model is not a tinypose TinyPose module")
    spec = get_spec(spec_name)
    gt_data, _ = validate_coco(annotation_file, images_dir, spec.num_joints)
    instances = person_instances(gt_data, images_dir, spec, boxes, image_thre, progress)
    keypoints = predict_keypoints(model, instances, spec, flip, batch_size, device, num_workers, progress)
    evaluator = KeypointEvaluator(gt_data)
    evaluator.update(range(len(instances)), keypoints, instances)
    results = evaluator.results()
    stats = coco_keypoint_stats(gt_data, results, verbose=progress)
    if output_dir is not None:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "keypoints_results.json").write_text(json.dumps(results))
        box_source = "ground truth" if boxes is None else (str(boxes) if isinstance(boxes, (str, Path)) else "detector")
        report = {
            "done_flag": True,
            "metrics": stats,
            "evaluation": {
                "model": spec.name,
                "annotation_file": str(annotation_file),
                "boxes": box_source,
                "image_thre": image_thre if boxes is not None else None,
                "flip": flip,
                "persons": len(instances),
            },
        }
        (output_dir / "evaluate_result.json").write_text(json.dumps(report, indent=2))
    return stats
