"""One-shot GPU check: every GPU measurement of issues 15 and 17 in one run of a few minutes.

    python benchmarks/gpu_check.py                      # from the repo root, on one CUDA GPU
    python benchmarks/gpu_check.py --weights-dir DIR --data-dir DIR   # real weights, the shared photos/video
    python benchmarks/gpu_check.py --device cpu --quick # dry run of the whole logic without a GPU

Sections, each row skipped with its reason when it cannot run (no tensorrt, no onnxruntime-gpu...):

1. Runtimes, both sizes: torch fp32 + CUDA graphs, torch fp16 + CUDA graphs, the compiled path
   (``inductor``: AOTInductor fp16 + CUDA graphs per batch bucket), ONNX Runtime CUDA, TensorRT fp16.
   Latency (median ms per call, batch already on the GPU, synchronized) at batches 1, 3, 8, 64, 130
   and 256 (TensorRT's profile ends at 64: 130 and 256 run in chunks), crops/s, setup seconds (the
   first compile for ``inductor``), and against the float32 CPU model on the same input: heatmap max
   abs diff and keypoint max diff in pixels (decoded by the predictor's codec).
2. Cold start of the compiled path from its cached artifact: a fresh process that imports tinypose,
   loads the package and runs one batch of 8 (the first compile is the setup time of section 1).
3. ``predict()`` and the pipeline, images/s on the shared photos and the 40-frame video, GPU vs CPU,
   and the largest keypoint difference between the two on the photos.
4. TensorRT's stderr scanned for "Using default stream" (issue 17): captured per row at the file
   descriptor level, echoed, and counted.

It ends with the issues' criteria, each PASS / FAIL / n/a with the measured number. ``--budget``
bounds the run: rows that would start after it are listed as skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no spinning CPU threads in the dry run

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tinypose  # noqa: E402 (after sys.path)
from tinypose.codec import HeatmapCodec  # noqa: E402
from tinypose.runtimes import RuntimeUnavailable, create_backend  # noqa: E402

DEFAULT_STREAM_WARNING = "Using default stream"
CRITERIA = {"b8_ms": 0.5, "b256_crops_s": 50_000, "cold_start_s": 20.0, "heatmap": 3e-3, "keypoint_px": 0.05}


def _weights(size: str, weights_dir: Path | None) -> Path | None:
    if weights_dir is None:
        return None
    for candidate in (
        weights_dir / f"tinypose_{size}" / "model.xml",
        weights_dir / f"PP-TinyPose_{size}.safetensors",
    ):
        if candidate.exists():
            return candidate
    return None


def _load(size: str, weights_dir: Path | None) -> tuple[tinypose.TinyPose, str]:
    path = _weights(size, weights_dir)
    name = f"PP-TinyPose_{size}"
    if path is not None:
        return tinypose.build_model(name, pretrained=path), str(path)
    torch.manual_seed(0)
    return tinypose.build_model(name), "random weights"


def _latency_ms(
    run: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, seconds: float, sync: Callable[[], None]
) -> float:
    for _ in range(3):
        run(batch)
    sync()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        start = time.perf_counter()
        run(batch)
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


@contextlib.contextmanager
def captured_stderr(sink: list[str]) -> Iterator[None]:
    """Everything written to file descriptor 2 (C++ libraries included) inside the block is appended to
    ``sink`` and echoed to the real stderr afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            sink.append(text)
            if text:
                sys.stderr.write(text)


def _configurations(device: torch.device, compile_path: bool) -> list[tuple[str, str, dict]]:
    if device.type == "cpu":
        rows = [("torch fp32 (cpu)", "torch", {}), ("onnxruntime (cpu)", "onnxruntime", {})]
        if compile_path:
            rows.append(("inductor fp32 (cpu)", "inductor", {}))
        return rows
    rows = [
        ("torch fp32 + CUDA graphs", "torch", {"cuda_graphs": True}),
        ("torch fp16 + CUDA graphs", "torch", {"precision": "fp16", "cuda_graphs": True}),
        ("onnxruntime CUDA fp32", "onnxruntime", {}),
        ("tensorrt fp16", "tensorrt", {}),
    ]
    if compile_path:
        rows.append(("inductor fp16 + CUDA graphs", "inductor", {"precision": "fp16"}))
    return rows


