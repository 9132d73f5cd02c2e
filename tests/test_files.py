"""tinypose.files.atomic_write: the one way the project writes result files, weights and exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinypose.files import atomic_write


def test_the_file_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "weights.safetensors"
    with atomic_write(target) as temporary:
        temporary.write_bytes(b"complete")
        assert not target.exists() and temporary.parent == target.parent
    assert target.read_bytes() == b"complete"

    with pytest.raises(RuntimeError, match="crash"), atomic_write(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"complete"  # the earlier file is kept
    assert sorted(p.name for p in target.parent.iterdir()) == ["weights.safetensors"]  # no temporary left
