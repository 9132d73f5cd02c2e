"""Paddle Inference side of the benchmark: runs under the *peers* Python (paddlepaddle installed),
never imported by tinypose. Times a Paddle inference model on the CPU and prints one JSON line.

    /work/peers/bin/python benchmarks/paddle_runner.py MODEL_DIR --input x.npy --batches 1 32 \
        --threads 2 --seconds 1 --rounds 3 --output-npy out.npy

oneDNN (mkldnn) is disabled: it fails on these PP-TinyPose programs (see TEAM.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--input", type=Path, required=True, help=".npy [N,3,H,W] float32; rows are tiled to each batch")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output-npy", type=Path, help="write the heatmaps of --input here (for the parity check)")
    args = parser.parse_args(argv)

    import paddle.inference as paddle_infer

    files = {p.suffix: p for p in args.model_dir.iterdir() if p.suffix in (".json", ".pdmodel", ".pdiparams")}
    program = files.get(".json") or files[".pdmodel"]
    config = paddle_infer.Config(str(program), str(files[".pdiparams"]))
    config.disable_gpu()
    config.disable_mkldnn()
    config.set_cpu_math_library_num_threads(args.threads)
    config.disable_glog_info()
    predictor = paddle_infer.create_predictor(config)
    input_handle = predictor.get_input_handle(predictor.get_input_names()[0])
    output_handle = predictor.get_output_handle(predictor.get_output_names()[0])

    def run(batch: np.ndarray) -> np.ndarray:
        input_handle.reshape(list(batch.shape))
        input_handle.copy_from_cpu(batch)
        predictor.run()
        return output_handle.copy_to_cpu()

    sample = np.load(args.input).astype(np.float32)
    if args.output_npy:
        np.save(args.output_npy, run(sample))
    results = {}
    for size in args.batches:
        batch = np.ascontiguousarray(np.resize(sample, (size, *sample.shape[1:])))
        run(batch)
        rates = []
        for _ in range(args.rounds):
            count, start = 0, time.perf_counter()
            while True:
                run(batch)
                count += size
                elapsed = time.perf_counter() - start
                if elapsed >= args.seconds:
                    break
            rates.append(count / elapsed)
        results[str(size)] = sorted(rates)[len(rates) // 2]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import paddle

    print(json.dumps({"crops_per_s": results, "peak_rss_mb": peak_mb, "paddle": paddle.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
