"""Bad weights files: a clear WeightsError naming the file (and the tensor), never code execution,
never a partially loaded model."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import tinypose
from tinypose.families import convert_weights as convert
from tinypose.weights import WeightsError, read_pdparams

NAME = "PP-TinyPose_128x96"


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _RunsPython:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


@pytest.mark.parametrize(
    ("payload", "global_name"), [(_RunsShell, r"(posix|os)\.system"), (_RunsPython, r"builtins\.exec")]
)
def test_malicious_pickle_is_refused_without_running(tmp_path, payload, global_name) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps({"backbone.stem.conv1.conv.weight": payload(marker)}, protocol=4))
    with pytest.raises(WeightsError, match=rf"evil.pdparams: refusing to load: the pickle references {global_name}"):
        tinypose.build_model(NAME, pretrained=path)
    with pytest.raises(WeightsError):
        read_pdparams(path)
    assert not marker.exists()


def test_truncated_pdparams(random_pdparams, tmp_path) -> None:
    path = tmp_path / "cut.pdparams"
    path.write_bytes(random_pdparams.read_bytes()[:100_000])
    with pytest.raises(WeightsError, match=r"cut.pdparams: not a readable .pdparams pickle \(truncated or corrupt\?\)"):
        tinypose.build_model(NAME, pretrained=path)


def test_truncated_safetensors(random_pdparams, tmp_path) -> None:
    good = convert(random_pdparams, tmp_path / "good.safetensors", model_name=NAME)
    path = tmp_path / "cut.safetensors"
    path.write_bytes(good.read_bytes()[:-1000])
    with pytest.raises(
        WeightsError, match=r"cut.safetensors: not a readable safetensors file \(truncated or corrupt\?\)"
    ):
        tinypose.build_model(NAME, pretrained=path)


def test_missing_tensor(make_pdparams) -> None:
    path = make_pdparams(lambda arrays: arrays.pop("backbone.stem.conv1.norm._variance"))
    with pytest.raises(
        WeightsError, match=r"checkpoint.pdparams: .*1 missing \(first: backbone.stem.conv1.norm.running_var\)"
    ):
        tinypose.build_model(NAME, pretrained=path)


def test_extra_tensor(make_pdparams) -> None:
    path = make_pdparams(lambda arrays: arrays.update({"head.extra.weight": np.zeros(3, np.float32)}))
    with pytest.raises(WeightsError, match=r"checkpoint.pdparams: .*1 unexpected \(first: head.extra.weight\)"):
        tinypose.build_model(NAME, pretrained=path)


def test_shape_mismatch(make_pdparams) -> None:
    path = make_pdparams(lambda arrays: arrays.update({"final_conv.weight": np.zeros((17, 40, 3, 3), np.float32)}))
    with pytest.raises(
        WeightsError,
        match=r"checkpoint.pdparams: tensor final_conv.weight has shape \(17, 40, 3, 3\), the model expects \(17, 40, 1, 1\)",
    ):
        tinypose.build_model(NAME, pretrained=path)


def test_non_finite_values(make_pdparams) -> None:
    def poison(arrays):
        arrays["final_conv.bias"][3] = np.nan

    with pytest.raises(WeightsError, match=r"checkpoint.pdparams: tensor final_conv.bias contains NaN"):
        tinypose.build_model(NAME, pretrained=make_pdparams(poison))


def test_no_half_loaded_model(make_pdparams, monkeypatch) -> None:
    """The last tensor is bad: nothing may have been copied into any module before the error."""
    path = make_pdparams(lambda arrays: arrays.update({"final_conv.bias": np.zeros(16, np.float32)}))
    copied: list[str] = []
    original = torch.nn.Module.load_state_dict

    def spy(self, state_dict, *args, **kwargs):
        copied.append(type(self).__name__)
        return original(self, state_dict, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "load_state_dict", spy)
    with pytest.raises(WeightsError, match="final_conv.bias has shape"):
        tinypose.build_model(NAME, pretrained=path)
    assert copied == []  # checked completely before load_state_dict is ever called


def test_unknown_format_and_missing_file(tmp_path) -> None:
    with pytest.raises(WeightsError, match=r"nothing.pdparams: no such file"):
        tinypose.build_model(NAME, pretrained=tmp_path / "nothing.pdparams")
    odd = tmp_path / "weights.h5"
    odd.write_bytes(b"\0")
    with pytest.raises(WeightsError, match=r"weights.h5: unknown weights format '.h5'"):
        tinypose.build_model(NAME, pretrained=odd)
