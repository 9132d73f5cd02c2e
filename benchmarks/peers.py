"""The peers of the benchmarks: the OpenVINO runtime on the released IR, and Paddle Inference on
the same weights as ours (built here, run in the peers' Python by ``paddle_runner.py``).

A Paddle inference model with our weights: the PaddleX program in
``../shared/fixtures/paddle/paddlex_infer_128x96`` (PaddleDetection's own export of PP-TinyPose
128x96, random weights) gets the given model's weights written into a new ``inference.pdiparams``
(Paddle's ``save_combine`` layout, static names mapped by creation order), and, for 256x192, its
baked-in sizes widened by ``paddlex_models.widen_program``. The benchmark checks the result against
our heatmaps before timing it.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
from paddlex_models import widen_program

PEERS_PYTHON = "TINYPOSE_PEERS_PYTHON"
PROGRAM_SIZE = (128, 96)
"""Input (height, width) the PaddleX fixture program was exported for."""
RUNNER = Path(__file__).with_name("paddle_runner.py")


def openvino_ir_runner(xml: Path, threads: int):
    """The released IR on the OpenVINO CPU plugin (f32, ``threads``), one static model per batch size."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml))
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    requests: dict[int, Any] = {}

    def run(batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] not in requests:
            sized = model.clone()
            sized.reshape({0: list(batch.shape)})
            requests[batch.shape[0]] = core.compile_model(sized, "CPU", config).create_infer_request()
        request = requests[batch.shape[0]]
        request.infer({0: batch}, share_inputs=True)
        return request.get_output_tensor(0).data.copy()

    return run


def paddle_inference_model(model, program_dir: Path, out: Path) -> Path:
    """A Paddle inference folder (inference.json + inference.pdiparams) running ``model``'s weights."""
    from tinypose.weights.mapping import static_name_table
    from tinypose.weights.paddle_inference import read_program, write_pdiparams

    spec = model.spec
    size = (spec.input_height, spec.input_width)
    if size not in (PROGRAM_SIZE, (2 * PROGRAM_SIZE[0], 2 * PROGRAM_SIZE[1])):
        raise ValueError(f"{spec.name}: the {PROGRAM_SIZE} program only widens to twice its size")
    source = program_dir / "inference.json"
    parameters = read_program(source).parameters
    static = {name: re.sub(r"_deepcopy_\d+$", "", name) for name in parameters}
    table = static_name_table(model, list(static.values()), str(source))
    state = {name: tensor.detach().cpu().numpy() for name, tensor in model.state_dict().items()}
    out.mkdir(parents=True, exist_ok=True)
    program = json.loads(source.read_text())
    if size != PROGRAM_SIZE:
        widen_program(program)
    (out / "inference.json").write_text(json.dumps(program, separators=(",", ":")))
    write_pdiparams(
        out / "inference.pdiparams", {name: state[table[s]].astype(np.float32) for name, s in static.items()}
    )
    return out


class PaddlePeer:
    """Paddle Inference in the peers' Python, driven over a pipe by ``paddle_runner.py`` so that it is
    timed in the same round-robin (same load on the machine) as the in-process backends."""

    def __init__(self, python: Path, folder: Path, threads: int, timeout: float = 300.0) -> None:
        import tempfile

        self.timeout = timeout
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (open for the peer process's lifetime)
        command = [str(python), str(RUNNER), str(folder), "--threads", str(threads)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1
        )
        self.version = self._answer()["paddle"]

    def _answer(self) -> dict:
        import selectors

        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = self.process.stdout.readline()
            if not line:
                break
            if line.startswith("{"):
                answer = json.loads(line)
                if "error" in answer:
                    raise RuntimeError(f"paddle_runner.py: {answer['error']}")
                return answer
        self.process.kill()
        self.stderr.seek(0)
        tail = " | ".join(self.stderr.read().strip().splitlines()[-3:])
        raise RuntimeError(f"paddle_runner.py stopped answering (exit {self.process.poll()}): {tail}")

    def _ask(self, line: str) -> dict:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self._answer()

    def heatmaps(self, sample: Path, output: Path) -> np.ndarray:
        """Run the float32 batch saved at ``sample`` and return Paddle's heatmaps."""
        self._ask(f"check {sample} {output}")
        return np.load(output)

    def rate(self, batch: int, seconds: float) -> float:
        """Crops/s over ``seconds`` of back-to-back batches of ``batch`` crops (after one warm-up run)."""
        return float(self._ask(f"time {batch} {seconds}")["crops_per_s"])

    def close(self) -> float:
        """Stop the runner; returns its peak resident memory in MB."""
        try:
            return float(self._ask("quit")["peak_rss_mb"])
        finally:
            self.process.wait(timeout=30)
            self.stderr.close()


BUSY_LOOP = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(200_000): pass"
"""The competing busy process of the under-load cases (``python -c BUSY_LOOP``): it spins on one core
like ``while True: pass`` but ends by itself once its parent is gone, so a benchmark killed by a
timeout leaves no process burning a core behind it."""
