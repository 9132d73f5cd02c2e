"""One-shot GPU check: every GPU backend on both sizes, latency at batch 1, 8 and 64, outputs vs CPU.

    python benchmarks/gpu_check.py                      # from the repo root, < 4 minutes on one GPU
    python benchmarks/gpu_check.py --weights-dir DIR    # real weights (e.g. a copy of ../shared/weights/openvino)
    python benchmarks/gpu_check.py --device cpu --quick # dry run of the logic without a GPU

Backends, each skipped with the reason when it cannot run: torch CUDA fp32 (TF32 convs as torch
defaults), fp32 + CUDA graphs, fp16, fp16 + CUDA graphs, ONNX Runtime's CUDA provider, TensorRT
fp16 (when ``tensorrt`` imports), and torch.compile fp16 last, for the first size only and within
what is left of ``--budget`` (rows that would start later are listed as skipped). Latency = median wall time of one call with the batch already on the GPU and the
heatmaps left there (synchronized), so it is the model's time; ONNX Runtime's row includes its host
copies. Each output is compared with the float32 PyTorch model on the CPU (same weights, same
input): max abs difference and the share of (crop, joint) pairs whose heatmap argmax agrees.
Random weights are fine for speed; for a meaningful argmax check pass real weights.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no spinning CPU threads in the dry run

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tinypose  # noqa: E402 (after sys.path)
from tinypose.runtimes import RuntimeUnavailable, create_backend  # noqa: E402


def _load(size: str, weights_dir: Path | None) -> tuple[tinypose.TinyPose, str]:
    name = f"PP-TinyPose_{size}"
    if weights_dir is not None:
        for candidate in (weights_dir / f"tinypose_{size}" / "model.xml", weights_dir / f"{name}.safetensors"):
            if candidate.exists():
                return tinypose.build_model(name, pretrained=candidate), str(candidate)
        print(f"  no weights for {size} in {weights_dir} (looked for tinypose_{size}/model.xml, {name}.safetensors)")
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


def _configurations(device: torch.device, include_compile: bool) -> list[tuple[str, str, dict]]:
    if device.type == "cpu":
        configurations = [("torch fp32 (cpu)", "torch", {}), ("onnxruntime (cpu)", "onnxruntime", {})]
        if include_compile:
            configurations.append(("torch.compile fp32 (cpu)", "torch", {"compile": True}))
        return configurations
    configurations = [
        ("torch fp32", "torch", {}),
        ("torch fp32 + CUDA graphs", "torch", {"cuda_graphs": True}),
        ("torch fp16", "torch", {"precision": "fp16"}),
        ("torch fp16 + CUDA graphs", "torch", {"precision": "fp16", "cuda_graphs": True}),
        ("onnxruntime CUDA fp32", "onnxruntime", {}),
        ("tensorrt fp16", "tensorrt", {}),
    ]
    if include_compile:
        configurations.append(("torch.compile fp16", "torch", {"precision": "fp16", "compile": True}))
    return configurations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", nargs="+", default=["128x96", "256x192"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 64])
    parser.add_argument(
        "--weights-dir",
        type=Path,
        default=None,
        help="folder with tinypose_<size>/model.xml or PP-TinyPose_<size>.safetensors",
    )
    parser.add_argument("--seconds", type=float, default=0.5, help="timing per backend and batch")
    parser.add_argument("--budget", type=float, default=150.0, help="seconds after which remaining rows are skipped")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--cache-dir", type=Path, default=None, help="export cache (default: a fresh temp folder)")
    parser.add_argument("--quick", action="store_true", help="batches 1 and 2, 0.1 s timings, no torch.compile")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.seconds, args.no_compile = [1, 2], 0.1, True
    start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU visible to torch; run with --device cpu for a dry run", file=sys.stderr)
        return 2
    weights_dir = args.weights_dir
    if weights_dir is None and (REPO.parent / "shared" / "weights" / "openvino").is_dir():
        weights_dir = REPO.parent / "shared" / "weights" / "openvino"
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    _print_environment(device)

    import tempfile

    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="tinypose-gpu-check-"))
    rows: list[tuple] = []
    configurations = _configurations(device, not args.no_compile)
    # torch.compile goes last for every size, so a slow compile only eats the remaining budget.
    order = [(c, s) for c in configurations if "compile" not in c[2] for s in args.sizes]
    order += [(c, args.sizes[0]) for c in configurations if "compile" in c[2]]  # one size: compiling takes minutes
    models: dict[str, tuple] = {}
    for (label, name, options), size in order:
        if size not in models:
            model, source = _load(size, weights_dir)
            spec = model.spec
            generator = torch.Generator().manual_seed(0)
            batch = torch.randn(max(args.batches), 3, spec.input_height, spec.input_width, generator=generator)
            with torch.inference_mode():
                reference = model(batch)
            models[size] = (model, batch, reference)
            print(f"{spec.name}: {source}")
        model, batch, reference = models[size]
        if time.perf_counter() - start > args.budget:
            rows.append((size, label, None, f"skipped: past the {args.budget:.0f} s budget"))
            continue
        try:
            built = time.perf_counter()
            backend = create_backend(name, model, device=device, cache_dir=cache_dir, **options)
            timings, diffs, agreements = {}, [], []
            for size_n in args.batches:
                if timings and time.perf_counter() - start > args.budget:
                    break
                crops = batch[:size_n].to(device)
                out = backend(crops)
                sync()
                expected = reference[:size_n]
                out_cpu = out.float().cpu()
                diffs.append(float((out_cpu - expected).abs().max()))
                agreements.append(
                    float((out_cpu.flatten(2).argmax(-1) == expected.flatten(2).argmax(-1)).float().mean())
                )
                timings[size_n] = _latency_ms(backend, crops, args.seconds, sync)
            rows.append(
                (
                    size,
                    label,
                    timings,
                    f"max|diff| {max(diffs):.1e}, argmax {100 * min(agreements):.1f}%, setup {time.perf_counter() - built:.0f} s",
                )
            )
        except Exception as error:  # noqa: BLE001 (one row failing must not cost the whole table)
            if not isinstance(error, (RuntimeUnavailable, ImportError)):
                traceback.print_exc()
            rows.append((size, label, None, f"skipped: {type(error).__name__}: {str(error).splitlines()[0][:140]}"))
        print(f"  done {label} {size} at {time.perf_counter() - start:.0f} s", flush=True)
    _print_table(rows, args.batches)
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
    for module in ("onnxruntime", "tensorrt"):
        try:
            imported = __import__(module)
            extra = f" {imported.get_available_providers()}" if module == "onnxruntime" else ""
            parts.append(f"{module} {imported.__version__}{extra}")
        except ImportError:
            parts.append(f"no {module}")
    print(", ".join(parts))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")


def _print_table(rows: list[tuple], batches: list[int]) -> None:
    header = "".join(f"{f'b{b} ms':>10}" for b in batches) + "".join(f"{f'b{b} crops/s':>14}" for b in batches[-1:])
    print(f"\n{'size':<9}{'backend':<28}{header}  check")
    for size, label, timings, note in rows:
        if timings is None:
            print(f"{size:<9}{label:<28}{'':>{10 * len(batches) + 14}}  {note}")
            continue
        cells = "".join(f"{timings[b]:>10.3f}" if b in timings else f"{'-':>10}" for b in batches)
        rate = f"{batches[-1] / timings[batches[-1]] * 1e3:>14.0f}" if batches[-1] in timings else f"{'-':>14}"
        print(f"{size:<9}{label:<28}{cells}{rate}  {note}")


if __name__ == "__main__":
    sys.exit(main())
