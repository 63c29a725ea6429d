"""Retention on a store with dated objects, local and on a moto S3 server: exactly the
expired keys go; the live LoRA, what it was trained on and the newest versions stay."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from style_pipeline.contracts.retention import RetentionSettings
from style_pipeline.stages.retention import (
    RetentionRefused,
    apply_retention,
    plan_retention,
)
from style_pipeline.stages.retention_rules import Inventory, caches
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.promotion import promote
from style_pipeline_tests.stages.retention_store import (
    OLD_VERSION,
    ROOTS,
    TODAY,
    all_keys,
    build,
    cache_keys,
)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> Store:
    if request.param == "local":
        return Store(tmp_path / "storage")
    return Store(request.getfixturevalue("s3_root"))


def planned(plan) -> set[str]:
    return {d.key for d in plan.deletions}


def test_exactly_the_expired_keys_go(store, settings):
    dated = build(store)
    assert dated.keys() == dated.gone | dated.kept
    plan = plan_retention(store, settings, TODAY)
    assert planned(plan) == dated.gone
    lines: list[str] = []
    result = apply_retention(store, plan, lines.append)
    assert {d.key for d in result.deleted} == dated.gone and not result.skipped
    assert dated.keys() == dated.kept
    # one log line per day folder, version or cache, naming its reason
    assert "deleted lora_versions: lora_weights/2026-03-01.001: 2 file(s)" in "\n".join(lines)
    assert any("frames/2026-01-09" in line and "frames_expired" in line for line in lines)
    assert len(lines) == len(plan.lines())


def test_a_second_run_finds_nothing(store, settings):
    build(store)
    apply_retention(store, plan_retention(store, settings, TODAY), lambda _: None)
    assert plan_retention(store, settings, TODAY).deletions == ()


def test_planning_deletes_nothing(store, settings):
    dated = build(store)
    plan = plan_retention(store, settings, TODAY)
    assert plan.deletions and dated.keys() == dated.gone | dated.kept


def test_what_is_kept_and_why(tmp_path, settings):
    store = Store(tmp_path / "storage")
    build(store)
    text = "\n".join(plan_retention(store, settings, TODAY).protections)
    assert "lora_weights/2026-01-10.001: live LoRA version" in text
    assert "2026-01-08, 2026-01-10: training window of live promoted LoRA" in text
    assert "frames of 2026-06-20: newest curated day" in text


def test_totals_count_keys_and_bytes_per_category(tmp_path, settings):
    store = Store(tmp_path / "storage")
    build(store)
    totals = plan_retention(store, settings, TODAY).totals()
    assert totals["raw_media"] == (5, 10 + 20 + 10 + 1000)
    assert totals["caches"] == (0, 0)
    assert totals["lora_versions"][0] == 5


def test_on_a_quiet_year_what_the_next_run_reads_stays(tmp_path, settings):
    """A year later every day is old: the newest curated day (evaluation reference) and the
    newest metrics (regression baseline) stay, with the live LoRA's window."""
    store = Store(tmp_path / "storage")
    build(store)
    plan = plan_retention(store, settings, TODAY + dt.timedelta(days=365))
    gone = planned(plan)
    assert layout.table_key(layout.CURATED_FRAMES, "2026-06-20") not in gone
    assert layout.table_key(layout.CURATED_FRAMES, "2026-04-01") in gone
    assert layout.document_key(layout.METRICS, "2026-06-01") not in gone
    assert layout.frame_key("2026-01-08", "f1") not in gone  # live window
    assert layout.document_key(layout.TRAINING_DATASET, "2026-06-20") not in gone  # kept version
    assert layout.raw_object_key(ROOTS["again"], ".jpg") in gone


@pytest.mark.parametrize(("keep", "versions_gone"), [(1, 5), (3, 3), (6, 1)])
def test_newest_versions_kept(tmp_path, settings, keep, versions_gone):
    store = Store(tmp_path / "storage")
    build(store)
    limits = RetentionSettings(lora_keep_versions=keep)
    plan = plan_retention(store, settings.model_copy(update={"retention": limits}), TODAY)
    versions = {d.group for d in plan.deletions if d.category == "lora_versions"}
    assert layout.lora_version_dir("2026-01-10.001") not in versions  # live
    assert len(versions) == versions_gone  # one of them the publish that died
    assert layout.lora_version_dir("2026-02-15.001") in versions
    assert layout.lora_version_dir("2026-06-20.001") not in versions
    assert layout.lora_version_dir("2026-06-29.002") not in versions  # publish in progress


def test_a_version_promoted_after_planning_is_kept(store, settings):
    build(store)
    plan = plan_retention(store, settings, TODAY)
    promote(store, OLD_VERSION, by="test")
    lines: list[str] = []
    result = apply_retention(store, plan, lines.append)
    assert {d.key.rsplit("/", 1)[0] for d, _ in result.skipped} == {
        layout.lora_version_dir(OLD_VERSION)
    }
    assert store.exists(layout.lora_version_file(OLD_VERSION, "metadata.json"))
    assert f"kept {layout.lora_version_dir(OLD_VERSION)}: it became live" in "\n".join(lines)


