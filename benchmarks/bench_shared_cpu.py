"""How ``infer.py`` behaves on a shared CPU: each setting run idle and next to one busy process.

    python benchmarks/bench_shared_cpu.py [--rounds 2] [--only photos|video]

Runs the README's photos-folder and video commands (on ../shared/data) as subprocesses, each with
the default settings and with the settings ``infer.py --help`` recommends for shared machines,
once on an otherwise idle machine and once while one competing ``python -c "while True: pass"``
occupies a core. Cases and loads are interleaved in every round; the table gives the median wall
time (process start to exit) and the median images/s of the tqdm bar, with the range over rounds.
The competing process is started and ended by this script only.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from peers import BUSY_LOOP

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYPOSE_SHARED", REPO.parent / "shared"))

COMMANDS = {
    "photos": ["input=" + str(SHARED / "data" / "photos")],
    "video": [
        "input=" + str(SHARED / "data" / "video" / "multi_person_demo.mp4"),
        "detector=picodet_s_320_lcnet_pedestrian",
        "model=PP-TinyPose_256x192",
        "flip=true",
    ],
}
SETTINGS: dict[str, tuple[list[str], dict[str, str]]] = {
    "default": ([], {}),
    "threads=1": (["threads=1"], {}),
    "OMP_WAIT_POLICY=PASSIVE": ([], {"OMP_WAIT_POLICY": "PASSIVE"}),
    "PASSIVE + threads=1": (["threads=1"], {"OMP_WAIT_POLICY": "PASSIVE"}),
    "backend=onnxruntime": (["backend=onnxruntime"], {}),
}
RATE = re.compile(r"([\d.]+)(img/s|s/img)\]")


def run_once(
    repo: Path, command: list[str], options: list[str], env: dict[str, str], output: Path
) -> tuple[float, float | None]:
    """Wall seconds of one ``infer.py`` run and the last images/s its bar printed."""
    environment = {**os.environ, **env}
    environment.setdefault("TINYPOSE_WEIGHTS_DIR", str(SHARED / "weights" / "openvino"))
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(repo / "infer.py"), *command, *options, f"output={output}"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=repo,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"infer.py failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    rates = RATE.findall(done.stderr)  # tqdm writes s/img below one image per second
    if not rates:
        return wall, None
    value, unit = rates[-1]
    return wall, float(value) if unit == "img/s" else 1.0 / float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=sorted(COMMANDS), nargs="*", default=sorted(COMMANDS))
    parser.add_argument("--settings", nargs="*", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--output", type=Path, default=Path("/tmp/bench_shared_cpu"))
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose infer.py runs (default: this one)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    results: dict[tuple[str, str, str], list[tuple[float, float | None]]] = {}
    for round_index in range(args.rounds):
        for load in ("idle", "busy"):
            spinner = None
            if load == "busy":
                spinner = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
                time.sleep(1.0)
            try:
                for name in args.only:
                    for setting in args.settings:
                        options, env = SETTINGS[setting]
                        load_before = os.getloadavg()[0]
                        wall, rate = run_once(args.repo, COMMANDS[name], options, env, args.output)
                        results.setdefault((name, setting, load), []).append((wall, rate))
                        print(
                            f"round {round_index} {load:4s} {name:6s} {setting:24s} {wall:7.1f} s  {rate} img/s  (load {load_before:.1f})",
                            flush=True,
                        )
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    print(f"load average at end {os.getloadavg()[0]:.2f}\n")
    print("| command | setting | idle: wall s | idle: img/s | busy: wall s | busy: img/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")

    def cell(values: list[float]) -> str:
        if not values:
            return "-"
        return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

    for name in args.only:
        for setting in args.settings:
            row = [name, setting]
            for load in ("idle", "busy"):
                runs = results.get((name, setting, load), [])
                row += [cell([w for w, _ in runs]), cell([r for _, r in runs if r is not None])]
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