def _keypoints(codec: HeatmapCodec, heatmaps: torch.Tensor, spec: Any) -> np.ndarray:
    count = heatmaps.shape[0]
    centers = np.tile([spec.input_width / 2, spec.input_height / 2], (count, 1))
    scales = np.tile([spec.input_width, spec.input_height], (count, 1)).astype(np.float64)
    return codec.decode(heatmaps.float().cpu().numpy(), centers, scales)[0][..., :2]


def runtime_rows(args: argparse.Namespace, device: torch.device, start: float) -> list[dict]:
    """Section 1 (and 4): one row per runtime and size."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    configurations = _configurations(device, not args.no_compile)
    # The compiled path last for every size, so a slow compile only eats the remaining budget.
    order = [(c, s) for c in configurations if c[1] != "inductor" for s in args.sizes]
    order += [(c, s) for c in configurations if c[1] == "inductor" for s in args.sizes]
    models: dict[str, tuple] = {}
    rows: list[dict] = []
    for (label, name, options), size in order:
        row: dict[str, Any] = {"size": size, "label": label, "name": name, "options": options, "timings": {}}
        rows.append(row)
        if size not in models:
            model, source = _load(size, args.weights_dir)
            spec = model.spec
            generator = torch.Generator().manual_seed(0)
            batch = torch.randn(max(args.batches), 3, spec.input_height, spec.input_width, generator=generator)
            with torch.inference_mode():
                reference = model(batch)
            models[size] = (model, batch, reference, HeatmapCodec.from_spec(spec))
            print(f"{spec.name}: {source}", flush=True)
        model, batch, reference, codec = models[size]
        if time.perf_counter() - start > args.budget:
            row["note"] = f"skipped: past the {args.budget:.0f} s budget"
            continue
        stderr: list[str] = []
        try:
            with captured_stderr(stderr):
                built = time.perf_counter()
                backend = create_backend(name, model, device=device, cache_dir=args.cache_dir, **options)
                row["setup_s"] = time.perf_counter() - built
                diffs, keypoint_diffs = [], []
                for count in args.batches:
                    if row["timings"] and time.perf_counter() - start > args.budget:
                        break
                    crops = batch[:count].to(device)
                    out = backend(crops).float().cpu()
                    sync()
                    expected = reference[:count]
                    diffs.append(float((out - expected).abs().max()))
                    keypoint_diffs.append(
                        float(
                            np.abs(_keypoints(codec, out, model.spec) - _keypoints(codec, expected, model.spec)).max()
                        )
                    )
                    row["timings"][count] = _latency_ms(backend, crops, args.seconds, sync)
                row["heatmap_diff"], row["keypoint_diff"] = max(diffs), max(keypoint_diffs)
                row["note"] = (
                    f"heatmaps {row['heatmap_diff']:.1e}, keypoints {row['keypoint_diff']:.3f} px, "
                    f"setup {row['setup_s']:.1f} s"
                )
        except Exception as error:  # noqa: BLE001 (one row failing must not cost the whole table)
            if not isinstance(error, (RuntimeUnavailable, ImportError)):
                traceback.print_exc()
            row["note"] = f"skipped: {type(error).__name__}: {str(error).splitlines()[0][:140]}"
        row["default_stream_warnings"] = sum(text.count(DEFAULT_STREAM_WARNING) for text in stderr)
        print(f"  done {label} {size} at {time.perf_counter() - start:.0f} s", flush=True)
    return rows


COLD_START = """
import sys, time
start = time.perf_counter()
import torch, tinypose
from tinypose.runtimes import create_backend
name, size, device, cache_dir, weights, precision = sys.argv[1:7]
torch.manual_seed(0)  # the parent's random weights when none are given: the same cache key
model = tinypose.build_model(f"PP-TinyPose_{size}", pretrained=weights if weights != "-" else False)
options = {} if precision == "-" else {"precision": precision}
backend = create_backend(name, model, device=device, cache_dir=cache_dir, **options)
spec = model.spec
backend(torch.zeros(8, 3, spec.input_height, spec.input_width, device=device))
if device.startswith("cuda"):
    torch.cuda.synchronize()