def test_an_original_accepted_again_after_planning_is_kept(tmp_path, settings):
    store = Store(tmp_path / "storage")
    build(store)
    plan = plan_retention(store, settings, TODAY)
    store.put_bytes(b"{}", layout.ledger_key(ROOTS["old"], "2026-06-29"))
    result = apply_retention(store, plan, lambda _: None)
    assert store.exists(layout.raw_object_key(ROOTS["old"], ".mp4"))
    assert [d.key for d, _ in result.skipped] == [layout.raw_object_key(ROOTS["old"], ".mp4")]


def test_an_unreadable_live_document_deletes_nothing(tmp_path, settings):
    store = Store(tmp_path / "storage")
    dated = build(store)
    store.put_bytes(b"not json", layout.live_lora_key())
    with pytest.raises(RetentionRefused, match="retention deletes nothing: live_unreadable"):
        plan_retention(store, settings, TODAY)
    assert dated.keys() == dated.gone | dated.kept


def test_an_empty_store_plans_nothing(store, settings):
    assert plan_retention(store, settings, TODAY).deletions == ()


def _aged(store: Store, keys_and_days: list[tuple[str, int]], size: int = 100) -> None:
    """Write cache entries ``days`` old (local roots: their mtime)."""
    now = dt.datetime.combine(TODAY, dt.time(12), dt.UTC).timestamp()
    for key, days in keys_and_days:
        store.put_bytes(b"c" * size, key)
        stamp = now - days * 86400
        os.utime(store.local_path(key), (stamp, stamp))


def test_caches_by_age_then_oldest_first_by_size(tmp_path, settings):
    store = Store(tmp_path / "storage")
    old, mid, new = cache_keys("old"), cache_keys("mid"), cache_keys("new")
    _aged(store, [(k, 120) for k in old] + [(k, 60) for k in mid] + [(k, 1) for k in new])
    limits = RetentionSettings(cache_max_age_days=90, cache_max_bytes=650)
    plan = plan_retention(store, settings.model_copy(update={"retention": limits}), TODAY)
    by_reason = {(d.key, d.reason) for d in plan.deletions}
    # 10 entries (5 caches) are younger than 90 days (1000 bytes): the 4 oldest go for size
    assert {k for k, r in by_reason if r == "cache_age"} == set(old)
    by_size = {k for k, r in by_reason if r == "cache_size"}
    assert len(by_size) == 4 and by_size < set(mid)
    apply_retention(store, plan, lambda _: None)
    left = all_keys(store)
    assert left == (set(mid) - by_size) | set(new)
    # shard folders of a cache stay (a writer may be filling them)
    assert store.local_path(old[0]).parent.is_dir()


def test_no_size_limit(tmp_path):
    store = Store(tmp_path / "storage")
    _aged(store, [(k, 10) for k in cache_keys("a")])
    limits = RetentionSettings(cache_max_bytes=None)
    assert caches(Inventory(store), ["embeddings/cache", "captions/cache"], limits, TODAY) == []


def test_caches_on_s3_by_write_time(s3_root):
    """LastModified is the age: a hundred days on, entries written now are past 90 days."""
    store = Store(s3_root)
    for key in cache_keys("s3"):
        store.put_bytes(b"c" * 100, key)
    prefixes = [layout.EMBEDDING_CACHE, layout.CAPTION_CACHE, layout.JUDGMENT_CACHE]
    prefixes += [layout.TRAINING_CACHE, "characters/cache"]
    today = dt.datetime.now(dt.UTC).date()
    assert caches(Inventory(store), prefixes, RetentionSettings(), today) == []
    later = caches(Inventory(store), prefixes, RetentionSettings(), today + dt.timedelta(100))
    assert {d.key for d in later} == set(cache_keys("s3"))
    assert {d.reason for d in later} == {"cache_age"}
    sized = caches(Inventory(store), prefixes, RetentionSettings(cache_max_bytes=250), today)
    assert len(sized) == 3 and {d.reason for d in sized} == {"cache_size"}  # 500 -> 200 B


def test_without_its_dataset_document_the_whole_window_is_kept(tmp_path, settings):
    """The live LoRA's dataset document names its window; without it, the
    ``training.window_days`` days up to its partition are kept."""
    store = Store(tmp_path / "storage")
    build(store)
    store.delete(layout.document_key(layout.TRAINING_DATASET, "2026-01-10"))
    window = settings.model_copy(
        update={"training": settings.training.model_copy(update={"window_days": 2})}
    )
    gone = planned(plan_retention(store, window, TODAY))
    assert layout.frame_key("2026-01-09", "f1") not in gone  # in the two days up to 01-10
    assert layout.frame_key("2026-01-08", "f1") in gone


def test_speech_caches_are_caches_the_flac_objects_are_not(tmp_path, settings):
    store = Store(tmp_path / "storage")
    digest = "ab" * 32
    audio_row, transcript = layout.audio_cache_key(digest), layout.transcript_cache_key(digest)
    flac = layout.audio_object_key(digest)
    _aged(store, [(audio_row, 120), (transcript, 120), (flac, 120)])
    limits = RetentionSettings(cache_max_age_days=90, cache_max_bytes=None)
    plan = plan_retention(store, settings.model_copy(update={"retention": limits}), TODAY)
    gone = {d.key for d in plan.deletions if d.reason == "cache_age"}
    # rows and transcripts are recomputed on a miss; a FLAC is what a cached row points at
    assert gone == {audio_row, transcript}
