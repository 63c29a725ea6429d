"""building_dir: atomic model folders."""

import pytest

from style_pipeline.models.cache import building_dir


def test_success_renames_into_place(tmp_path):
    target = tmp_path / "cache" / "model-abc"
    with building_dir(target, "weights.bin") as tmp:
        (tmp / "weights.bin").write_bytes(b"w")
    assert (target / "weights.bin").read_bytes() == b"w"
    assert [p.name for p in target.parent.iterdir()] == ["model-abc"]


def test_failure_leaves_no_partial_folder(tmp_path):
    target = tmp_path / "cache" / "model-abc"
    with pytest.raises(RuntimeError), building_dir(target, "weights.bin") as tmp:
        (tmp / "weights.bin").write_bytes(b"half")
        raise RuntimeError("crash while saving")
    assert list(target.parent.iterdir()) == []


def test_a_concurrent_complete_build_wins(tmp_path):
    target = tmp_path / "cache" / "model-abc"
    with building_dir(target, "weights.bin") as tmp:
        (tmp / "weights.bin").write_bytes(b"mine")
        target.mkdir()  # another process finished first
        (target / "weights.bin").write_bytes(b"theirs")
        (target / "other").write_bytes(b"x")  # non-empty: rename over it fails
    assert (target / "weights.bin").read_bytes() == b"theirs"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model-abc"]
