"""Speed of the full multi-person pipeline (PP-PicoDet + PP-TinyPose) on real photos.

    python benchmarks/bench_pipeline.py [--photos ../shared/data/photos] [--repeats 5] [--threads 2] [--flip]

For each pose model (128x96, 256x192) it reports, on the same photos in the same process:

* images/s of ``create_pipeline("human_keypoint_detection").predict(folder)`` with one image per
  batch and with all photos in one batch (every person's crop of the batch in one forward);
* the share of that time spent in the detector (pre-processing, forward, NMS) and in the pose
  model's forward;
* the same pipeline run the way PaddleX runs it (one pose forward per detected person), as the
  baseline the speed-up is a ratio against;
* when the ``openvino`` package is present, detector + pose on the OpenVINO runtime with the
  same IRs and the same per-person loop, as a second reference.

``--video CLIP`` also runs the pipeline (tracking and smoothing on) over the clip three times in a
row as one input and prints frames/s and the process's peak memory after each pass: frames are
streamed, so the peak should not grow with the number of frames.

Timings on a shared machine are noisy: compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinypose.crop import box_xyxy_to_center_scale, get_affine_transform, warp_affine
from tinypose.detect import PersonDetector, build_detector, multiclass_nms, preprocess_image
from tinypose.models import get_spec
from tinypose.pipeline import clip_boxes, create_pipeline

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYPOSE_SHARED", REPO.parent / "shared"))


class Timer:
    """Wraps a callable and adds the seconds spent in it to ``totals[(variant, key)]``, where the
    variant is whatever :func:`round_robin` is running."""

    variant = ""

    def __init__(self, function, totals: dict[tuple[str, str], float], key: str) -> None:
        self.function, self.totals, self.key = function, totals, key

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.totals[(Timer.variant, self.key)] += time.perf_counter() - start


def round_robin(variants: dict, repeats: int, totals: dict[tuple[str, str], float]) -> dict[str, tuple[float, dict]]:
    """Time every variant ``repeats`` times, interleaved (so load changes hit all alike), after one
    warm-up each; returns per variant the fastest wall time and each timed part's share of its runs."""
    for name, run in variants.items():
        Timer.variant = name
        run()
    totals.clear()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            Timer.variant = name
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {
        name: (min(runs), {key: value / sum(runs) for (variant, key), value in totals.items() if variant == name})
        for name, runs in times.items()
    }


def paddlex_style(pipeline, images: list[np.ndarray]) -> None:
    """PaddleX's loop: the detector per image, then one pose forward per person."""
    for image in images:
        boxes = clip_boxes(pipeline.detect([image], pipeline.det_threshold)[0], image.shape[1], image.shape[0])
        for box in boxes:
            list(pipeline.pose.predict(image, boxes=[box]))


