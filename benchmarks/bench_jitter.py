"""Keypoint jitter and lag on real video, with and without One-Euro smoothing (a measurement, not a test).

    python benchmarks/bench_jitter.py [--video ../shared/data/video/multi_person_demo.mp4] [--model PP-TinyPose_256x192]
                                      [--min-cutoff 1.0] [--beta 4.0] [--sweep]

Runs the full pipeline (PP-PicoDet 320 + PP-TinyPose, IoU tracking, One-Euro smoothing) over the
clip and reports, from the pipeline's own ``keypoints`` and ``keypoints_smoothed``:

* **jitter**: mean frame-to-frame displacement of the torso and leg joints (shoulders, hips,
  knees, ankles) of the stillest person (the track whose torso/legs move least relative to its
  height), raw vs smoothed, in pixels per frame;
* **lag**: for the limb joint that moves most (a wrist or ankle with mean score >= 0.5), the time
  shift in frames that best aligns the smoothed trajectory with the raw one over the frames where
  the joint moves (speed above its median); the goal is under two frames.

``--sweep`` re-filters the recorded raw tracks with a grid of ``min_cutoff``/``beta`` values (same
filter code) to show the trade-off. Weights come from ``--weights-dir`` (default ../shared/weights/openvino).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinypose.models import get_spec
from tinypose.pipeline import OneEuroConfig, OneEuroFilter, create_pipeline

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYPOSE_SHARED", REPO.parent / "shared"))
STILL_JOINTS = [5, 6, 11, 12, 13, 14, 15, 16]
"""Shoulders, hips, knees, ankles: still while a person stands."""
LIMB_JOINTS = [9, 10, 15, 16]
"""Wrists and ankles."""


def record(video: Path, model: str, weights_dir: Path, config: OneEuroConfig) -> tuple[dict[int, dict], float]:
    """Run the pipeline; per track ``{frame: (raw [17,3], smoothed [17,2], box height)}`` and the fps."""
    size = get_spec(model).name.split("_", 1)[1]
    pipeline = create_pipeline(
        pose_model=model,
        pose_model_dir=weights_dir / f"tinypose_{size}" / "model.xml",
        detector_model_dir=weights_dir / "picodet_s_320_lcnet_pedestrian" / "model.xml",
        device="cpu",
        batch_size=4,
        smoothing=config,
    )
    tracks: dict[int, dict] = {}
    fps = 0.0
    for result in pipeline.predict(str(video)):
        fps = result.video.fps
        for person in result["boxes"]:
            height = person["coordinate"][3] - person["coordinate"][1]
            tracks.setdefault(person["track_id"], {})[result["frame_index"]] = (
                np.asarray(person["keypoints"], np.float64),
                np.asarray(person["keypoints_smoothed"], np.float64)[:, :2],
                height,
            )
    return tracks, fps


def _series(track: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    frames = np.array(sorted(track))
    raw = np.stack([track[f][0] for f in frames])
    smooth = np.stack([track[f][1] for f in frames])
    heights = np.array([track[f][2] for f in frames])
    return frames, raw, smooth, heights


def _step(points: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Displacement between consecutive frames (only where the frames are consecutive)."""
    consecutive = np.diff(frames) == 1
    return np.linalg.norm(np.diff(points, axis=0), axis=-1)[consecutive]


def stillest(tracks: dict[int, dict], min_frames: int) -> int:
    """Track whose torso and legs move least per frame relative to its height."""
    best = None
    for track_id, track in tracks.items():
        frames, raw, _, heights = _series(track)
        if len(frames) < min_frames:
            continue
        motion = _step(raw[:, STILL_JOINTS, :2], frames).mean() / np.median(heights)
        if best is None or motion < best[0]:
            best = (motion, track_id)
    if best is None:
        raise SystemExit("no track is long enough to measure jitter")
    return best[1]


def _centered_average(values: np.ndarray, radius: int = 2) -> np.ndarray:
    padded = np.concatenate([values[:1].repeat(radius, 0), values, values[-1:].repeat(radius, 0)])
    return np.stack([padded[i : i + len(values)] for i in range(2 * radius + 1)]).mean(0)


def busiest_limb(tracks: dict[int, dict], min_frames: int) -> tuple[int, int]:
    """(track, joint) of the confidently detected wrist/ankle that travels furthest."""
    best = None
    for track_id, track in tracks.items():
        frames, raw, _, _ = _series(track)
        if len(frames) < min_frames:
            continue
        for joint in LIMB_JOINTS:
            if raw[:, joint, 2].mean() < 0.5:
                continue
            path = np.linalg.norm(np.diff(_centered_average(raw[:, joint, :2]), axis=0), axis=-1).sum()
            if best is None or path > best[0]:
                best = (path, track_id, joint)
    if best is None:
        raise SystemExit("no confidently detected wrist or ankle to measure lag on")
    return best[1], best[2]


