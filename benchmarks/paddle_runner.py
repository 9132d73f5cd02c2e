"""Paddle Inference side of the benchmark: runs under the *peers* Python (paddlepaddle installed),
never imported by tinypose. Loads a Paddle inference model on the CPU and answers commands on
stdin with one JSON line each on stdout, so the benchmark can time it in the same round-robin as
the in-process backends:

    check IN.npy OUT.npy     run IN (float32 [N,3,H,W]) once, save the heatmaps to OUT
    time BATCH SECONDS       run a batch of BATCH crops repeatedly for SECONDS, answer crops/s
    quit                     answer the peak resident memory and the Paddle version, exit

    /work/peers/bin/python benchmarks/paddle_runner.py MODEL_DIR --threads 2

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
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import paddle
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
    sample: np.ndarray | None = None

    def run(batch: np.ndarray) -> np.ndarray:
        input_handle.reshape(list(batch.shape))
        input_handle.copy_from_cpu(batch)
        predictor.run()
        return output_handle.copy_to_cpu()

    def answer(payload: dict) -> None:
        print(json.dumps(payload), flush=True)

    answer({"ready": True, "paddle": paddle.__version__})
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "check":
            sample = np.load(rest[0]).astype(np.float32)
            np.save(rest[1], run(sample))
            answer({"ok": True})
        elif command == "time":
            if sample is None:
                answer({"error": "send `check` first (it loads the sample input)"})
                continue
            size, seconds = int(rest[0]), float(rest[1])
            batch = np.ascontiguousarray(np.resize(sample, (size, *sample.shape[1:])))
            run(batch)
            count, start = 0, time.perf_counter()
            while True:
                run(batch)
                count += size
                elapsed = time.perf_counter() - start
                if elapsed >= seconds:
                    break
            answer({"crops_per_s": count / elapsed})
        elif command == "quit":
            answer(
                {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "paddle": paddle.__version__}
            )
            return 0
        else:
            answer({"error": f"unknown command {command!r}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
