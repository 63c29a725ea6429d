"""Store and IO managers against a local root, memory:// and a moto S3 server."""

import uuid

import dagster as dg
import polars as pl
import pytest

from style_pipeline.storage.io_managers import JsonIOManagerFactory, ParquetIOManagerFactory
from style_pipeline.storage.store import Store, check_key


@pytest.fixture(params=["local", "memory", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "root")
    if request.param == "memory":
        return f"memory://sp-{uuid.uuid4().hex[:8]}"
    return request.getfixturevalue("s3_root")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "..", "a//b", "./a", "a\\b", "a\x00b"])
def test_check_key_rejects_escaping_keys(key):
    with pytest.raises(ValueError):
        check_key(key)


def test_check_key_accepts_nested_keys():
    assert check_key("frames/2026-11-21/ab.jpg") == "frames/2026-11-21/ab.jpg"


def test_store_roundtrip(root, tmp_path):
    store = Store(root)
    store.put_bytes(b"hello", "a/b/c.txt")
    assert store.exists("a/b/c.txt")
    assert store.read_bytes("a/b/c.txt") == b"hello"
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 10_000)
    assert store.put_immutable(src, "objects/ab/abc.bin") is True
    src.write_bytes(b"changed")
    assert store.put_immutable(src, "objects/ab/abc.bin") is False  # never overwritten
    assert store.read_bytes("objects/ab/abc.bin") == b"x" * 10_000
    with store.local_copy("objects/ab/abc.bin") as local:
        assert local.read_bytes() == b"x" * 10_000
    assert store.list("objects/ab") == ["objects/ab/abc.bin"]
    with store.local_copies(["objects/ab/abc.bin", "a/b/c.txt"]) as paths:
        assert paths["a/b/c.txt"].read_bytes() == b"hello"
        assert paths["objects/ab/abc.bin"].stat().st_size == 10_000
    assert store.list("missing") == []


def test_local_writes_leave_no_temp_files(tmp_path):
    store = Store(str(tmp_path / "root"))
    store.put_bytes(b"1", "t/x.bin")
    store.put_bytes(b"2", "t/x.bin")
    assert [p.name for p in (tmp_path / "root" / "t").iterdir()] == ["x.bin"]
    assert store.read_bytes("t/x.bin") == b"2"


def test_failed_local_write_keeps_old_content(tmp_path):
    store = Store(str(tmp_path / "root"))
    store.put_bytes(b"old", "t/x.bin")
    with pytest.raises(FileNotFoundError):
        store.put_file(tmp_path / "does-not-exist", "t/x.bin")
    assert store.read_bytes("t/x.bin") == b"old"
    assert [p.name for p in (tmp_path / "root" / "t").iterdir()] == ["x.bin"]


DAILY = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_offset=1)


@dg.asset(partitions_def=DAILY)
def table_asset(context: dg.AssetExecutionContext) -> pl.DataFrame:
    return pl.DataFrame({"day": [context.partition_key], "n": [1]})


@dg.asset(partitions_def=DAILY)
def downstream(table_asset: pl.DataFrame) -> pl.DataFrame:
    return table_asset.with_columns(n=pl.col("n") + 1)


@dg.asset(partitions_def=DAILY, io_manager_key="json_io_manager")
def doc_asset(context: dg.AssetExecutionContext) -> dict:
    return {"partition": context.partition_key, "values": [1, 2]}


def test_io_managers_write_exact_paths_and_reload(root):
    resources = {
        "io_manager": ParquetIOManagerFactory(root=root),
        "json_io_manager": JsonIOManagerFactory(root=root),
    }
    result = dg.materialize(
        [table_asset, downstream, doc_asset], partition_key="2026-11-05", resources=resources
    )
    assert result.success
    store = Store(root)
    assert store.exists("table_asset/2026-11-05.parquet")
    assert store.exists("downstream/2026-11-05.parquet")
    assert store.exists("doc_asset/2026-11-05.json")
    assert result.output_for_node("downstream")["n"].to_list() == [2]
    import io
    import json

    reread = pl.read_parquet(io.BytesIO(store.read_bytes("downstream/2026-11-05.parquet")))
    assert reread.to_dicts() == [{"day": "2026-11-05", "n": 2}]
    assert json.loads(store.read_bytes("doc_asset/2026-11-05.json")) == {
        "partition": "2026-11-05",
        "values": [1, 2],
    }


def test_parquet_io_manager_refuses_non_dataframes(tmp_path):
    @dg.asset(partitions_def=DAILY)
    def not_a_table() -> dict:
        return {"a": 1}

    result = dg.materialize(
        [not_a_table],
        partition_key="2026-11-05",
        resources={"io_manager": ParquetIOManagerFactory(root=str(tmp_path))},
        raise_on_error=False,
    )
    assert not result.success
    assert not (tmp_path / "not_a_table" / "2026-11-05.parquet").exists()
