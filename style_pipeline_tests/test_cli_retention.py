"""``style-pipeline retention``: the plan as a table, a dry run deletes nothing."""

from typer.testing import CliRunner

from style_pipeline.cli import app
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store
from style_pipeline_tests.stages.retention_store import TODAY, build

runner = CliRunner()


def test_dry_run_prints_the_plan_and_deletes_nothing():
    dated = build(Store(load_settings().storage_root()))
    result = runner.invoke(app, ["retention", "--dry-run", "--today", TODAY.isoformat()])
    assert result.exit_code == 0, result.output
    for category in ("raw_media", "frames", "metrics", "lora_versions", "caches"):
        assert category in result.output
    assert "would delete lora_versions: lora_weights/2026-03-01.001" in result.output
    assert "kept lora_weights/2026-01-10.001: live LoRA version" in result.output
    assert "dry run: nothing deleted" in result.output
    assert dated.keys() == dated.gone | dated.kept


def test_without_dry_run_it_deletes_and_says_what():
    dated = build(Store(load_settings().storage_root()))
    result = runner.invoke(app, ["retention", "--today", TODAY.isoformat()])
    assert result.exit_code == 0, result.output
    assert "deleted frames: frames/2026-03-01: 2 file(s)" in result.output
    assert f"deleted {len(dated.gone)} key(s)" in result.output
    assert dated.keys() == dated.kept


def test_a_bad_date_is_refused():
    result = runner.invoke(app, ["retention", "--dry-run", "--today", "30.06.2026"])
    assert result.exit_code == 2
    assert "not a YYYY-MM-DD date" in result.output


def test_an_unreadable_live_document_exits_1():
    store = Store(load_settings().storage_root())
    store.put_bytes(b"{", "promoted_lora/live.json")
    result = runner.invoke(app, ["retention", "--dry-run"])
    assert result.exit_code == 1
    assert "retention deletes nothing" in result.output
