"""The TensorRT runtime's plumbing (issue 17), run on the CPU against a test double of the ``tensorrt``
module (tests/runtimes/trt_double.py) and a torch that pretends to have one GPU: version logic,
strong typing, one logger, cache key, parent folder and atomic write, checked context and
addresses, the lock, the own stream with waits both ways, and the CUDA-graph capture's device and
stream. Nothing here runs TensorRT or CUDA; what has run on real TensorRT is in docs/export.md."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path

import pytest
import torch

import tinypose
from tinypose.runtimes import RuntimeUnavailable
from tinypose.runtimes import tensorrt as trt_runtime

_spec = importlib.util.spec_from_file_location("trt_double", Path(__file__).with_name("trt_double.py"))
double = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(double)  # type: ignore[union-attr]

needs_onnx = pytest.mark.skipif(not importlib.util.find_spec("onnx"), reason="needs onnx (the [onnx] extra)")


@pytest.fixture
def model() -> tinypose.TinyPose:
    torch.manual_seed(0)
    return tinypose.build_model("PP-TinyPose_128x96").eval()


@pytest.fixture(autouse=True)
def fresh_logger(monkeypatch) -> None:
    monkeypatch.setattr(trt_runtime, "_LOGGERS", {})


@pytest.mark.parametrize("version", ["8.6.1", "9.3.0", "12.0.0"])
def test_only_tensorrt_10_and_11_are_accepted(monkeypatch, version: str) -> None:
    double.install(monkeypatch, double.make_tensorrt_double(version))
    with pytest.raises(RuntimeUnavailable, match=f"supports TensorRT 10 and 11, found {version}"):
        trt_runtime.import_tensorrt()


def test_strong_typing_is_decided_by_the_major_version(monkeypatch) -> None:
    ten = double.make_tensorrt_double("10.13.0.35")
    assert trt_runtime.network_flags(ten) == 1 << 0
    eleven = double.make_tensorrt_double("11.0.0", strongly_typed_flag=False, fp16_flag=False)
    assert trt_runtime.network_flags(eleven) == 0  # always strongly typed, no flag to pass
    eleven_with_flag = double.make_tensorrt_double("11.1.0", fp16_flag=False)
    assert trt_runtime.network_flags(eleven_with_flag) == 1 << 0
    broken_ten = double.make_tensorrt_double("10.0.0", strongly_typed_flag=False)
    with pytest.raises(RuntimeUnavailable, match="no STRONGLY_TYPED"):
        trt_runtime.network_flags(broken_ten)


@needs_onnx
@pytest.mark.parametrize(("version", "flag"), [("10.13.0.35", True), ("11.0.0", False)])
def test_build_never_sets_a_precision_flag(monkeypatch, tmp_path, model, version: str, flag: bool) -> None:
    trt = double.install(monkeypatch, double.make_tensorrt_double(version, strongly_typed_flag=flag, fp16_flag=flag))
    onnx_path = tmp_path / "model.onnx"
    tinypose.export.export_onnx(model, onnx_path, precision="fp16")
    engine = trt_runtime.build_engine(onnx_path, tmp_path / "a" / "b" / "x.engine", input_shape=(3, 128, 96))
    assert engine.read_bytes().startswith(double.ENGINE_MAGIC)
    assert trt.double_state.flags_set == []  # no BuilderFlag.FP16 (TensorRT 11 has none)
    assert json.loads(engine.read_bytes()[len(double.ENGINE_MAGIC) :])["flags"] == (1 if flag else 0)


def test_one_logger_per_process(monkeypatch) -> None:
    trt = double.make_tensorrt_double()
    loggers = {id(trt_runtime.tensorrt_logger(trt)) for _ in range(3)}
    assert len(loggers) == 1 and trt.double_state.loggers == 1


def test_cuda_major_of_torch_and_tensorrt_must_match(monkeypatch) -> None:
    trt = double.make_tensorrt_double()
    monkeypatch.setattr(trt_runtime, "tensorrt_cuda_major", lambda: 12)
    assert trt_runtime.check_cuda_match(trt, "12.8") == 12
    with pytest.raises(RuntimeUnavailable, match="CUDA 12 build but torch .* uses CUDA 13.0; install tensorrt-cu13"):
        trt_runtime.check_cuda_match(trt, "13.0")
    monkeypatch.setattr(trt_runtime, "tensorrt_cuda_major", lambda: None)  # unknown: not refused
    assert trt_runtime.check_cuda_match(trt, "13.0") == 13
    assert trt_runtime.cuda_major(None) is None


@needs_onnx
def test_export_cli_creates_the_parent_folder(monkeypatch, tmp_path, capsys) -> None:
    from tinypose.export.cli import main

    double.install(monkeypatch, double.make_tensorrt_double())
    double.fake_cuda(monkeypatch)
    output = tmp_path / "newdir" / "deeper" / "x.engine"
    assert main(["--model", "128x96", "--random", "--format", "tensorrt", "-o", str(output)]) == 0
    assert output.read_bytes().startswith(double.ENGINE_MAGIC)
    assert [p.name for p in output.parent.iterdir()] == ["x.engine"]  # no partial file left beside it
    assert "wrote" in capsys.readouterr().out


def _runtime(monkeypatch, tmp_path, model, **double_options):
    trt = double.install(monkeypatch, double.make_tensorrt_double(**double_options))
    cuda = double.fake_cuda(monkeypatch)
    runtime = trt_runtime.TensorRTRuntime(model, torch.device("cuda", 1), cache_dir=tmp_path)
    runtime.device = torch.device("cpu")  # the double's context fills CPU memory
    return trt, cuda, runtime


@needs_onnx
def test_cache_key_holds_cuda_major_and_recipe(monkeypatch, tmp_path, model) -> None:
    _, _, runtime = _runtime(monkeypatch, tmp_path, model)
    sidecar = json.loads(Path(str(runtime.engine_path) + ".json").read_text())
    assert sidecar["cuda_major"] == 12 and sidecar["recipe"] == trt_runtime.ENGINE_RECIPE
    assert sidecar["tensorrt"] == "10.13.0.35" and sidecar["gpu"] == "Double GPU"
    first = runtime.engine_path
    monkeypatch.setattr(trt_runtime, "ENGINE_RECIPE", trt_runtime.ENGINE_RECIPE + 1)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    assert trt_runtime.TensorRTRuntime(model, torch.device("cuda", 0), cache_dir=tmp_path).engine_path != first
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(trt_runtime, "ENGINE_RECIPE", trt_runtime.ENGINE_RECIPE - 1)
    assert trt_runtime.TensorRTRuntime(model, torch.device("cuda", 0), cache_dir=tmp_path).engine_path != first


@needs_onnx
def test_forward_runs_on_its_own_stream_with_waits_both_ways(monkeypatch, tmp_path, model) -> None:
    trt, cuda, runtime = _runtime(monkeypatch, tmp_path, model)
    own = runtime._stream.cuda_stream
    assert own != cuda.caller.cuda_stream
    cuda.log.clear()
    heatmaps = runtime(torch.randn(3, 3, 128, 96))
    assert heatmaps.shape == (3, 17, 32, 24) and float(heatmaps.abs().max()) == 0.0
    assert trt.double_state.executions == [own]  # never the caller's (default) stream
    assert cuda.log == [("wait", own, cuda.caller.cuda_stream), ("wait", cuda.caller.cuda_stream, own)]
    assert all(device == torch.device("cpu") for device in cuda.devices[-1:])  # forward pins its device


def test_enqueue_orders_both_ways() -> None:
    log: list = []
    caller, own = double.FakeStream("caller", log), double.FakeStream("own", log)
    assert trt_runtime.enqueue_on_own_stream(lambda handle: log.append(("run", handle)) is None, own, caller)
    assert log == [
        ("wait", own.cuda_stream, caller.cuda_stream),
        ("run", own.cuda_stream),
        ("wait", caller.cuda_stream, own.cuda_stream),
    ]


@needs_onnx
def test_a_failed_context_is_a_clear_error(monkeypatch, tmp_path, model) -> None:
    with pytest.raises(RuntimeError, match="could not create an execution context"):
        _runtime(monkeypatch, tmp_path, model, context_fails=True)


@needs_onnx
@pytest.mark.parametrize("name", ["image", "heatmaps"])
def test_a_refused_address_is_a_clear_error(monkeypatch, tmp_path, model, name: str) -> None:
    _, _, runtime = _runtime(monkeypatch, tmp_path, model, address_fails=name)
    with pytest.raises(RuntimeError, match=f"TensorRT refused the address of tensor '{name}'"):
        runtime(torch.randn(2, 3, 128, 96))


@needs_onnx
def test_concurrent_calls_take_turns(monkeypatch, tmp_path, model) -> None:
    trt, _, runtime = _runtime(monkeypatch, tmp_path, model, execute_seconds=0.02)
    threads = [threading.Thread(target=runtime, args=(torch.randn(2, 3, 128, 96),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(trt.double_state.executions) == 4 and trt.double_state.max_active == 1


def test_cuda_graph_capture_is_pinned_to_the_device_and_uses_the_warm_up_stream(monkeypatch, model) -> None:
    """TorchRuntime's CUDA graphs (and the lock around their buffers), with fake CUDA calls on the CPU."""
    from tinypose.runtimes.torch import TorchRuntime

    cuda = double.fake_cuda(monkeypatch)
    captures: list = []

    class FakeGraph:
        def replay(self) -> None:
            captures.append("replay")

    class FakeCapture:
        def __init__(self, graph, stream=None) -> None:
            captures.append(("capture", stream))

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            return None

    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", FakeCapture)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: threading.Lock())  # any context manager
    runtime = TorchRuntime(model, torch.device("cpu"))
    runtime.cuda_graphs, runtime.max_batch = True, runtime.MAX_GRAPH_BATCH
    pinned = torch.device("cuda", 1)
    monkeypatch.setattr(runtime, "_prepare", lambda batch: batch.float())
    real_guard = torch.cuda.device
    monkeypatch.setattr(runtime, "_device_guard", lambda: real_guard(pinned))
    runtime(torch.randn(3, 3, 128, 96))
    kind, stream = captures[0]
    assert kind == "capture" and isinstance(stream, double.FakeStream) and stream is not cuda.caller
    assert ("wait", stream.cuda_stream, cuda.caller.cuda_stream) in cuda.log  # warm-up after the caller's work
    assert cuda.devices == [pinned] and captures[1:] == ["replay"]
    assert set(runtime._graphs) == {4}
