"""Two Ray nodes on this machine (``ray.cluster_utils.Cluster``, one CPU each): one actor per node,
every input exactly once, the same keypoints as a single-process ``predict()``. Its own process, as the
folder's local Ray instance lives in this one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinypose.predict import create_model
from tinypose.scale import read_results

from .test_batch import assert_exactly_once, assert_same_people, reference_people

REPO = Path(__file__).resolve().parents[2]

DRIVER = """
import json, sys
import ray
from ray.cluster_utils import Cluster
from tinypose.scale import run_batch

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False)
nodes = [node for node in ray.nodes() if node["Alive"]]
summary = run_batch(json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), num_actors=2, units_per_shard=1)
print(json.dumps({"nodes": len(nodes), "summary": summary}))
ray.shutdown()
cluster.shutdown()
"""


@pytest.mark.slow
@pytest.mark.long
def test_two_nodes(model_settings: dict, data_dir: Path, tmp_path: Path) -> None:
    images = sorted(map(str, (data_dir / "coco_dev" / "images").glob("*.jpg")))[:6]
    settings = {"model": "PP-TinyPose_128x96", "model_dir": model_settings["model_dir"], "device": "cpu"}
    output = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(images), str(output), json.dumps(settings)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["nodes"] == 2 and report["summary"]["processed"] == 6
    assert_exactly_once(output, images)
    predictor = create_model("PP-TinyPose_128x96", settings["model_dir"], device="cpu")
    assert_same_people(read_results(output).to_pylist(), reference_people(predictor, images))
