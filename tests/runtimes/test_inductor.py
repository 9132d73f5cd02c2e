"""The compiled path (issue 15, item 1): the ``inductor`` runtime (AOTInductor package, cached on disk).

The fast tests check the registry entry, the option checks and the cache (compile once per key, load
afterwards, a new key for new weights/precision) with the compile and load replaced by stand-ins; the
test marked ``compile`` compiles the real package with Inductor's C++ backend (5-15 minutes on 2 cores,
so it is left out of a plain ``python -m pytest``; CI runs it as its own step) and compares its
heatmaps with torch fp32, then starts again from the cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch._inductor  # the stand-ins replace its loader

import tinypose
from tinypose.runtimes import available_backends, create_backend, get_runtime
from tinypose.runtimes import inductor as inductor_module
from tinypose.runtimes.inductor import InductorRuntime

needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="Inductor's C++ backend needs a C++ compiler"
)


@pytest.fixture
def model() -> tinypose.TinyPose:
    torch.manual_seed(0)
    return tinypose.build_model("PP-TinyPose_128x96").eval()


@needs_compiler
def test_registered_available_and_not_chosen_by_auto() -> None:
    entry = get_runtime("aoti")
    assert entry.name == "inductor" and "inductor" in available_backends("cpu")
    assert "cpu" not in entry.auto_rank and "cuda" not in entry.auto_rank  # onnxruntime is faster on the CPU here


def test_half_precision_and_graphs_are_for_cuda(model, tmp_path) -> None:
    with pytest.raises(ValueError, match="fp16/bf16 and cuda_graphs are for device='cuda'"):
        InductorRuntime(model, torch.device("cpu"), precision="fp16", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="precision must be one of fp32, fp16, bf16"):
        InductorRuntime(model, torch.device("cpu"), precision="int8", cache_dir=tmp_path)


@needs_compiler
def test_compiled_once_per_key_then_loaded(monkeypatch, model, tmp_path) -> None:
    compiled: list[Path] = []

    def fake_compile(self, model, path: Path) -> None:
        compiled.append(path)
        path.write_bytes(b"package")

    def fake_load(path: str, device_index: int = -1):
        assert Path(path).read_bytes() == b"package"
        return lambda batch: torch.zeros(batch.shape[0], 17, 32, 24)

    monkeypatch.setattr(InductorRuntime, "_compile", fake_compile)
    monkeypatch.setattr(torch._inductor, "aoti_load_package", fake_load)
    first = InductorRuntime(model, torch.device("cpu"), cache_dir=tmp_path)
    again = InductorRuntime(model, torch.device("cpu"), cache_dir=tmp_path)
    assert len(compiled) == 1 and again.package_path == first.package_path and again.compile_seconds == 0
    fields = json.loads(Path(str(first.package_path) + ".json").read_text())
    for key in ("weights_sha256", "torch", "device_name", "precision", "batch_range", "cuda_graph_buckets", "recipe"):
        assert key in fields
    assert fields["precision"] == "fp32" and fields["device_type"] == "cpu"
    assert first(torch.zeros(300, 3, 128, 96)).shape == (300, 17, 32, 24)  # chunks of 256
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # new weights: a new package
    changed = InductorRuntime(model, torch.device("cpu"), cache_dir=tmp_path)
    assert len(compiled) == 2 and changed.package_path != first.package_path
    monkeypatch.setattr(inductor_module, "RECIPE", inductor_module.RECIPE + 1)
    assert InductorRuntime(model, torch.device("cpu"), cache_dir=tmp_path).package_path != changed.package_path


@pytest.mark.slow
@pytest.mark.compile
@needs_compiler
def test_compiled_heatmaps_match_torch_and_the_cache_loads(model, tmp_path) -> None:
    backend = create_backend("inductor", model, cache_dir=tmp_path)
    assert backend.compile_seconds > 0
    batch = torch.randn(5, 3, 128, 96, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference = model(batch)
    for count in (1, 5):
        assert float((backend(batch[:count]) - reference[:count]).abs().max()) <= 1e-4
    again = create_backend("inductor", model, cache_dir=tmp_path)
    assert again.compile_seconds == 0 and again.package_path == backend.package_path
    assert float((again(batch) - reference).abs().max()) <= 1e-4
