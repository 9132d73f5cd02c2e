"""One local Ray instance (2 CPUs) shared by every test of this folder; Ray's start-up is slow on 2 cores.

The tests skip with a message when the ``ray`` extra is not installed (``pip install -e ".[ray]"``). Those
that start Ray are marked slow (each takes 20-50 s on a busy 2-core machine); CI runs them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray", reason='needs the ray extra: pip install -e ".[ray]"')
pytest.importorskip("pyarrow", reason='needs the ray extra (pyarrow): pip install -e ".[ray]"')

import ray

RAY_CPUS = 2


@pytest.fixture(scope="session")
def ray_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A local Ray instance for the folder's tests: its address (for subprocess drivers) and resources."""
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    context = ray.init(
        num_cpus=RAY_CPUS,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield {"address": context.address_info["address"], "cpus": RAY_CPUS}
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def model_settings(openvino_dir: Path) -> dict[str, Any]:
    """The pipeline the tests run: PP-TinyPose 128x96 + PP-PicoDet 192, real weights (OpenVINO IR)."""
    return {
        "model": "PP-TinyPose_128x96",
        "model_dir": str(openvino_dir / "tinypose_128x96" / "model.xml"),
        "detector": "picodet_s_192_lcnet_pedestrian",
        "detector_model_dir": str(openvino_dir / "picodet_s_192_lcnet_pedestrian" / "model.xml"),
        "det_threshold": 0.5,
        "batch_size": 1,
        "device": "cpu",
    }
