"""S3 errors name bucket, root and credential source; stored files follow the umask (issue 17).

S3 cases run against the session's moto server on 127.0.0.1. Moto accepts any credentials
unless its IAM check is switched on (``moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0``, the
in-process form of its ``/moto-api/reset-auth`` switch), which the bad-credentials test does.
"""

from __future__ import annotations

import os
import stat

import dagster as dg
import polars as pl
import pytest

from style_pipeline.storage.io_managers import ParquetIOManagerFactory
from style_pipeline.storage.s3_errors import (
    StorageAccessDenied,
    StorageBucketMissing,
    StorageUnreachable,
    credential_source,
    describe_s3_error,
)
from style_pipeline.storage.store import Store

SECRET = "s3cr3t-value-never-shown"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


@pytest.mark.parametrize(
    ("umask", "file_mode", "dir_mode"),
    [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)],
    indirect=["umask"],
)
def test_stored_files_and_folders_follow_the_umask(umask, file_mode, dir_mode, tmp_path):
    root = tmp_path / "root"
    store = Store(str(root))
    store.put_bytes(b"bytes", "frames/2026-01-05/a.jpg")
    source = tmp_path / "source.bin"
    source.write_bytes(b"copied")
    os.chmod(source, 0o600)  # the source's own mode must not leak into the stored copy
    store.put_file(source, "raw_media/objects/ab/abc.bin")
    store.put_bytes(b"again", "frames/2026-01-05/a.jpg")  # a rewrite keeps the umask mode
    assert mode(root / "frames/2026-01-05/a.jpg") == file_mode
    assert mode(root / "raw_media/objects/ab/abc.bin") == file_mode
    assert mode(root / "frames/2026-01-05") == dir_mode
    assert mode(root / "raw_media/objects") == dir_mode


@pytest.mark.parametrize(
    ("umask", "file_mode"), [(0o022, 0o644), (0o077, 0o600)], indirect=["umask"]
)
def test_io_manager_tables_follow_the_umask(umask, file_mode, tmp_path):
    @dg.asset
    def table() -> pl.DataFrame:
        return pl.DataFrame({"n": [1]})

    root = tmp_path / "root"
    factory = ParquetIOManagerFactory(root=str(root))
    assert dg.materialize([table], resources={"io_manager": factory}).success
    assert mode(root / "table.parquet") == file_mode


@pytest.fixture
def s3_env(moto_server, monkeypatch):
    """Credentials from the environment, pointing at the loopback moto server."""
    import fsspec

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTKEY1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never probe 169.254.169.254
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    fsspec.filesystem("s3").clear_instance_cache()
    return moto_server


def test_missing_bucket_names_bucket_root_and_credential_source(s3_env):
    store = Store("s3://no-such-bucket-17/pipeline")
    with pytest.raises(StorageBucketMissing) as info:
        store.put_bytes(b"x", "frames/2026-01-05/a.jpg")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and info.value.reason == "bucket_missing"
    assert message.startswith("bucket_missing: S3 bucket 'no-such-bucket-17' does not exist")
    assert "storage root s3://no-such-bucket-17/pipeline" in message
    assert f"endpoint {s3_env}" in message
    assert "credentials from environment variables" in message and "…1234" in message
    assert "frames/2026-01-05/a.jpg" in message and "NoSuchBucket" in message
    assert SECRET not in message
    with pytest.raises(StorageBucketMissing, match="no-such-bucket-17"):
        store.read_bytes("frames/2026-01-05/a.jpg")


def test_unreachable_endpoint_names_it(s3_env, monkeypatch):
    import socket

    import fsspec

    with socket.socket() as s:  # a loopback port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    fsspec.filesystem("s3").clear_instance_cache()
    with pytest.raises(StorageUnreachable) as info:
        Store("s3://some-bucket/pipeline").read_bytes("a/b.txt")
    message = str(info.value)
    assert isinstance(info.value, ConnectionError) and info.value.reason == "endpoint_unreachable"
    assert message.startswith(f"endpoint_unreachable: S3 endpoint http://127.0.0.1:{port}")
    assert "'some-bucket'" in message and "storage root s3://some-bucket/pipeline" in message


def test_missing_key_in_an_existing_bucket_stays_a_plain_miss(s3_root):
    with pytest.raises(FileNotFoundError) as info:
        Store(s3_root).read_bytes("frames/2026-01-05/missing.jpg")
    assert not isinstance(info.value, StorageBucketMissing)


def test_io_manager_names_the_missing_bucket(s3_env):
    @dg.asset
    def table() -> pl.DataFrame:
        return pl.DataFrame({"n": [1]})

    factory = ParquetIOManagerFactory(root="s3://no-such-bucket-17b/pipeline")
    with pytest.raises(
        StorageBucketMissing, match=r"storage root s3://no-such-bucket-17b/pipeline"
    ):
        dg.materialize([table], resources={"io_manager": factory})