def openvino_reference(weights: Path, model: str, images: list[np.ndarray], detector: PersonDetector):
    """Detector and pose on the OpenVINO runtime (f32), per-person pose calls; None without openvino."""
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    det = core.compile_model(str(weights / "picodet_s_320_lcnet_pedestrian" / "model.xml"), "CPU", config)
    spec = get_spec(model)
    pose = core.compile_model(str(weights / f"tinypose_{spec.name.split('_', 1)[1]}" / "model.xml"), "CPU", config)
    mean, std = np.array(spec.mean, np.float32), np.array(spec.std, np.float32)

    def run() -> None:
        for image in images:
            pixels, (scale_y, scale_x) = preprocess_image(image, detector.spec)
            outputs = det(pixels[None])
            boxes = outputs["concat_8.tmp_0"][0] / np.array([scale_x, scale_y] * 2, np.float32)
            rows = multiclass_nms(boxes, outputs["transpose_8.tmp_0"][0])
            for row in rows[rows[:, 1] > 0.5]:
                center, scale = box_xyxy_to_center_scale(row[2:], spec.aspect_ratio)
                crop = warp_affine(image, get_affine_transform(center, scale, 0, spec.input_size), spec.input_size)
                pose(((crop[..., ::-1] / 255.0 - mean) / std).astype(np.float32).transpose(2, 0, 1)[None])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=SHARED / "data" / "photos")
    parser.add_argument("--weights-dir", type=Path, default=SHARED / "weights" / "openvino")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--flip", action="store_true", help="flip test on (crops and mirrored twins in one forward)")
    parser.add_argument("--video", type=Path, default=None, help="also measure a clip: frames/s and peak memory")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    files = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images = [cv2.imread(str(p)) for p in files]
    detector = PersonDetector(
        build_detector(320, args.weights_dir / "picodet_s_320_lcnet_pedestrian" / "model.xml"), "cpu", None
    )
    print(
        f"{len(files)} photos from {args.photos}, torch {torch.__version__}, {args.threads} thread(s), "
        f"flip={'on' if args.flip else 'off'}, best of {args.repeats} interleaved runs"
    )
    for model in ("PP-TinyPose_128x96", "PP-TinyPose_256x192"):
        size = model.split("_", 1)[1]
        pipeline = create_pipeline(
            pose_model=model,
            pose_model_dir=args.weights_dir / f"tinypose_{size}" / "model.xml",
            detector=detector,
            device="cpu",
            flip=args.flip,
        )
        people = sum(len(r["boxes"]) for r in pipeline.predict(images))
        totals: dict[tuple[str, str], float] = defaultdict(float)
        detector_detect, pose_backend = detector.detect, pipeline.pose.backend
        detector.detect = Timer(detector_detect, totals, "detector")  # type: ignore[method-assign]
        pipeline.pose.backend = Timer(pose_backend, totals, "pose")
        variants = {
            f"tinypose pipeline, batch {batch}": (
                lambda batch=batch, pipeline=pipeline: list(pipeline.predict(images, batch_size=batch))
            )
            for batch in (1, len(images))
        }
        variants["per-person loop (PaddleX's way)"] = lambda pipeline=pipeline: paddlex_style(pipeline, images)
        reference = openvino_reference(args.weights_dir, model, images, detector)
        if reference is not None:
            variants["OpenVINO runtime, per-person loop"] = reference
        rows = round_robin(variants, args.repeats, totals)
        detector.detect, pipeline.pose.backend = detector_detect, pose_backend  # type: ignore[method-assign]
        baseline = rows["per-person loop (PaddleX's way)"][0]
        print(f"\n{model}: {people} people in {len(images)} photos")
        print(f"  {'':38s} {'images/s':>9s} {'vs loop':>8s} {'detector':>9s} {'pose fwd':>9s}")
        for name, (seconds, share) in rows.items():
            detector_share = f"{share['detector']:.0%}" if "detector" in share else "-"
            pose_share = f"{share['pose']:.0%}" if "pose" in share else "-"
            print(
                f"  {name:38s} {len(images) / seconds:9.2f} {baseline / seconds:7.2f}x {detector_share:>9s} {pose_share:>9s}"
            )
    if args.video is not None:
        video_memory(args.video, args.weights_dir, detector)


def video_memory(video: Path, weights_dir: Path, detector: PersonDetector) -> None:
    """Frames/s and peak RSS after each of three passes over ``video`` (one input list)."""
    import resource

    pipeline = create_pipeline(
        pose_model="PP-TinyPose_128x96",
        pose_model_dir=weights_dir / "tinypose_128x96" / "model.xml",
        detector=detector,
        device="cpu",
        batch_size=4,
    )
    print(f"\n{video.name}, PP-TinyPose_128x96, batch 4, tracking + smoothing, three passes as one input:")
    start, frames, passes, current = time.perf_counter(), 0, 0, None

    def report() -> None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"  pass {passes}: {frames} frames, {frames / (time.perf_counter() - start):.2f} frames/s, "
            f"peak memory {peak:.0f} MB"
        )

    for result in pipeline.predict([str(video)] * 3):
        if result.video is not current:
            if current is not None:
                report()
            current, passes = result.video, passes + 1
        frames += 1
    report()


if __name__ == "__main__":
    main()
