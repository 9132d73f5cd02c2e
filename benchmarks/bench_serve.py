"""Load test of the keypoint HTTP service on loopback: tinypose with and without batching, PaddleX's own service.

    python benchmarks/bench_serve.py [--clients 1 4 16 64] [--requests 400] [--repeats 2] [--backend onnxruntime]
        [--paddlex-config PIPELINE.yaml]   # PaddleX's ``paddlex --serve`` on the same weights, side by side
    python benchmarks/bench_serve.py --soak 10000 --clients 16      # 0 errors in 10,000 good requests?

Each server runs as its own process on 127.0.0.1 (``python serve.py``; ``paddlex --serve --pipeline
CONFIG`` in the peers' Python with oneDNN off). Clients are threads with one keep-alive connection
each, sending the photos of ``../shared/data/photos`` and the coco_dev images as base64 with
``visualize: false`` (the same request to every server). Each answer is checked against the first
answer that server gave for that image (same people, same keypoints within 1e-3 px): a mismatch,
a non-200 status or a transport error counts as an error. Measurements of the servers are
interleaved (server A, B, C, then again) and repeated; the table gives the median requests/s over
the repeats and the p50/p99 latency of all their requests, with the machine's load average.

``--paddlex-config``: a PaddleX ``human_keypoint_detection`` pipeline config whose ``SubModules``
name local ``model_dir`` folders holding the same weights as tinypose uses, as written by
``benchmarks/paddlex_picodet.py`` (PaddleDetection's own PicoDet exported with paddle from the shared
weights, and ``paddlex_models.build_paddlex_folder``'s PP-TinyPose; it also checks that PaddleX's
answers agree with tinypose's on the photos). Without it the PaddleX rows are left out.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYPOSE_SHARED", REPO.parent / "shared"))
PATH = "/human-keypoint-detection"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A service in a subprocess, ready once ``/health`` answers 200."""

    def __init__(self, name: str, command: list[str], port: int, env: dict[str, str], log: Path) -> None:
        self.name, self.port = name, port
        self.log = log.open("w")
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited ({self.process.returncode}); see {log}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(1.0)
        raise RuntimeError(f"{name} did not become healthy; see {log}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(120)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, dict[str, Any] | None]:
    connection.request("POST", PATH, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    raw = response.read()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, None


def same(answer: dict[str, Any], reference: dict[str, Any]) -> bool:
    a, b = answer["result"]["persons"], reference["result"]["persons"]
    if len(a) != len(b):
        return False
    return all(np.allclose(np.asarray(p["kpts"]), np.asarray(q["kpts"]), atol=1e-3) for p, q in zip(a, b))


def load(server: Server, bodies: list[bytes], references: list[dict], clients: int, requests: int) -> dict[str, Any]:
    """``requests`` requests from ``clients`` threads; requests/s, latencies, errors."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
        for index in counter:
            body, reference = bodies[index % len(bodies)], references[index % len(bodies)]
            start = time.perf_counter()
            try:
                status, answer = post(connection, body)
                problem = None if status == 200 and answer and same(answer, reference) else f"status {status}"
            except (OSError, http.client.HTTPException) as error:
                problem = f"{type(error).__name__}"
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if problem:
                    errors.append(problem)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return {"rps": requests / wall, "latencies": latencies, "errors": errors, "load": os.getloadavg()[0]}


def start_servers(args: argparse.Namespace, workdir: Path) -> list[Server]:
    weights = SHARED / "weights" / "openvino"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    common = [
        "host=127.0.0.1",
        f"model_dir={weights / 'tinypose_128x96' / 'model.xml'}",
        f"detector_weights={weights / 'picodet_s_320_lcnet_pedestrian' / 'model.xml'}",
        f"backend={args.backend}",
        f"threads={args.threads}",
        f"workers={args.workers}",
        "max_queue=256",
        "request_timeout=600",
    ]
    servers = []
    variants = {
        "tinypose, batching": [f"max_batch_size={args.max_batch}", f"batch_wait_ms={args.wait_ms}"],
        "tinypose, no batching": ["max_batch_size=1"],
    }
    if args.soak:  # the soak runs the batching server alone
        variants = dict(list(variants.items())[:1])
    for name, options in variants.items():
        port = free_port()
        command = [sys.executable, "serve.py", f"port={port}", *common, *options]
        servers.append(Server(name, command, port, env, workdir / f"{name.replace(', ', '_').replace(' ', '_')}.log"))
    if args.paddlex_config and not args.soak:
        port = free_port()
        paddlex = Path(args.paddlex_python).with_name("paddlex")
        command = [str(paddlex), "--serve", "--pipeline", str(args.paddlex_config), "--device", "cpu"]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        penv = {**env, "PADDLE_PDX_ENABLE_MKLDNN_BYDEFAULT": "False", "OMP_NUM_THREADS": str(args.threads)}
        servers.append(Server("PaddleX 3.7.2 (paddlex --serve)", command, port, penv, workdir / "paddlex.log"))
    return servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--requests", type=int, default=400, help="requests per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of each model process")
    parser.add_argument("--workers", type=int, default=1, help="model processes of each tinypose server")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--wait-ms", type=float, default=10)
    parser.add_argument("--paddlex-config", type=Path, default=None)
    parser.add_argument("--paddlex-python", default=os.environ.get("TINYPOSE_PEERS_PYTHON", "/work/peers/bin/python"))
    parser.add_argument("--soak", type=int, default=0, help="only send this many good requests to tinypose (batching)")
    parser.add_argument("--workdir", type=Path, default=REPO / "output" / "bench_serve")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    files = sorted((SHARED / "data" / "photos").glob("*.jpg")) + sorted(
        (SHARED / "data" / "coco_dev" / "images").glob("*.jpg")
    )
    bodies = [
        json.dumps({"image": base64.b64encode(f.read_bytes()).decode(), "visualize": False}).encode() for f in files
    ]
    print(f"{len(files)} images (photos + coco_dev); load average before start {os.getloadavg()[0]:.2f}", flush=True)
    servers = start_servers(args, args.workdir)
    try:
        references: dict[str, list[dict]] = {}
        for server in servers:  # first answers are the references; they also warm every server up
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
            references[server.name] = [post(connection, body)[1] or {} for body in bodies]
            connection.close()
            print(f"  {server.name}: ready on port {server.port}", flush=True)
        if args.soak:
            clients = args.clients[0]
            result = load(servers[0], bodies, references[servers[0].name], clients, args.soak)
            latencies = np.asarray(result["latencies"]) * 1000
            print(
                f"soak: {args.soak} requests, {clients} clients, {servers[0].name}: {result['rps']:.1f} requests/s, "
                f"p50 {np.percentile(latencies, 50):.0f} ms, p99 {np.percentile(latencies, 99):.0f} ms, "
                f"errors {len(result['errors'])}, load {result['load']:.1f}"
            )
            return
        rows: dict[tuple[str, int], list[dict]] = {}
        for repeat in range(args.repeats):
            for clients in args.clients:
                for server in servers:
                    result = load(server, bodies, references[server.name], clients, args.requests)
                    rows.setdefault((server.name, clients), []).append(result)
                    print(
                        f"  repeat {repeat + 1}, {clients:>2} clients, {server.name}: {result['rps']:.1f} req/s, "
                        f"errors {len(result['errors'])}, load {result['load']:.1f}",
                        flush=True,
                    )
        print(
            f"\n{args.requests} requests per measurement, {args.repeats} repeats interleaved, backend {args.backend}, "
            f"{args.workers} model process(es) of {args.threads} threads, batching: up to {args.max_batch} within {args.wait_ms:g} ms\n"
        )
        print("| clients | server | requests/s (median) | spread | p50 ms | p99 ms | errors | load avg |")
        print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for clients in args.clients:
            for server in servers:
                runs = rows[(server.name, clients)]
                rates = [r["rps"] for r in runs]
                latencies = np.concatenate([r["latencies"] for r in runs]) * 1000
                print(
                    f"| {clients} | {server.name} | {statistics.median(rates):.1f} | {min(rates):.1f}-{max(rates):.1f} | "
                    f"{np.percentile(latencies, 50):.0f} | {np.percentile(latencies, 99):.0f} | "
                    f"{sum(len(r['errors']) for r in runs)} | {statistics.mean(r['load'] for r in runs):.1f} |"
                )
        print("\nratios at each client count (median requests/s):")
        for clients in args.clients:
            base = statistics.median(r["rps"] for r in rows[(servers[1].name, clients)])
            line = f"  {clients:>2} clients: batching / no batching {statistics.median(r['rps'] for r in rows[(servers[0].name, clients)]) / base:.2f}x"
            if len(servers) > 2:
                paddlex = statistics.median(r["rps"] for r in rows[(servers[2].name, clients)])
                best = statistics.median(r["rps"] for r in rows[(servers[0].name, clients)])
                line += f", tinypose (batching) / PaddleX {best / paddlex:.2f}x"
            print(line)
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
