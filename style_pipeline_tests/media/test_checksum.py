import hashlib

import pytest

from style_pipeline.media.checksum import CHUNK_BYTES, sha256_bytes, sha256_file


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES + 7]
)
def test_sha256_file_matches_hashlib_across_chunk_boundaries(tmp_path, size):
    data = (bytes(range(251)) * (size // 251 + 1))[:size]
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_bytes(data) == sha256_file(path)


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_chunk_size_does_not_change_the_digest(tmp_path, chunk):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"style pipeline" * 1000)
    assert sha256_file(path, chunk_bytes=chunk) == sha256_file(path)


def test_known_digest_of_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.touch()
    assert sha256_file(path) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("chunk", [0, -1])
def test_rejects_non_positive_chunk(tmp_path, chunk):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="chunk_bytes"):
        sha256_file(path, chunk_bytes=chunk)


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        sha256_file(tmp_path / "nope")
