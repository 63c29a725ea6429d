"""building_dir: atomic model folders; sha256_of: weight digests."""

import hashlib
import os

import pytest

from style_pipeline.models.cache import building_dir, sha256_of


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


@pytest.mark.parametrize("payload", [b"", b"weights", bytes(range(256)) * 5000])
def test_sha256_of_matches_hashlib(tmp_path, payload):
    path = tmp_path / "model.safetensors"
    path.write_bytes(payload)
    assert sha256_of(path) == sha256_of(str(path)) == hashlib.sha256(payload).hexdigest()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_built_folder_follows_the_umask(tmp_path, umask):
    """mkdtemp's 0700 must not survive the rename: readers may run as another user."""
    old = os.umask(umask)
    try:
        with building_dir(tmp_path / "model", "done") as tmp:
            (tmp / "done").write_text("ok")
    finally:
        os.umask(old)
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o777 & ~umask
