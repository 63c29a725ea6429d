"""``style-pipeline sql``: DuckDB views over a materialized store, local and on S3 (moto)."""

from __future__ import annotations

import csv
import io
import json

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from style_pipeline.cli import app
from style_pipeline.demo.samples import make_photos
from style_pipeline.settings import load_settings
from style_pipeline.sql import connect, discover_views, query, write_database
from style_pipeline.storage.store import Store, make_upath
from style_pipeline_tests.conftest import materialize_day

DAYS = ("2026-11-20", "2026-11-21")


def _materialize_raw_media() -> dict[str, int]:
    """raw_media for two days (2 and 3 photos); rows per day."""
    drop = load_settings().drop_path()
    counts = {}
    for i, day in enumerate(DAYS):
        make_photos(drop / day, 2 + i, seed=10 + i, size=(320, 240))
        assert materialize_day(day, "raw_media").success
        counts[day] = 2 + i
    return counts


def _write(store: Store, key: str, frame: pl.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    store.put_bytes(buffer.getvalue(), key)


def _other_layouts(store: Store) -> None:
    """The nested layouts: a sub-table by day and files of one partition."""
    for day, n in zip(DAYS, (1, 2), strict=True):
        _write(store, f"dedup_set/index/{day}.parquet", pl.DataFrame({"h": list(range(n))}))
        _write(store, f"sft_dataset/{day}/train.parquet", pl.DataFrame({"q": ["a"] * n}))
    _write(store, "embeddings/cache/clip/ab.parquet", pl.DataFrame({"x": [1]}))  # no day: no view


def _check_views(con: duckdb.DuckDBPyConnection, counts: dict[str, int]) -> None:
    got = query(con, "select partition, count(*) from raw_media group by all order by 1")
    assert got.rows == sorted(counts.items())
    cols = query(con, "select * from raw_media limit 1").columns
    assert {"media_id", "status", "partition"} <= set(cols)
    accepted = query(con, "select count(*) from raw_media where status = 'accepted'").rows
    assert accepted == [(sum(counts.values()),)]
    index = "select partition, count(*) from dedup_set_index group by 1 order by 1"
    assert query(con, index).rows == [(DAYS[0], 1), (DAYS[1], 2)]
    train = f"select count(*) from sft_dataset_train where partition = '{DAYS[1]}'"
    assert query(con, train).rows == [(2,)]


def test_views_over_a_local_store(tmp_path):
    counts = _materialize_raw_media()
    root = load_settings().storage_root()
    store = Store(root)
    _other_layouts(store)

    views = {v.name: v for v in discover_views(make_upath(root))}
    assert {"raw_media", "dedup_set_index", "sft_dataset_train"} <= set(views)
    assert "embeddings_cache" not in views and "embeddings" not in views
    assert views["raw_media"].files == 2 and views["raw_media"].glob == "raw_media/*.parquet"
    con, _ = connect(root)
    _check_views(con, counts)
    # a partition written after the views were made is in them (they read a glob)
    _write(store, "dedup_set/index/2026-11-22.parquet", pl.DataFrame({"h": [9]}))
    assert query(con, "select count(*) from dedup_set_index").rows == [(4,)]
    con.close()

    # a .duckdb file keeps the views; plain duckdb reads a local root's views as they are
    db = tmp_path / "views.duckdb"
    assert {v.name for v in write_database(root, db)} == set(views)
    with duckdb.connect(str(db), read_only=True) as plain:
        assert plain.sql("select count(*) from raw_media").fetchall() == [(5,)]


def test_columns_that_differ_by_day_are_unioned_by_name():
    store = Store(load_settings().storage_root())
    _write(store, f"chat_events/{DAYS[0]}.parquet", pl.DataFrame({"text": ["hi"]}))
    _write(
        store,
        f"chat_events/{DAYS[1]}.parquet",
        pl.DataFrame({"text": ["yo"], "source": ["twitch_irc"]}),
    )
    con, _ = connect(load_settings().storage_root())
    rows = query(con, "select partition, text, source from chat_events order by 1").rows
    assert rows == [(DAYS[0], "hi", None), (DAYS[1], "yo", "twitch_irc")]
    con.close()


def test_empty_store_has_no_views():
    con, views = connect(load_settings().storage_root())
    assert views == []
    con.close()


def test_cli_sql_table_csv_json_and_write_db(tmp_path):
    counts = _materialize_raw_media()
    runner = CliRunner()
    statement = "select partition, count(*) as n from raw_media group by all order by 1"

    out = runner.invoke(app, ["sql", statement, "--csv"])
    assert out.exit_code == 0, out.output
    assert list(csv.reader(io.StringIO(out.output))) == [
        ["partition", "n"],
        *([day, str(n)] for day, n in counts.items()),
    ]
    out = runner.invoke(app, ["sql", statement, "--json"])
    assert out.exit_code == 0, out.output
    assert [json.loads(line) for line in out.output.splitlines()] == [
        {"partition": day, "n": n} for day, n in counts.items()
    ]
    out = runner.invoke(app, ["sql", statement])
    assert out.exit_code == 0, out.output
    assert "2026-11-21" in out.output and "2 row(s)" in out.output

    db = tmp_path / "out" / "v.duckdb"
    out = runner.invoke(app, ["sql", "--write-db", str(db), "--tables"])
    assert out.exit_code == 0, out.output
    assert db.exists() and "raw_media" in out.output

    out = runner.invoke(app, ["sql", "select * from no_such_table"])
    assert out.exit_code == 1
    assert "raw_media" in out.output  # the views are listed with the error
    out = runner.invoke(app, ["sql", statement, "--csv", "--json"])
    assert out.exit_code != 0


@pytest.mark.s3
def test_views_over_an_s3_store(s3_root, monkeypatch, tmp_path):
    monkeypatch.setenv("STYLE_PIPELINE_STORAGE", s3_root)
    counts = _materialize_raw_media()
    store = Store(s3_root)
    assert store.root.protocol == "s3"
    _other_layouts(store)

    con, views = connect(s3_root)
    assert {"raw_media", "dedup_set_index", "sft_dataset_train"} <= {v.name for v in views}
    _check_views(con, counts)
    con.close()

    # the .duckdb file's S3 views work again once connect registers the filesystem
    db = tmp_path / "s3.duckdb"
    write_database(s3_root, db)
    con, _ = connect(s3_root, db)
    assert query(con, "select count(*) from raw_media").rows == [(sum(counts.values()),)]
    con.close()

    out = CliRunner().invoke(app, ["sql", "select count(*) as n from raw_media", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"n": sum(counts.values())}
