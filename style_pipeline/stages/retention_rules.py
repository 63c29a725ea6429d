"""The retention rules: which keys each limit of ``retention:`` covers, and what is kept.

Each rule reads one listing of the store (``Inventory``) and returns ``Deletion``s; a key's
day comes from the key itself (``storage.layout``). ``protect`` works out what must stay
whatever its age: what the live LoRA and the kept versions depend on.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from style_pipeline.contracts.retention import RetentionSettings
from style_pipeline.contracts.training import LiveLora
from style_pipeline.storage import layout
from style_pipeline.storage.inventory import StoredFile, list_files
from style_pipeline.storage.store import Store
from style_pipeline.training.promotion import version_order
from style_pipeline.training.versions import METADATA_NAME, is_version_name


@dataclass(frozen=True, slots=True)
class Deletion:
    """One key to delete: its category, why (a reason code), its size, the day it is dated
    by, and the group (a day folder, a version, a cache) its log line covers."""

    key: str
    category: str
    reason: str
    size: int
    day: str | None
    group: str


class Inventory:
    """One listing per top-level prefix, shared by the rules that look under it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._listed: dict[str, list[StoredFile]] = {}

    def files(self, prefix: str) -> list[StoredFile]:
        """Every file under ``prefix``, sorted by key."""
        prefix = prefix.strip("/")
        top = prefix.split("/", 1)[0]
        if top not in self._listed:
            self._listed[top] = list_files(self.store, top)
        return [f for f in self._listed[top] if f.key.startswith(f"{prefix}/")]

    def days(self, asset: str, key_of: Callable[[str, str], str]) -> list[str]:
        """Sorted days that have their ``key_of(asset, day)`` (a table or document) stored."""
        days = {layout.partition_of(f.key, asset) for f in self.files(asset)}
        keys = {f.key for f in self.files(asset)}
        return sorted(d for d in days if d is not None and key_of(asset, d) in keys)


def cutoff(today: dt.date, days: int) -> str:
    """The first day a limit of ``days`` days keeps: earlier days are past it."""
    return (today - dt.timedelta(days=days)).isoformat()


def dated(
    inventory: Inventory,
    category: str,
    prefixes: Iterable[str],
    before: str,
    protected_days: set[str],
) -> list[Deletion]:
    """Keys ``<prefix>/<day>.*`` and ``<prefix>/<day>/..`` of unprotected days before ``before``."""
    out = []
    for prefix in dict.fromkeys(p.strip("/") for p in prefixes):
        for f in inventory.files(prefix):
            day = layout.partition_of(f.key, prefix)
            if day is not None and day < before and day not in protected_days:
                group = layout.partition_dir(prefix, day)
                out.append(Deletion(f.key, category, f"{category}_expired", f.size, day, group))
    return out


def raw_media(inventory: Inventory, before: str) -> list[Deletion]:
    """Day tables and quarantined files by their day; an original with its ledger entries
    once the newest day that accepted its content is before ``before``.

    Ledger entries come first (``apply_retention`` keeps the order and checks the ledger
    again before deleting an original): a sighting whose original is gone would make
    ingest reject a new drop of that content as a duplicate of nothing.
    """
    out = dated(inventory, "raw_media", [layout.RAW_MEDIA, layout.RAW_QUARANTINE], before, set())
    ledger: dict[str, list[tuple[StoredFile, str]]] = defaultdict(list)
    for f in inventory.files(layout.RAW_LEDGER):
        entry = layout.ledger_entry_of(f.key)
        if entry is not None:
            ledger[entry[0]].append((f, entry[1]))
    newest = {sha: max(day for _, day in entries) for sha, entries in ledger.items()}
    expired = {sha for sha, day in newest.items() if day < before}
    for sha in sorted(expired, key=lambda s: (newest[s], s)):
        group = f"{layout.RAW_LEDGER} (content last accepted {newest[sha]})"
        for f, _ in ledger[sha]:
            out.append(
                Deletion(f.key, "raw_media", "raw_ledger_expired", f.size, newest[sha], group)
            )
    for f in inventory.files(layout.RAW_OBJECTS):
        media_id = layout.raw_object_media_id(f.key)
        if media_id in expired:
            last = newest[media_id]
            group = f"{layout.RAW_OBJECTS} (content last accepted {last})"
            out.append(Deletion(f.key, "raw_media", "raw_object_expired", f.size, last, group))
    return out


@dataclass(frozen=True)
class Versions:
    """The LoRA version folders of the store: files per version, which are published."""

    files: dict[str, list[StoredFile]]
    published: list[str]  # oldest first


def lora_versions(inventory: Inventory) -> Versions:
    files: dict[str, list[StoredFile]] = defaultdict(list)
    for f in inventory.files(layout.LORA_WEIGHTS):
        version = layout.lora_version_of(f.key)
        if is_version_name(version):
            files[version].append(f)
    published = [
        v
        for v, version_files in files.items()
        if layout.lora_version_file(v, METADATA_NAME) in {f.key for f in version_files}
    ]
    return Versions(dict(files), sorted(published, key=version_order))


def kept_versions(versions: Versions, keep: int, live: str | None) -> list[str]:
    """The newest ``keep`` published versions and the live one, oldest first."""
    kept = set(versions.published[-keep:]) | ({live} if live else set())
    return sorted(kept, key=version_order)