print(f"ready {time.perf_counter() - start:.3f}")
"""


def cold_start(args: argparse.Namespace, device: torch.device, rows: list[dict]) -> list[dict]:
    """Section 2: a fresh process loading each compiled row's cached artifact."""
    out = []
    for row in rows:
        if row["name"] != "inductor" or "setup_s" not in row:
            continue
        weights = _weights(row["size"], args.weights_dir)
        precision = row["options"].get("precision", "-")
        command = [sys.executable, "-c", COLD_START, "inductor", row["size"], str(device), str(args.cache_dir)]
        command += [str(weights) if weights else "-", precision]
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        wall = time.perf_counter() - began
        ready = [line for line in done.stdout.splitlines() if line.startswith("ready")]
        entry = {"size": row["size"], "label": row["label"], "first_compile_s": row["setup_s"], "wall_s": wall}
        if done.returncode != 0 or not ready:
            entry["note"] = f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:160]}"
        else:
            entry["in_process_s"] = float(ready[0].split()[1])
        out.append(entry)
    return out


def _rate(run: Callable[[], int], repeat: int) -> float:
    run()  # warm-up (first batch, lazy exports)
    began, count = time.perf_counter(), 0
    for _ in range(repeat):
        count += run()
    return count / (time.perf_counter() - began)


def _images_per_second(predictor: Any, pipeline: Any, photos: list[str], video: str, args: Any) -> dict[str, float]:
    """images/s of ``predict()`` and the pipeline on the photos (repeated) and the first frames of the video."""

    def frames(source: Any, predict: Any) -> int:
        return sum(1 for _ in zip(range(args.frames), predict(source, batch_size=args.batch_size)))

    photo_list = photos * args.photo_repeat
    return {
        "predict photos": _rate(lambda: frames(photo_list, predictor.predict), 1),
        "predict video": _rate(lambda: frames(video, predictor.predict), 1),
        "pipeline photos": _rate(lambda: frames(photo_list, pipeline.predict), 1),
        "pipeline video": _rate(lambda: frames(video, pipeline.predict), 1),
    }


