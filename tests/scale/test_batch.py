"""Batch inference on real Ray Data (a local 2-CPU instance): the same keypoints as a single-process
``predict()``, every input exactly once, error rows, an actor killed mid-run, a re-run after the driver
was killed. The two-node test (``ray.cluster_utils.Cluster``) is in test_cluster.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from tinypose.pipeline import create_pipeline
from tinypose.predict import create_model
from tinypose.scale import completed_units, plan_units, read_results, run_batch
from tinypose.scale.shards import SHARD_GLOB, UNITS_KEY

REPO = Path(__file__).resolve().parents[2]


def shard_unit_counts(output: Path) -> Counter:
    """How many shards record each unit key (1 for every unit when nothing is lost or duplicated)."""
    counts: Counter = Counter()
    for shard in output.glob(SHARD_GLOB):
        counts.update(json.loads(pq.read_schema(shard).metadata[UNITS_KEY]))
    return counts


def assert_exactly_once(output: Path, inputs: Any, frames_per_unit: int = 256) -> None:
    """Every planned unit is recorded by exactly one shard, and no (input, frame, person) row repeats."""
    counts = shard_unit_counts(output)
    planned = {unit.key for unit in plan_units(inputs, frames_per_unit)}
    assert set(counts) == planned
    assert [key for key, count in counts.items() if count != 1] == []
    table = read_results(output).to_pylist()
    rows = [(r["input_path"], r["frame_index"], r["person_index"]) for r in table if r["error"] is None]
    assert len(rows) == len(set(rows))


def people_by_input(rows: list[dict[str, Any]]) -> dict[tuple[str, int | None], list[dict[str, Any]]]:
    found: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    for row in rows:
        found.setdefault((row["input_path"], row["frame_index"]), []).append(row)
    return {key: sorted(people, key=lambda r: r["person_index"]) for key, people in found.items()}


def reference_people(runner: Any, inputs: Any) -> dict[tuple[str, int | None], list[dict[str, Any]]]:
    """Single-process ``predict()`` (one image per forward), as rows keyed like the output."""
    reference: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    for result in runner.predict(inputs, batch_size=1):
        people = result["boxes"] if "boxes" in result else result["kpts"]
        reference[(result["input_path"], result.get("frame_index"))] = list(people)
    return reference


def assert_same_people(rows: list[dict[str, Any]], reference: dict[tuple[str, int | None], list[dict]]) -> None:
    """Ray's rows hold exactly the people of the reference: the same boxes, scores and keypoints (bitwise)."""
    got = people_by_input(rows)
    for key, people in reference.items():
        found = got.get(key, [])
        assert len(found) == len(people), key
        for row, person in zip(found, people):
            np.testing.assert_array_equal(
                np.asarray(row["keypoints"], np.float32), person["keypoints"], err_msg=str(key)
            )
            assert row["kpt_score"] == pytest.approx(person["kpt_score"], abs=0, rel=1e-12)
            if "coordinate" in person:
                np.testing.assert_array_equal(row["box"], person["coordinate"])
                assert row["det_score"] == pytest.approx(person["det_score"], abs=0, rel=1e-12)
            else:
                assert row["box"] is None
    assert set(got) <= set(reference)  # no rows for frames or images predict() did not see


@pytest.mark.slow
@pytest.mark.long
def test_pipeline_matches_predict_on_photos_coco_and_video(
    ray_instance: dict, model_settings: dict, data_dir: Path, tmp_path: Path
) -> None:
    coco = sorted((data_dir / "coco_dev" / "images").glob("*.jpg"))[:3]
    video = data_dir / "video" / "multi_person_demo.mp4"
    inputs = [str(data_dir / "photos"), *map(str, coco), str(video)]
    output = tmp_path / "out"
    summary = run_batch(inputs, output, model_settings, num_actors=2, units_per_shard=2, frames_per_unit=16)
    assert summary["units"] == 5 + 3 + 3 and summary["processed"] == 11 and summary["errors"] == 0
    assert_exactly_once(output, inputs, 16)
    pipeline = create_pipeline(
        pose_model="PP-TinyPose_128x96",
        pose_model_dir=model_settings["model_dir"],
        detector="picodet_s_192_lcnet_pedestrian",
        detector_model_dir=model_settings["detector_model_dir"],
        det_threshold=0.5,
        device="cpu",
        smoothing=False,
    )
    reference = reference_people(pipeline, inputs)
    assert sum(1 for key in reference if key[1] is not None) == 40  # every frame of the clip
    rows = read_results(output).to_pylist()
    assert len(rows) == summary["rows"] == sum(len(p) for p in reference.values())
    assert_same_people(rows, reference)
    again = run_batch(inputs, output, model_settings, num_actors=2, units_per_shard=2, frames_per_unit=16)
    assert again["skipped"] == 11 and again["processed"] == 0  # all written: nothing runs