def old_versions(
    versions: Versions, kept: list[str], limits: RetentionSettings, today: dt.date
) -> list[Deletion]:
    """Published versions not kept, and folders of publishes that died (no metadata.json)
    older than ``lora_incomplete_days`` (a younger one may be a publish in progress)."""
    incomplete_before = cutoff(today, limits.lora_incomplete_days)
    out = []
    for version in sorted(versions.files, key=version_order):
        day = version_order(version)[0]
        if version in kept:
            continue
        if version in versions.published:
            reason = "lora_beyond_newest"
        elif day < incomplete_before:
            reason = "lora_incomplete"
        else:
            continue
        group = layout.lora_version_dir(version)
        out += [
            Deletion(f.key, "lora_versions", reason, f.size, day, group)
            for f in versions.files[version]
        ]
    return out


def cache_prefixes(embedding_cache: str) -> list[str]:
    """Every cache of the pipeline (the embedding cache's prefix is configurable)."""
    prefixes = [
        embedding_cache,
        layout.CAPTION_CACHE,
        layout.JUDGMENT_CACHE,
        layout.TRAINING_CACHE,
        layout.AUDIO_CACHE,
        layout.TRANSCRIPT_CACHE,
    ]
    return list(dict.fromkeys(p.strip("/") for p in prefixes))


def caches(
    inventory: Inventory, prefixes: list[str], limits: RetentionSettings, today: dt.date
) -> list[Deletion]:
    """Cache entries written before ``today - cache_max_age_days``, then the oldest of the
    rest until all caches together hold at most ``cache_max_bytes``.

    Caches are content-addressed, so their keys carry no day: the write time is the age
    (``LastModified`` on S3). An entry used every night but written long ago is dropped
    and computed again once: a cache miss, never a wrong answer.
    """
    entries = {f.key: (f, p) for p in prefixes for f in inventory.files(p)}
    before = dt.datetime.combine(today, dt.time(), dt.UTC) - dt.timedelta(
        days=limits.cache_max_age_days
    )
    out, rest = [], []
    for f, prefix in entries.values():
        if f.modified is not None and f.modified < before:
            written = f.modified.date().isoformat()
            out.append(Deletion(f.key, "caches", "cache_age", f.size, written, prefix))
        else:
            rest.append((f, prefix))
    if limits.cache_max_bytes is None:
        return out
    # Oldest first; entries without a write time count as the newest.
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    rest.sort(key=lambda item: (item[0].modified or far, item[0].key))
    total = sum(f.size for f, _ in rest)
    for f, prefix in rest:
        if total <= limits.cache_max_bytes:
            break
        day = f.modified.date().isoformat() if f.modified else None
        out.append(Deletion(f.key, "caches", "cache_size", f.size, day, prefix))
        total -= f.size
    return out


@dataclass
class Protected:
    """Days kept whatever their age, per category, and why (one line each)."""

    frames: set[str] = field(default_factory=set)
    training_datasets: set[str] = field(default_factory=set)
    metrics: set[str] = field(default_factory=set)
    reasons: list[str] = field(default_factory=list)

    def all_days(self) -> set[str]:
        return self.frames | self.training_datasets | self.metrics


def protect(
    store: Store,
    inventory: Inventory,
    live: LiveLora,
    kept: list[str],
    window_days: int,
) -> Protected:
    """What the kept LoRA versions (and the next nightly run) depend on.

    Every kept version: its training dataset and its metrics (the web app shows them).
    Every kept version that was ever promoted (the live one first): the frames, frame
    images and curated frames of its training window (the days its dataset document
    lists; without one, the ``window_days`` days up to its partition). The newest curated
    day (the evaluation's reference images on a quiet day) and the newest metrics (the
    next evaluation's regression baseline).
    """
    keep = Protected()
    promoted = {event.version for event in live.history} | {live.version}
    for version in kept:
        partition = _partition_of_version(store, version)
        keep.training_datasets.add(partition)
        keep.metrics.add(partition)
        role = "live" if version == live.version else "kept"
        keep.reasons.append(f"{layout.lora_version_dir(version)}: {role} LoRA version")
        if version in promoted:
            window = _window(store, partition, window_days)
            keep.frames.update(window)
            keep.reasons.append(
                f"frames and curated frames of {', '.join(window)}: training window of "
                f"{role} promoted LoRA {version}"
            )
    curated = inventory.days(layout.CURATED_FRAMES, layout.table_key)
    if curated:
        keep.frames.add(curated[-1])
        keep.reasons.append(f"frames of {curated[-1]}: newest curated day (evaluation reference)")
    metrics = inventory.days(layout.METRICS, layout.document_key)
    if metrics:
        keep.metrics.add(metrics[-1])
        keep.reasons.append(f"metrics of {metrics[-1]}: newest evaluation (regression baseline)")
    return keep


def _partition_of_version(store: Store, version: str) -> str:
    """The partition a version was trained for (its metadata; else its name's day)."""
    key = layout.lora_version_file(version, METADATA_NAME)
    day = version_order(version)[0]
    try:
        partition = json.loads(store.read_bytes(key)).get("partition", day)
        return layout.check_partition(str(partition))
    except (FileNotFoundError, ValueError):  # json errors are ValueErrors
        return day


def _window(store: Store, partition: str, window_days: int) -> list[str]:
    """The caption days of ``partition``'s training dataset (``partitions`` of its
    ``TrainingDatasetDocument``; only that field is read, so a document written by an
    older or newer version still counts)."""
    key = layout.document_key(layout.TRAINING_DATASET, partition)
    try:
        listed = json.loads(store.read_bytes(key))["partitions"]
        days = {layout.check_partition(str(p)) for p in listed}
    except (FileNotFoundError, KeyError, TypeError, ValueError):  # ValueError: bad JSON too
        end = dt.date.fromisoformat(partition)
        days = {(end - dt.timedelta(days=n)).isoformat() for n in range(window_days)}
    return sorted(days | {partition})
