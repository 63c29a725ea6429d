"""Stage ``retention``: which stored keys are past their limits (``plan_retention``) and
deleting them (``apply_retention``), on a local root and on S3 alike.

A key's age is the day in the key (``storage.layout``), never a file time; caches alone,
whose keys name content, are aged by when they were written. The limits are the
``retention:`` settings; the rules are in ``stages/retention_rules.py``:

=================  ======================================================================
category           keys (each dated by the day in it)
=================  ======================================================================
raw_media          ``raw_media/<day>.parquet``, ``raw_media/quarantine/<day>/``; an original
                   ``raw_media/objects/..`` with its ledger entries once the newest day
                   that accepted its content is past ``raw_media_days``
frames             ``frames/<day>.parquet``, the images ``frames/<day>/``,
                   ``curated_frames/<day>.parquet``, the day's dedup index, ``faces`` and
                   ``characters`` tables and the unknown groups' crops ``characters/<day>/``
training_datasets  ``training_dataset/<day>.json`` and the folder ``training_dataset/<day>/``
metrics            ``metrics/<day>.json`` and its samples ``metrics/<day>/samples/``
reports            ``reports/<asset>/<day>/`` (the pictures in the Dagster metadata)
lora_versions      ``lora_weights/<version>/`` past the newest ``lora_keep_versions``
caches             embedding, face, caption-answer, judgment and LoRA latent/text caches: written
                   before ``cache_max_age_days``, then the oldest until under ``cache_max_bytes``
=================  ======================================================================

Kept whatever their age (``retention_rules.protect``): the live LoRA and the newest
versions; the training dataset and metrics of every kept version; the frames and curated
frames of the training window of every kept version that was ever promoted; the newest
curated day and the newest metrics (what the next evaluation reads); the reports of all
those days. Keys no rule recognises (the sensor's state, captions, curated_list exports,
...) are never touched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from style_pipeline.settings import Settings
from style_pipeline.stages.retention_rules import (
    Deletion,
    Inventory,
    cache_prefixes,
    caches,
    cutoff,
    dated,
    kept_versions,
    lora_versions,
    old_versions,
    protect,
    raw_media,
)
from style_pipeline.storage import layout
from style_pipeline.storage.inventory import delete_keys
from style_pipeline.storage.store import Store
from style_pipeline.training.promotion import PromotionError, live_lock, read_live

CATEGORIES = (
    "raw_media",
    "frames",
    "training_datasets",
    "metrics",
    "reports",
    "lora_versions",
    "caches",
)

__all__ = [
    "CATEGORIES",
    "Deletion",
    "RetentionPlan",
    "RetentionRefused",
    "RetentionResult",
    "apply_retention",
    "human_bytes",
    "plan_retention",
]


class RetentionRefused(RuntimeError):
    """Retention cannot tell what must be kept, so it deletes nothing."""


Group = tuple[str, str, str]  # (category, reason, group)


def _totals(deletions: tuple[Deletion, ...]) -> dict[str, tuple[int, int]]:
    totals = {category: (0, 0) for category in CATEGORIES}
    for d in deletions:
        keys, size = totals[d.category]
        totals[d.category] = (keys + 1, size + d.size)
    return totals


def _grouped(deletions: tuple[Deletion, ...]) -> dict[Group, list[Deletion]]:
    """Deletions per log line, in plan order."""
    groups: dict[Group, list[Deletion]] = {}
    for d in deletions:
        groups.setdefault((d.category, d.reason, d.group), []).append(d)
    return groups


@dataclass(frozen=True)
class RetentionPlan:
    """What is past its limit on ``today``, and what is kept although it may be old."""

    today: dt.date
    deletions: tuple[Deletion, ...]
    protections: tuple[str, ...]

    def totals(self) -> dict[str, tuple[int, int]]:
        """(keys, bytes) per category, every category listed."""
        return _totals(self.deletions)

    def lines(self) -> list[str]:
        """One line per group: what would go and why."""
        return [_line(group, items) for group, items in _grouped(self.deletions).items()]


@dataclass(frozen=True)
class RetentionResult:
    """What ``apply_retention`` deleted, and what it left because it changed meanwhile."""

    deleted: tuple[Deletion, ...]
    skipped: tuple[tuple[Deletion, str], ...] = field(default=())

    def totals(self) -> dict[str, tuple[int, int]]:
        return _totals(self.deleted)


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _line(group: Group, items: list[Deletion]) -> str:
    category, reason, where = group
    size = human_bytes(sum(d.size for d in items))
    days = sorted({d.day for d in items if d.day})
    # Other groups name their day; a cache's entries were written over a span of days.
    if category == "caches" and days:
        reason += f", written {days[0]}" + (f" to {days[-1]}" if len(days) > 1 else "")
    return f"{category}: {where}: {len(items)} file(s), {size} ({reason})"


def plan_retention(store: Store, settings: Settings, today: dt.date) -> RetentionPlan:
    """Every key past its ``settings.retention`` limit on ``today`` (nothing is deleted).

    ``RetentionRefused`` when the live-LoRA document is unreadable: it might name any
    version, so nothing a LoRA depends on could be told apart.
    """
    limits = settings.retention
    try:
        live = read_live(store)
    except PromotionError as exc:
        raise RetentionRefused(f"retention deletes nothing: {exc}") from exc
    inventory = Inventory(store)
    versions = lora_versions(inventory)
    kept = kept_versions(versions, limits.lora_keep_versions, live.version)
    keep = protect(store, inventory, live, kept, settings.training.window_days)
    cache_list = [
        *cache_prefixes(settings.curation.embeddings.cache_prefix),
        settings.characters.cache_dir,  # faces per frame content
    ]
    # what is derived from a day's frames goes with them: the faces and characters tables
    # and the unknown groups' crops (characters/<day>/)
    frame_prefixes = [
        layout.FRAMES,
        layout.CURATED_FRAMES,
        settings.curation.dedup.index_prefix,
        "faces",
        layout.CHARACTERS,
    ]
    deletions = [
        *raw_media(inventory, cutoff(today, limits.raw_media_days)),
        *dated(inventory, "frames", frame_prefixes, cutoff(today, limits.frames_days), keep.frames),
        *dated(
            inventory,
            "training_datasets",
            [layout.TRAINING_DATASET],
            cutoff(today, limits.training_dataset_days),
            keep.training_datasets,
        ),
        *dated(
            inventory, "metrics", [layout.METRICS], cutoff(today, limits.metrics_days), keep.metrics
        ),
        *_reports(inventory, cutoff(today, limits.reports_days), keep.all_days()),
        *old_versions(versions, kept, limits, today),
        *caches(inventory, cache_list, limits, today),
    ]
    return RetentionPlan(today, tuple(deletions), tuple(keep.reasons))


def _reports(inventory: Inventory, before: str, protected_days: set[str]) -> list[Deletion]:
    out = []
    for f in inventory.files(layout.REPORTS):
        found = layout.report_of(f.key)
        if found is not None and found[1] < before and found[1] not in protected_days:
            asset, day = found
            group = layout.partition_dir(f"{layout.REPORTS}/{asset}", day)
            out.append(Deletion(f.key, "reports", "reports_expired", f.size, day, group))
    return out


def apply_retention(
    store: Store, plan: RetentionPlan, log: Callable[[str], None]
) -> RetentionResult:
    """Delete what ``plan`` lists, logging one line per group (day, version, cache).

    Checked again at the time of deletion, and left alone with a logged reason: a LoRA
    version that became live since the plan (held under the live lock, as promotion
    is), and an original whose content was accepted again (a new ledger entry).
    """
    deleted: list[Deletion] = []
    skipped: list[tuple[Deletion, str]] = []
    groups = _grouped(plan.deletions)
    versions = {g: items for g, items in groups.items() if g[0] == "lora_versions"}
    if versions:
        with live_lock(store):
            live = read_live(store).version
            for group, items in versions.items():
                if live is not None and group[2] == layout.lora_version_dir(live):
                    skipped += [(d, "became live since the plan") for d in items]
                    log(f"kept {group[2]}: it became live since the plan")
                    continue
                deleted += _delete(store, group, items, log)
    for group, items in groups.items():
        if group[0] == "lora_versions":
            continue
        if group[1] == "raw_object_expired":
            items, again = _not_accepted_again(store, items)
            skipped += [(d, "content accepted again since the plan") for d in again]
            for d in again:
                log(f"kept {d.key}: its content was accepted again since the plan")
        deleted += _delete(store, group, items, log, folders=group[0] != "caches")
    return RetentionResult(tuple(deleted), tuple(skipped))


def _delete(
    store: Store, group: Group, items: list[Deletion], log: Callable[[str], None], folders=True
) -> list[Deletion]:
    if not items:
        return []
    delete_keys(store, [d.key for d in items], remove_empty_folders=folders)
    log(f"deleted {_line(group, items)}")
    return items


def _not_accepted_again(
    store: Store, items: list[Deletion]
) -> tuple[list[Deletion], list[Deletion]]:
    """Originals whose ledger is still empty (deletable), and those seen again."""
    gone: list[Deletion] = []
    again: list[Deletion] = []
    for d in items:
        sha = layout.raw_object_media_id(d.key)
        (again if sha and store.list(layout.ledger_dir(sha)) else gone).append(d)
    return gone, again
