"""A store with dated objects in every retention category, and which of them must go.

``TODAY`` is 2026-06-30 with the default limits: raw media, frames and training datasets
before 2026-04-01 and metrics and reports before 2026-05-31 are past them. The live LoRA
(2026-01-10.001) is old, so its dataset, metrics and training window must stay.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from style_pipeline.contracts.training import TrainingDatasetDocument
from style_pipeline.storage import layout
from style_pipeline.storage.inventory import list_files
from style_pipeline.storage.store import Store
from style_pipeline.training.lora_models import WEIGHT_NAME
from style_pipeline.training.promotion import promote
from style_pipeline_tests.training.published import publish_version

TODAY = dt.date(2026, 6, 30)
LIVE = "2026-01-10.001"
EARLIER_LIVE = "2026-02-01.001"  # promoted once, now past the newest three
OLD_VERSION = "2026-03-01.001"
NEWEST = ("2026-06-01.001", "2026-06-10.001", "2026-06-20.001")
DEAD_PUBLISH = "2026-02-15.001"  # weights without metadata.json, long ago
PUBLISH_IN_PROGRESS = "2026-06-29.002"


def sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


ROOTS = {"old": sha("old"), "again": sha("again"), "new": sha("new"), "loose": sha("loose")}


@dataclass
class DatedStore:
    store: Store
    gone: set[str] = field(default_factory=set)
    kept: set[str] = field(default_factory=set)

    def put(self, key: str, goes: bool, size: int = 10) -> str:
        self.store.put_bytes(b"x" * size, key)
        (self.gone if goes else self.kept).add(key)
        return key

    def keys(self) -> set[str]:
        return all_keys(self.store)


def all_keys(store: Store) -> set[str]:
    """Every key of the store (the top-level folders listed one by one)."""
    tops = {layout.RAW_MEDIA, layout.FRAMES, layout.CURATED_FRAMES, layout.DEDUP_SET}
    tops |= {layout.TRAINING_DATASET, layout.LORA_WEIGHTS, layout.PROMOTED_LORA, layout.METRICS}
    tops |= {layout.REPORTS, layout.CAPTIONS, layout.CURATED_LIST, layout.EMBEDDINGS}
    tops |= {layout.RANKING, "faces", layout.CHARACTERS}
    return {f.key for top in tops for f in list_files(store, top)}


def build(store: Store) -> DatedStore:
    """Write the dated store; ``gone`` holds exactly what retention on ``TODAY`` deletes."""
    s = DatedStore(store)
    _raw_media(s)
    _frames(s)
    _lora(s)
    _metrics_and_reports(s)
    _untouched(s)
    _fresh_caches(s)
    return s


def _raw_media(s: DatedStore) -> None:
    s.put(layout.table_key(layout.RAW_MEDIA, "2026-03-31"), goes=True)
    s.put(layout.table_key(layout.RAW_MEDIA, "2026-04-01"), goes=False)  # the last day kept
    bad = s.put(layout.quarantine_key("2026-03-01", "bad.mp4"), goes=True)
    s.put(layout.quarantine_reason_key(bad), goes=True)
    s.put(layout.quarantine_key("2026-05-01", "bad.mp4"), goes=False)
    # accepted once, long ago: the original and its sighting go together
    s.put(layout.ledger_key(ROOTS["old"], "2026-03-01"), goes=True)
    s.put(layout.raw_object_key(ROOTS["old"], ".mp4"), goes=True, size=1000)
    # accepted long ago and again recently: kept whole
    s.put(layout.ledger_key(ROOTS["again"], "2026-03-01"), goes=False)
    s.put(layout.ledger_key(ROOTS["again"], "2026-05-01"), goes=False)
    s.put(layout.raw_object_key(ROOTS["again"], ".jpg"), goes=False)
    s.put(layout.ledger_key(ROOTS["new"], "2026-05-01"), goes=False)
    s.put(layout.raw_object_key(ROOTS["new"], ".jpg"), goes=False)
    s.put(layout.raw_object_key(ROOTS["loose"], ".jpg"), goes=False)  # no sighting: no date
    s.put(layout.sensor_state_key("hot_folder_sensor", sha("state")), goes=False)


def _frames(s: DatedStore) -> None:
    for day, goes in [("2026-03-01", True), ("2026-01-09", True), ("2026-04-01", False)]:
        s.put(layout.table_key(layout.FRAMES, day), goes=goes)
        s.put(layout.frame_key(day, "f1"), goes=goes, size=500)
        s.put(layout.table_key(layout.CURATED_FRAMES, day), goes=goes)
        s.put(layout.dedup_index_key(day), goes=goes)
        s.put(layout.table_key("faces", day), goes=goes)
        s.put(layout.table_key(layout.CHARACTERS, day), goes=goes)
        s.put(layout.unknown_group_key(day, "unknown_0"), goes=goes, size=200)
        s.put(layout.table_key(layout.DEDUP_SET, day), goes=False)  # no rule for it
    # the live LoRA's training window (its dataset document lists 01-08 and 01-10)
    for day in ("2026-01-08", "2026-01-10"):
        s.put(layout.table_key(layout.FRAMES, day), goes=False)
        s.put(layout.frame_key(day, "f1"), goes=False)
        s.put(layout.table_key(layout.CURATED_FRAMES, day), goes=False)
    s.put(layout.table_key(layout.CURATED_FRAMES, "2026-06-20"), goes=False)


def _dataset(s: DatedStore, day: str, goes: bool) -> None:
    document = TrainingDatasetDocument(
        prefix=layout.partition_dir(layout.TRAINING_DATASET, day),
        dataset_hash=sha(day),
        images=1,
        buckets={"512x512": 1},
        skipped=[],
        partitions=["2026-01-08", day] if day == "2026-01-10" else [day],
        manifest=layout.training_dataset_file(day, "manifest.json"),
    )
    key = layout.document_key(layout.TRAINING_DATASET, day)
    s.store.put_bytes(document.model_dump_json().encode(), key)
    (s.gone if goes else s.kept).add(key)
    s.put(layout.training_dataset_file(day, "1_style/f1.jpg"), goes=goes, size=300)
    s.put(layout.training_dataset_file(day, "manifest.json"), goes=goes)


def _published(s: DatedStore, version: str, goes: bool) -> None:
    publish_version(s.store, version)
    for name in (WEIGHT_NAME, "metadata.json"):
        (s.gone if goes else s.kept).add(layout.lora_version_file(version, name))


def _lora(s: DatedStore) -> None:
    for version in (LIVE, *NEWEST):
        _published(s, version, goes=False)
    for version in (EARLIER_LIVE, OLD_VERSION):
        _published(s, version, goes=True)
    promote(s.store, EARLIER_LIVE, by="test")
    promote(s.store, LIVE, by="test", action="rollback")
    s.kept.add(layout.live_lora_key())
    s.put(layout.lora_version_file(DEAD_PUBLISH, WEIGHT_NAME), goes=True)
    s.put(layout.lora_version_file(PUBLISH_IN_PROGRESS, WEIGHT_NAME), goes=False)
    _dataset(s, "2026-01-10", goes=False)  # the live LoRA's
    _dataset(s, "2026-02-01", goes=True)  # a version past the newest three
    _dataset(s, "2026-06-20", goes=False)


def _metrics_and_reports(s: DatedStore) -> None:
    for day, goes in [("2026-01-10", False), ("2026-05-15", True), ("2026-06-01", False)]:
        s.put(layout.document_key(layout.METRICS, day), goes=goes)
        s.put(layout.metrics_sample_key(day, "p00-s0.png"), goes=goes, size=200)
    s.put(layout.document_key(layout.METRICS, "2026-03-01"), goes=True)  # of OLD_VERSION
    s.put(layout.report_key(layout.METRICS, "2026-01-10", "grid.jpg"), goes=False)
    s.put(layout.report_key(layout.METRICS, "2026-05-15", "grid.jpg"), goes=True)
    s.put(layout.report_key(layout.LORA_WEIGHTS, "2026-03-01", "loss.png"), goes=True)
    s.put(layout.report_key(layout.CURATED_FRAMES, "2026-06-25", "kept.jpg"), goes=False)


def _untouched(s: DatedStore) -> None:
    """Keys no rule covers, however old."""
    s.put(layout.table_key(layout.CAPTIONS, "2026-01-01"), goes=False)
    s.put(layout.export_key("2026-01-01", 1, "f1"), goes=False)
    s.put(layout.document_key(layout.LORA_WEIGHTS, "2026-03-01"), goes=False)
    s.put(layout.judgments_key("2026-01-01"), goes=False)


def _fresh_caches(s: DatedStore) -> None:
    """Cache entries written now: younger than any cache age on ``TODAY``."""
    for key in cache_keys("fresh"):
        s.put(key, goes=False)


def cache_keys(tag: str) -> list[str]:
    """One entry in each cache of the pipeline."""
    model_dir = layout.embedding_cache_dir("tiny-clip")
    latents = layout.training_cache_dir("latents", sha("vae")[:16])
    return [
        layout.embedding_cache_key(model_dir, sha(f"{tag}-e")),
        layout.caption_cache_key(sha(f"{tag}-c")),
        layout.judgment_cache_key(sha(f"{tag}-j")),
        layout.training_cache_key(latents, sha(f"{tag}-l")),
        layout.face_cache_key("characters/cache", sha("faces")[:16], sha(f"{tag}-f")),
    ]