def predict_rows(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Section 3: images/s of predict() and the pipeline, this device vs the CPU, and their keypoint gap."""
    data = args.data_dir
    if data is None or not (data / "photos").is_dir() or not (data / "video" / "multi_person_demo.mp4").is_file():
        return [{"note": f"skipped: no photos/video under {data} (--data-dir)"}]
    photos = [str(p) for p in sorted((data / "photos").glob("*.jpg"))]
    video = str(data / "video" / "multi_person_demo.mp4")
    size = args.sizes[0]
    weights = _weights(size, args.weights_dir)
    detector = args.weights_dir / "picodet_s_320_lcnet_pedestrian" / "model.xml" if args.weights_dir else None
    if weights is None or detector is None or not detector.exists():
        return [{"note": "skipped: predict()/pipeline need real weights (--weights-dir with tinypose_* and picodet_*)"}]
    targets = [("cpu", "auto", {})] if device.type == "cpu" else []
    if device.type == "cuda":
        targets = [(str(device), "torch", {"precision": "fp16", "cuda_graphs": True}), ("cpu", "auto", {})]
    rows, keypoints = [], {}
    for target, backend, options in targets:
        predictor = tinypose.create_model(
            f"PP-TinyPose_{size}", model_dir=weights, device=target, backend=backend, backend_options=options
        )
        pipeline = tinypose.create_pipeline(
            pose=predictor, detector_model_dir=detector, device=target, batch_size=args.batch_size
        )
        entry: dict[str, Any] = {"device": target, **_images_per_second(predictor, pipeline, photos, video, args)}
        keypoints[target] = [
            [np.asarray(p["keypoints"])[:, :2] for p in result["boxes"]] for result in pipeline.predict(photos)
        ]
        rows.append(entry)
    if len(keypoints) == 2:
        gpu, cpu = keypoints.values()
        gaps = [np.abs(a - b).max() for g, c in zip(gpu, cpu) if len(g) == len(c) for a, b in zip(g, c)]
        rows.append({"keypoint_gap_px": float(max(gaps)) if gaps else float("nan")})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", nargs="+", default=["128x96", "256x192"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 3, 8, 64, 130, 256])
    parser.add_argument("--weights-dir", type=Path, default=None, help="tinypose_<size>/model.xml (+ picodet_*)")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with photos/ and video/ (../shared/data)")
    parser.add_argument("--seconds", type=float, default=0.5, help="timing per runtime and batch")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds after which remaining rows are skipped")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled (inductor) path")
    parser.add_argument("--no-predict", action="store_true", help="skip predict()/pipeline images/s")
    parser.add_argument("--cache-dir", type=Path, default=None, help="export cache (default: a fresh temp folder)")
    parser.add_argument("--batch-size", type=int, default=8, help="predict()/pipeline batch size")
    parser.add_argument("--frames", type=int, default=40, help="frames of the video (and photos) per measurement")
    parser.add_argument("--photo-repeat", type=int, default=8, help="the photos list repeated this many times")
    parser.add_argument("--quick", action="store_true", help="dry run: batches 1 and 3, 0.1 s timings, no compile")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.seconds, args.no_compile = [1, 3], 0.1, True
        args.frames, args.photo_repeat = 3, 1
    start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU visible to torch; run with --device cpu for a dry run", file=sys.stderr)
        return 2
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    shared = REPO.parent / "shared"
    if args.weights_dir is None and (shared / "weights" / "openvino").is_dir():
        args.weights_dir = shared / "weights" / "openvino"
    if args.data_dir is None and (shared / "data").is_dir():
        args.data_dir = shared / "data"
    args.cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="tinypose-gpu-check-"))
    _print_environment(device)
    rows = runtime_rows(args, device, start)
    _print_table(rows, args.batches)
    starts = cold_start(args, device, rows)
    for entry in starts:
        timing = (
            f"{entry['in_process_s']:.1f} s in the process, {entry['wall_s']:.1f} s wall with python start"
            if "in_process_s" in entry
            else entry["note"]
        )
        print(f"cold start {entry['size']} {entry['label']}: {timing} (first compile {entry['first_compile_s']:.0f} s)")
    predicted = [] if args.no_predict else predict_rows(args, device)
    for entry in predicted:
        print(
            "predict/pipeline:",
            ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()),
        )
    _print_criteria(rows, starts, predicted, device)
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


def _print_environment(device: torch.device) -> None:
    parts = [f"tinypose {tinypose.__version__}", f"torch {torch.__version__}", f"device {device}"]
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        parts += [
            f"{properties.name} (sm {properties.major}.{properties.minor})",
            f"CUDA {torch.version.cuda}",
            f"cuDNN {torch.backends.cudnn.version()}",
        ]
    for module in ("onnxruntime", "tensorrt", "triton"):
        try:
            imported = __import__(module)
            extra = f" {imported.get_available_providers()}" if module == "onnxruntime" else ""
            parts.append(f"{module} {imported.__version__}{extra}")
        except ImportError:
            parts.append(f"no {module}")
    print(", ".join(parts))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")


def _print_table(rows: list[dict], batches: list[int]) -> None:
    header = "".join(f"{f'b{b} ms':>10}" for b in batches) + "".join(f"{f'b{b} crops/s':>14}" for b in batches[-2:])
    print(f"\n{'size':<9}{'backend':<30}{header}  check")
    for row in rows:
        timings = row["timings"]
        if not timings:
            print(f"{row['size']:<9}{row['label']:<30}{'':>{10 * len(batches) + 28}}  {row['note']}")
            continue
        cells = "".join(f"{timings[b]:>10.3f}" if b in timings else f"{'-':>10}" for b in batches)
        rates = "".join(f"{b / timings[b] * 1e3:>14.0f}" if b in timings else f"{'-':>14}" for b in batches[-2:])
        warn = f", {row['default_stream_warnings']} default-stream warnings" if row["name"] == "tensorrt" else ""
        print(f"{row['size']:<9}{row['label']:<30}{cells}{rates}  {row['note']}{warn}")


def _verdict(value: float | None, limit: float, lower_is_better: bool = True) -> str:
    if value is None or value != value:
        return "n/a"
    ok = value <= limit if lower_is_better else value >= limit
    return "PASS" if ok else "FAIL"


def _print_criteria(rows: list[dict], starts: list[dict], predicted: list[dict], device: torch.device) -> None:
    print("\ncriteria (issue 15 on the GPU; issue 17 TensorRT):")
    for size in dict.fromkeys(row["size"] for row in rows):
        fp16 = [r for r in rows if r["size"] == size and r["timings"] and "fp32" not in r["label"]]
        if device.type == "cpu":
            fp16 = [r for r in rows if r["size"] == size and r["timings"]]
        b8s = [(r["timings"][8], r["label"]) for r in fp16 if 8 in r["timings"]]
        b8 = min(b8s) if b8s else None
        b256 = [(256 / r["timings"][256] * 1e3, r["label"]) for r in fp16 if 256 in r["timings"]]
        best256 = max(b256) if b256 else None
        print(
            f"  {size} batch 8: {f'{b8[0]:.3f} ms ({b8[1]})' if b8 else '-'} "
            f"[{_verdict(b8[0] if b8 else None, CRITERIA['b8_ms'])} <= {CRITERIA['b8_ms']} ms]; "
            f"batch 256: {f'{best256[0]:.0f} crops/s ({best256[1]})' if best256 else '-'} "
            f"[{_verdict(best256[0] if best256 else None, CRITERIA['b256_crops_s'], False)} >= 50,000]"
        )
    for row in rows:
        if "heatmap_diff" in row and "fp32" not in row["label"]:
            print(
                f"  {row['size']} {row['label']}: heatmaps {row['heatmap_diff']:.1e} "
                f"[{_verdict(row['heatmap_diff'], CRITERIA['heatmap'])} <= 3e-3], keypoints "
                f"{row['keypoint_diff']:.3f} px [{_verdict(row['keypoint_diff'], CRITERIA['keypoint_px'])} <= 0.05]"
            )
    for entry in starts:
        value = entry.get("in_process_s")
        print(
            f"  cold start {entry['size']}: {value if value is None else round(value, 1)} s [{_verdict(value, 20.0)} <= 20 s]"
        )
    gaps = [entry["keypoint_gap_px"] for entry in predicted if "keypoint_gap_px" in entry]
    if gaps:
        print(
            f"  pipeline keypoints GPU vs CPU: {gaps[0]:.3f} px [{_verdict(gaps[0], CRITERIA['keypoint_px'])} <= 0.05]"
        )
    trt = [row for row in rows if row["name"] == "tensorrt" and row["timings"]]
    if trt:
        warnings = sum(row["default_stream_warnings"] for row in trt)
        print(f"  tensorrt default-stream warnings: {warnings} [{'PASS' if warnings == 0 else 'FAIL'} == 0]")
    else:
        print("  tensorrt: not run here (no tensorrt or no GPU)")


if __name__ == "__main__":
    sys.exit(main())
