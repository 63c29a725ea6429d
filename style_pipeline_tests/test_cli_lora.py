"""``style-pipeline lora list|promote|rollback`` through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from style_pipeline.cli import app
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store
from style_pipeline.training.promotion import read_live
from style_pipeline_tests.training.published import publish_version

VERSIONS = ("2026-01-01.001", "2026-01-02.001", "2026-01-02.002")


@pytest.fixture
def store(monkeypatch):
    monkeypatch.setenv("USER", "tester")
    monkeypatch.setenv("COLUMNS", "200")  # rich would wrap the table at 80 columns
    store = Store(load_settings().storage_root())  # the autouse fixture's tmp root
    for version in VERSIONS:
        publish_version(store, version, profile="tiny" if version.endswith("2") else "pretrained")
    metrics = {
        "lora_version": "2026-01-02.002",
        "metrics": {"clip_score": 21.5, "fid": 140.25},
        "previous_partition": "2026-01-01",
        "regressions": [],
        "compared": ["clip_score"],
    }
    store.put_bytes(json.dumps(metrics).encode(), "metrics/2026-01-02.json")
    return store


def _run(*args: str):
    return CliRunner().invoke(app, ["lora", *args])


def test_list_shows_versions_metrics_and_live(store):
    _run("promote", "2026-01-01.001", "--reason", "first good one")
    result = _run("list")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "│ 2026" in line]
    rows = {line.split("│")[2].strip(): line for line in lines}
    assert list(rows) == ["2026-01-02.002", "2026-01-02.001", "2026-01-01.001"]
    sha = json.loads(store.read_bytes("lora_weights/2026-01-01.001/metadata.json"))["sha256"]
    assert "*" in rows["2026-01-01.001"] and sha[:12] in rows["2026-01-01.001"]
    assert "*" not in rows["2026-01-02.002"].split("│")[1]
    assert "clip_score 21.5" in rows["2026-01-02.002"] and "0 regressions" in rows["2026-01-02.002"]
    assert "tiny" in rows["2026-01-02.002"] and "pretrained" in rows["2026-01-01.001"]
    assert "promote  2026-01-01.001  by tester: first good one" in result.output


def test_promote_then_rollback_records_who_and_why(store):
    assert _run("promote", "2026-01-01.001").exit_code == 0
    result = _run("promote", "2026-01-02.002", "--by", "ana", "--reason", "sharper")
    assert result.exit_code == 0, result.output
    assert "live: 2026-01-02.002" in result.output and "was 2026-01-01.001" in result.output
    result = _run("rollback", "--reason", "faces melt")
    assert result.exit_code == 0, result.output
    live = read_live(store)
    assert live.version == "2026-01-01.001"
    assert [(e.action, e.version, e.by, e.reason) for e in live.history] == [
        ("promote", "2026-01-01.001", "tester", ""),
        ("promote", "2026-01-02.002", "ana", "sharper"),
        ("rollback", "2026-01-01.001", "tester", "faces melt"),
    ]
    assert _run("rollback", "2026-01-02.001", "--by", "bo").exit_code == 0
    assert read_live(store).version == "2026-01-02.001"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("promote", "2026-03-01.001"), "unknown_version"),
        (("promote", "../secrets"), "bad_version"),
        (("rollback",), "no_previous_live"),
        (("promote", "2026-01-01.001", "--by", " "), "no_author"),
    ],
)
def test_refusals_exit_1_with_the_reason_code(store, args, code):
    _run("promote", "2026-01-01.001")
    before = store.read_bytes("promoted_lora/live.json")
    result = _run(*args)
    assert result.exit_code == 1
    assert f"refused: {code}" in result.output
    assert store.read_bytes("promoted_lora/live.json") == before


def test_list_before_anything_is_published():
    result = _run("list")
    assert result.exit_code == 0 and "no LoRA version published" in result.output


def test_help_lists_the_commands():
    result = _run("--help")
    assert result.exit_code == 0
    assert all(name in result.output for name in ("list", "promote", "rollback"))
