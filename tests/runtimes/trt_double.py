"""A TEST DOUBLE of the ``tensorrt`` Python module (never in the package): the part of the TensorRT 10/11
API that tinypose/runtimes/tensorrt.py calls, with the signatures of the 10.13 bindings, recording what
it is asked so that the tests can check the plumbing on a machine without TensorRT or a GPU.

It runs no network: ``build_serialized_network`` returns a small byte string naming the settings,
and ``execute_async_v3`` zero-fills the output through its bound address (CPU tensors in the tests).
``make_tensorrt_double(version, ...)`` gives a fresh module; ``install(monkeypatch, module)`` puts it in
``sys.modules["tensorrt"]`` for one test, and ``fake_cuda(monkeypatch)`` makes torch look as if it had
one GPU (properties, device guard and streams), without touching any real CUDA call.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import sys
import threading
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import torch

ENGINE_MAGIC = b"trt-double-engine:"


class FakeStream:
    """Stands in for ``torch.cuda.Stream``: records ``wait_stream`` calls in a shared event log."""

    count = 0

    def __init__(self, device: Any = None, log: list | None = None) -> None:
        FakeStream.count += 1
        self.cuda_stream = 1000 + FakeStream.count
        self.device = device
        self.log = log if log is not None else []

    def wait_stream(self, other: FakeStream) -> None:
        self.log.append(("wait", self.cuda_stream, other.cuda_stream))


def make_tensorrt_double(
    version: str = "10.13.0.35",
    *,
    strongly_typed_flag: bool = True,
    fp16_flag: bool = True,
    context_fails: bool = False,
    address_fails: str | None = None,
    execute_seconds: float = 0.0,
) -> ModuleType:
    """A fresh double of ``tensorrt``: ``strongly_typed_flag`` / ``fp16_flag`` say whether
    ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` / ``BuilderFlag.FP16`` exist (TensorRT 11 has
    no FP16 flag); ``context_fails``: ``create_execution_context`` returns ``None``;
    ``address_fails``: ``set_tensor_address`` returns False for that tensor name; ``execute_seconds``:
    how long ``execute_async_v3`` takes (to see concurrent calls overlap or not)."""
    trt = ModuleType("tensorrt")
    trt.__version__ = version
    trt.__file__ = "<tensorrt test double>"
    state = SimpleNamespace(loggers=0, networks=[], flags_set=[], executions=[], active=0, max_active=0)
    trt.double_state = state  # type: ignore[attr-defined]
    lock = threading.Lock()

    class Logger:
        WARNING = 2

        def __init__(self, severity: int = 2) -> None:
            state.loggers += 1
            self.severity = severity

    network_flags = SimpleNamespace(STRONGLY_TYPED=0) if strongly_typed_flag else SimpleNamespace()
    builder_flags = SimpleNamespace(FP16=0) if fp16_flag else SimpleNamespace()

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags

    class OptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, name: str, low: tuple, opt: tuple, high: tuple) -> None:
            self.shapes[name] = (tuple(low), tuple(opt), tuple(high))

    class BuilderConfig:
        def __init__(self) -> None:
            self.pools: dict[Any, int] = {}
            self.profiles: list[OptimizationProfile] = []

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            self.pools[pool] = size

        def set_flag(self, flag: Any) -> None:
            state.flags_set.append(flag)

        def add_optimization_profile(self, profile: OptimizationProfile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

    class Builder:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def create_network(self, flags: int = 0) -> Network:
            network = Network(flags)
            state.networks.append(network)
            return network

        def create_builder_config(self) -> BuilderConfig:
            return BuilderConfig()

        def create_optimization_profile(self) -> OptimizationProfile:
            return OptimizationProfile()

        def build_serialized_network(self, network: Network, config: BuilderConfig) -> bytes:
            shapes = {name: list(map(list, s)) for p in config.profiles for name, s in p.shapes.items()}
            return ENGINE_MAGIC + json.dumps({"flags": network.flags, "shapes": shapes}).encode()

    class OnnxParser:
        def __init__(self, network: Network, logger: Logger) -> None:
            self.network = network
            self.num_errors = 0

        def parse_from_file(self, path: str) -> bool:
            return Path(path).is_file()

        def get_error(self, index: int) -> str:
            return ""

    class DataType:
        def __init__(self, name: str) -> None:
            self.name = name

    class ExecutionContext:
        def __init__(self, output_hw: tuple[int, int]) -> None:
            self.output_hw = output_hw
            self.input_shape: tuple[int, ...] = ()
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: tuple) -> bool:
            self.input_shape = tuple(shape)
            return 1 <= shape[0] <= 64

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return (self.input_shape[0], 17, *self.output_hw)

        def set_tensor_address(self, name: str, address: int) -> bool:
            if name == address_fails:
                return False
            self.addresses[name] = address
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            with lock:
                state.active += 1
                state.max_active = max(state.max_active, state.active)
            time.sleep(execute_seconds)
            count = 1
            for size in self.get_tensor_shape("heatmaps"):
                count *= size
            ctypes.memset(self.addresses["heatmaps"], 0, count * 4)  # float32 output
            state.executions.append(stream_handle)
            with lock:
                state.active -= 1
            return True

    class Engine:
        def __init__(self, settings: dict) -> None:
            low, _, _ = settings["shapes"]["image"]
            self.output_hw = (low[2] // 4, low[3] // 4)

        def create_execution_context(self) -> ExecutionContext | None:
            return None if context_fails else ExecutionContext(self.output_hw)

        def get_tensor_dtype(self, name: str) -> DataType:
            return DataType("FLOAT")

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
            if not data.startswith(ENGINE_MAGIC):
                return None
            return Engine(json.loads(data[len(ENGINE_MAGIC) :]))

    trt.Logger = Logger  # type: ignore[attr-defined]
    trt.NetworkDefinitionCreationFlag = network_flags  # type: ignore[attr-defined]
    trt.BuilderFlag = builder_flags  # type: ignore[attr-defined]
    trt.MemoryPoolType = SimpleNamespace(WORKSPACE=0)  # type: ignore[attr-defined]
    trt.Builder = Builder  # type: ignore[attr-defined]
    trt.OnnxParser = OnnxParser  # type: ignore[attr-defined]
    trt.Runtime = Runtime  # type: ignore[attr-defined]
    return trt


def install(monkeypatch: Any, module: ModuleType) -> ModuleType:
    """``import tensorrt`` gives ``module`` for the rest of the test."""
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


def fake_cuda(monkeypatch: Any, cuda_version: str = "12.8") -> SimpleNamespace:
    """torch looks as if it had one GPU: ``is_available``, device properties, a no-op device guard,
    :class:`FakeStream` streams sharing one log (``.log``) and one caller stream (``.caller``)."""
    log: list = []
    caller = FakeStream("caller", log)
    devices: list[Any] = []

    @contextlib.contextmanager
    def device_guard(device: Any) -> Any:
        devices.append(device)
        yield

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda device=None: SimpleNamespace(name="Double GPU", major=9, minor=0)
    )
    monkeypatch.setattr(torch.cuda, "device", device_guard)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: FakeStream(device, log))
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: caller)
    monkeypatch.setattr(torch.version, "cuda", cuda_version)
    return SimpleNamespace(log=log, caller=caller, devices=devices)