@pytest.mark.slow
@pytest.mark.long
def test_pose_only_and_bad_files_get_error_rows(
    ray_instance: dict, model_settings: dict, data_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("demo_2.jpg", "demo_3.jpg"):
        shutil.copy(data_dir / "photos" / name, folder / name)
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    manifest = tmp_path / "list.txt"
    manifest.write_text("# photos\nin/demo_2.jpg\nin/broken.jpg\n\nin/missing.jpg\nin/demo_3.jpg\n")
    settings = {"model": "PP-TinyPose_128x96", "model_dir": model_settings["model_dir"], "device": "cpu"}
    output = tmp_path / "out"
    summary = run_batch(str(manifest), output, settings, num_actors=1, units_per_shard=3)
    assert summary["units"] == 4 and summary["errors"] == 2
    rows = read_results(output).to_pylist()
    errors = {Path(r["input_path"]).name: r["error"] for r in rows if r["error"] is not None}
    assert set(errors) == {"broken.jpg", "missing.jpg"}
    assert all(message and len(message.splitlines()) == 1 for message in errors.values())
    good = [r for r in rows if r["error"] is None]
    assert {Path(r["input_path"]).name for r in good} == {"demo_2.jpg", "demo_3.jpg"}
    predictor = create_model("PP-TinyPose_128x96", settings["model_dir"], device="cpu")
    paths = [str(tmp_path / "in" / n) for n in ("demo_2.jpg", "demo_3.jpg")]
    assert_same_people(good, reference_people(predictor, paths))
    assert_exactly_once(output, str(manifest))


def worker_pids() -> list[int]:
    """Processes of this machine running a PoseWorker actor (Ray names its worker processes after the actor)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"PoseWorker" in command and b"ray::" in command:
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow
@pytest.mark.long
def test_actor_killed_mid_run_loses_and_duplicates_nothing(
    ray_instance: dict, model_settings: dict, data_dir: Path, tmp_path: Path
) -> None:
    images = sorted(map(str, (data_dir / "coco_dev" / "images").glob("*.jpg")))[:12]
    settings = {"model": "PP-TinyPose_128x96", "model_dir": model_settings["model_dir"], "device": "cpu"}
    output = tmp_path / "out"
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(output.glob(SHARD_GLOB))) < 2:
            time.sleep(0.05)
        pids = worker_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    summary = run_batch(images, output, settings, num_actors=2, units_per_shard=1)
    killer.join()
    assert killed, "no PoseWorker process was found to kill"
    assert len(list(output.glob(SHARD_GLOB))) == 12
    assert_exactly_once(output, images)
    assert summary["errors"] == 0
    assert summary["processed"] >= 12  # a batch retried after the kill is counted again; its shard is not


DRIVER = """
import json, sys
import ray
from tinypose.scale import run_batch
ray.init(address=sys.argv[1], log_to_driver=False)
run_batch(json.loads(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]), num_actors=1, units_per_shard=1)
"""


@pytest.mark.slow
@pytest.mark.long
def test_rerun_after_interruption_processes_only_what_is_missing(
    ray_instance: dict, model_settings: dict, data_dir: Path, tmp_path: Path
) -> None:
    images = sorted(map(str, (data_dir / "coco_dev" / "images").glob("*.jpg")))[:10]
    settings = {"model": "PP-TinyPose_128x96", "model_dir": model_settings["model_dir"], "device": "cpu"}
    output = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, ray_instance["address"], json.dumps(images), str(output), json.dumps(settings)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(output.glob(SHARD_GLOB))) < 3 and driver.poll() is None:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)  # the interruption: the driver dies, Ray ends its job's actors
    driver.wait()
    written, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 3:  # until no actor of the dead job writes any more
        now = len(list(output.glob(SHARD_GLOB)))
        if now != written:
            written, stable_since = now, time.monotonic()
        time.sleep(0.2)
    done = completed_units(output)
    assert 3 <= len(done) < len(images), "the driver was killed before or after the whole run"
    summary = run_batch(images, output, settings, num_actors=1, units_per_shard=1)
    assert summary["skipped"] == len(done)
    assert summary["processed"] == len(images) - len(done)
    assert_exactly_once(output, images)
    assert all(shard.exists() for shard in done.values())  # the first run's shards are kept as they were