@pytest.fixture
def moto_checks_credentials(s3_root, monkeypatch):
    """Moto's IAM check on: the test's made-up access key is unknown to it, so refused."""
    import moto.settings

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGKEY9876")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    import fsspec

    fsspec.filesystem("s3").clear_instance_cache()
    return s3_root


@pytest.mark.parametrize("operation", ["put", "read", "exists", "list"])
def test_refused_credentials_name_bucket_root_and_source(moto_checks_credentials, operation):
    root = moto_checks_credentials
    bucket = root.removeprefix("s3://").split("/")[0]
    store = Store(root)
    calls = {
        "put": lambda: store.put_bytes(b"x", "a/b.txt"),
        "read": lambda: store.read_bytes("a/b.txt"),
        "exists": lambda: store.exists("a/b.txt"),
        "list": lambda: store.list("a"),
    }
    with pytest.raises(StorageAccessDenied) as info:
        calls[operation]()
    message = str(info.value)
    assert isinstance(info.value, PermissionError) and info.value.reason == "access_denied"
    assert message.startswith(f"access_denied: S3 refused access to bucket {bucket!r}")
    assert f"storage root {root}" in message
    assert "credentials from environment variables" in message and "…9876" in message
    assert SECRET not in message and "AKIAWRONGKEY9876" not in message


def test_credential_source_names_a_profile_from_the_credentials_file(tmp_path, monkeypatch):
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[trainer]\naws_access_key_id = AKIAPROFILE5555\naws_secret_access_key = {SECRET}\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_PROFILE", "trainer")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    source = credential_source()
    assert source.startswith("shared credentials file") and "'trainer'" in source
    assert "…5555" in source and SECRET not in source
    monkeypatch.setenv("AWS_PROFILE", "missing")
    assert "profile 'missing', unusable" in credential_source()
    monkeypatch.delenv("AWS_PROFILE")
    credentials.write_text("")
    assert credential_source().startswith("none found")


def test_credential_source_from_storage_options_never_shows_the_secret():
    source = credential_source({"key": "AKIAOPTION4321", "secret": SECRET})
    assert "storage options" in source and "…4321" in source and SECRET not in source
    assert credential_source({"anon": True}).startswith("anonymous")


@pytest.mark.parametrize(
    ("code", "start"),
    [
        ("NoSuchBucket", "bucket_missing: S3 bucket 'b' does not exist"),
        ("InvalidAccessKeyId", "access_denied: S3 refused access to bucket 'b'"),
        (None, "access_denied: S3 refused access to bucket 'b'"),
    ],
)
def test_describe_s3_error_is_one_readable_line(code, start):
    message = describe_s3_error(code, "detail", "b", "s3://b/p", "http://127.0.0.1:1", "env")
    assert message.startswith(start) and "\n" not in message
    assert "storage root s3://b/p, endpoint http://127.0.0.1:1, credentials from env" in message
    assert message.endswith(f"[{code or 'no credentials'}: detail]")


def test_s3_error_detail_is_redacted():
    """A server or library message that echoes a credential never reaches the error text."""
    from botocore.exceptions import ClientError
    from upath import UPath

    from style_pipeline.storage.s3_errors import explain_s3_error

    leaked = f"Forbidden: Authorization: Bearer sk-live1234567890abcdef aws_secret={SECRET}"
    exc = ClientError({"Error": {"Code": "AccessDenied", "Message": leaked}}, "PutObject")
    explained = explain_s3_error(exc, UPath("s3://bucket/root"))
    assert isinstance(explained, StorageAccessDenied)
    text = str(explained)
    assert "sk-live1234567890abcdef" not in text and SECRET not in text
    assert "access_denied: S3 refused access to bucket 'bucket'" in text


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(child.stdout)


def test_a_dead_writers_temp_file_is_swept_by_the_next_write(tmp_path):
    """kill -9 between creating a temp file and renaming it: the re-run removes it."""
    from style_pipeline.storage import store as store_mod

    folder = tmp_path / "frames" / "2026-11-30"
    folder.mkdir(parents=True)
    dead = folder / store_mod.temp_name("a.jpg", _dead_pid(), "dead0")
    alive = folder / store_mod.temp_name("b.jpg", os.getpid(), "11fe")  # a write in progress
    foreign = folder / ".c.jpg.0123abcd-1-x.tmp"  # another host sharing the folder
    for path in (dead, alive, foreign):
        path.write_bytes(b"partial")
    store_mod._swept_dirs.discard(folder)
    Store(str(tmp_path)).put_bytes(b"whole", "frames/2026-11-30/a.jpg")
    assert sorted(p.name for p in folder.iterdir()) == sorted(["a.jpg", alive.name, foreign.name])
    assert (folder / "a.jpg").read_bytes() == b"whole"