def lag_frames(raw: np.ndarray, smooth: np.ndarray, moving: np.ndarray) -> float:
    """Shift (frames, 0..4 in steps of 0.05) that best aligns ``smooth[t]`` with ``raw[t - shift]``."""
    times = np.arange(len(raw), dtype=np.float64)
    best = None
    for shift in np.arange(0.0, 4.0001, 0.05):
        source = times - shift
        valid = moving & (source >= 0)
        shifted = np.stack([np.interp(source[valid], times, raw[:, k]) for k in range(raw.shape[1])], -1)
        error = np.mean(np.sum((smooth[valid] - shifted) ** 2, -1))
        if best is None or error < best[0]:
            best = (error, shift)
    return float(best[1])  # type: ignore[index]


def measure(tracks: dict[int, dict], still: int, limb: tuple[int, int]) -> dict[str, float]:
    frames, raw, smooth, heights = _series(tracks[still])
    jitter_raw = _step(raw[:, STILL_JOINTS, :2], frames).mean()
    jitter_smooth = _step(smooth[:, STILL_JOINTS], frames).mean()
    track_id, joint = limb
    frames, raw, smooth, _ = _series(tracks[track_id])
    speed = np.linalg.norm(np.gradient(_centered_average(raw[:, joint, :2]), axis=0), axis=-1)
    lag = lag_frames(raw[:, joint, :2], smooth[:, joint], speed > np.median(speed))
    return {
        "jitter_raw": float(jitter_raw),
        "jitter_smooth": float(jitter_smooth),
        "height": float(np.median(heights)),
        "lag": lag,
        "limb_speed": float(speed[speed > np.median(speed)].mean()),
    }


def refilter(tracks: dict[int, dict], config: OneEuroConfig, fps: float) -> dict[int, dict]:
    """The recorded raw tracks smoothed again with ``config`` (the pipeline's filter, offline)."""
    out = {}
    for track_id, track in tracks.items():
        smoother = OneEuroFilter(config)
        out[track_id] = {
            f: (raw, smoother(raw[:, :2], f / fps, height), height) for f, (raw, _, height) in sorted(track.items())
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", type=Path, default=SHARED / "data" / "video" / "multi_person_demo.mp4")
    parser.add_argument("--model", default="PP-TinyPose_256x192")
    parser.add_argument("--weights-dir", type=Path, default=SHARED / "weights" / "openvino")
    parser.add_argument("--min-cutoff", type=float, default=OneEuroConfig().min_cutoff)
    parser.add_argument("--beta", type=float, default=OneEuroConfig().beta)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sweep", action="store_true", help="also print a min_cutoff x beta grid")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = OneEuroConfig(min_cutoff=args.min_cutoff, beta=args.beta)

    start = time.perf_counter()
    tracks, fps = record(args.video, args.model, args.weights_dir, config)
    frame_count = max(max(t) for t in tracks.values()) + 1
    min_frames = int(0.5 * frame_count)
    still, limb = stillest(tracks, min_frames), busiest_limb(tracks, min_frames)
    result = measure(tracks, still, limb)
    print(
        f"{args.video.name}: {frame_count} frames at {fps:.2f} fps, {args.model}, {len(tracks)} tracks "
        f"({time.perf_counter() - start:.0f} s)"
    )
    print(f"One-Euro min_cutoff={config.min_cutoff} Hz, beta={config.beta}, d_cutoff={config.d_cutoff} Hz")
    reduction = 1 - result["jitter_smooth"] / result["jitter_raw"]
    print(
        f"still person (track {still}, ~{result['height']:.0f} px tall), torso+leg joints: "
        f"{result['jitter_raw']:.2f} px/frame raw -> {result['jitter_smooth']:.2f} smoothed ({reduction:.0%} less)"
    )
    verdict = "under" if result["lag"] < 2 else "NOT under"
    print(
        f"moving limb (track {limb[0]}, joint {get_spec(args.model).keypoint_names[limb[1]]}, "
        f"~{result['limb_speed']:.1f} px/frame while moving): lag {result['lag']:.2f} frames "
        f"= {1000 * result['lag'] / fps:.0f} ms ({verdict} two frames)"
    )
    if args.sweep:
        print("\nmin_cutoff  beta  jitter px/frame (raw -> smoothed)  lag frames")
        for min_cutoff in (0.5, 1.0, 2.0):
            for beta in (0.0, 1.0, 4.0, 16.0):
                grid = measure(refilter(tracks, OneEuroConfig(min_cutoff, beta), fps), still, limb)
                print(
                    f"{min_cutoff:10.1f}  {beta:4.0f}  {grid['jitter_raw']:6.2f} -> {grid['jitter_smooth']:5.2f}"
                    f"                  {grid['lag']:5.2f}"
                )


if __name__ == "__main__":
    main()
