"""Shared settings for these tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def one_torch_thread():
    """Many small forwards: one thread avoids OpenMP barrier stalls on a busy 2-core machine (two
    threads made a PicoDet forward ~6x slower there)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
