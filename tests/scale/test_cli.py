"""``infer.py engine=ray`` and ``serve.py engine=ray``: strict options, and the batch job from the real
config on the folder's Ray instance (the same rows as ``run_batch``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tinypose.predict.cli import run_infer
from tinypose.scale import read_results
from tinypose.serve.cli import settings_from_config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("engine=spark", "engine='spark' is not an engine; use local or ray"),
        ("num_actors=0", "num_actors=0 is out of range; it must be at least 1"),
        ("num_actors=two", "num_actors='two' is not an integer"),
        ("cpus_per_actor=0", "cpus_per_actor=0 is out of range; it must be above 0"),
        ("gpus_per_actor=-1", "gpus_per_actor=-1 is out of range; it must be at least 0"),
        ("units_per_shard=0", "units_per_shard=0 is out of range"),
        ("frames_per_unit=1.5", "frames_per_unit=1.5 is not an integer"),
    ],
)
def test_infer_ray_options_are_strict(compose_config: Any, override: str, message: str) -> None:
    with pytest.raises(SystemExit, match=f"^error: {message}"):
        run_infer(compose_config("infer", ["engine=ray", override]))


def test_serve_engine_option(compose_config: Any) -> None:
    settings, _ = settings_from_config(compose_config("serve", ["engine=ray", "ray_address=auto"]))
    assert settings["engine"] == "ray" and settings["ray_address"] == "auto"
    assert settings_from_config(compose_config("serve", []))[0]["engine"] == "litserve"
    with pytest.raises(SystemExit, match="^error: engine='spark' is not an engine; use litserve or ray$"):
        settings_from_config(compose_config("serve", ["engine=spark"]))


@pytest.mark.slow
@pytest.mark.long
def test_infer_engine_ray_writes_parquet_and_resumes(
    ray_instance: dict, compose_config: Any, openvino_dir: Path, data_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    overrides = [
        f"input={data_dir / 'photos'}",
        "engine=ray",
        f"model_dir={openvino_dir / 'tinypose_128x96' / 'model.xml'}",
        "device=cpu",
        f"output={tmp_path / 'out'}",
        "units_per_shard=2",
    ]
    summary = run_infer(compose_config("infer", overrides))
    assert summary["units"] == 5 and summary["processed"] == 5 and summary["rows"] == 5  # one person per photo
    assert "5 input(s): 5 processed, 0 done before" in capsys.readouterr().out
    table = read_results(tmp_path / "out")
    assert sorted(Path(p).name for p in table.column("input_path").to_pylist()) == sorted(
        p.name for p in (data_dir / "photos").glob("*.jpg")
    )
    again = run_infer(compose_config("infer", overrides))
    assert again["processed"] == 0 and again["skipped"] == 5
    with pytest.raises(SystemExit, match="^error: model_dir=.*missing.xml: no such file or folder$"):
        missing = [o for o in overrides if not o.startswith("model_dir=")] + [f"model_dir={tmp_path / 'missing.xml'}"]
        run_infer(compose_config("infer", missing))
    with pytest.raises(SystemExit, match="^error: .*glob pattern matches no files$"):
        run_infer(compose_config("infer", [*overrides[1:], f"input={tmp_path / 'nothing' / '*.jpg'}"]))
