"""Which LoRA version is live: read, promote, roll back, and the gates a promotion passes.

The ``LiveLora`` document at ``layout.live_lora_key()`` names the live version and keeps
every change (``PromotionEvent``, newest last). A change is a read-modify-write held under
one lock (a thread lock, plus ``flock`` on the document's folder for local roots, so the
CLI, the web app and a Dagster step on one host never lose each other's events) and
stored with one atomic write: a reader sees the old document or the new one, never half.
On object stores the lock is per process only (S3 has no lock to take).

Every refusal is a ``PromotionError`` with a reason ``code``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal

from pydantic import ValidationError

from style_pipeline.contracts.training import LiveLora, PromotionEvent
from style_pipeline.media.checksum import sha256_file
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.versions import (
    is_published,
    is_version_name,
    list_versions,
    read_metadata,
)

Action = Literal["promote", "rollback"]
ACTIONS: tuple[Action, ...] = ("promote", "rollback")
NIGHTLY_AUTHOR = "promoted_lora"

# One writer at a time in this process; flock (per open file) adds the other processes.
_LOCK = threading.Lock()


class PromotionError(ValueError):
    """A promotion, rollback or live-document read refused, with a reason ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def read_live(store: Store) -> LiveLora:
    """The live-LoRA document; an empty one (no version, no history) before any promotion."""
    key = layout.live_lora_key()
    if not store.exists(key):
        return LiveLora()
    try:
        return LiveLora.model_validate_json(store.read_bytes(key))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise PromotionError(
            "live_unreadable",
            f"{key} is not a LiveLora document ({where}: {first['msg']}); "
            "restore it from a backup or remove it",
        ) from exc


@contextlib.contextmanager
def live_lock(store: Store) -> Iterator[None]:
    """Hold the lock that serialises changes of the live document (and pruning)."""
    with _LOCK:
        if not store.is_local:
            yield
            return
        folder = store.local_path(layout.live_lora_key()).parent
        folder.mkdir(parents=True, exist_ok=True)
        # Locking the folder, not a lock file: no extra key in storage, nothing to clean up.
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def verified_sha256(store: Store, version: str) -> str:
    """The weights' sha256 of a published version, checked against its metadata."""
    if not is_version_name(version):
        raise PromotionError("bad_version", f"{version!r} is not a <YYYY-MM-DD>.<NNN> version")
    if not is_published(store, version):
        known = ", ".join(list_versions(store)[-5:]) or "none"
        raise PromotionError(
            "unknown_version",
            f"{version} is not published (pruned or never trained; newest: {known})",
        )
    metadata = read_metadata(store, version)
    key = layout.lora_version_file(version, str(metadata.get("weights", "")))
    if not metadata.get("weights") or not store.exists(key):
        raise PromotionError("weights_missing", f"{version} has metadata but no weights at {key}")
    with store.local_copy(key) as local:
        actual = sha256_file(local)
    if actual != metadata.get("sha256"):
        raise PromotionError(
            "sha256_mismatch",
            f"{key} hashes to {actual[:12]}, its metadata says {str(metadata.get('sha256'))[:12]}",
        )
    return actual


def live_stack(history: Sequence[PromotionEvent]) -> list[str]:
    """Versions that were live, oldest first, as rollbacks unwind them.

    A promotion pushes its version; a rollback to a version still on the stack pops back
    to it (so rolling back twice walks two steps back), to any other version pushes it.
    """
    stack: list[str] = []
    for event in history:
        if event.action == "rollback" and event.version in stack:
            last = len(stack) - 1 - stack[::-1].index(event.version)
            del stack[last + 1 :]
        else:
            stack.append(event.version)
    return stack


def previous_live(live: LiveLora) -> str:
    """The version a rollback without a version returns to."""
    stack = live_stack(live.history)
    if len(stack) < 2:
        raise PromotionError(
            "no_previous_live", f"no earlier live version in the history ({len(stack)} live so far)"
        )
    return stack[-2]


def _change(
    store: Store,
    pick: Callable[[LiveLora], str],
    action: Action,
    by: str,
    reason: str,
    at: dt.datetime | None,
) -> LiveLora:
    if action not in ACTIONS:
        raise PromotionError("bad_action", f"action must be one of {ACTIONS}, got {action!r}")
    if not by.strip():
        raise PromotionError("no_author", "say who makes the change (by)")
    with live_lock(store):
        live = read_live(store)
        version = pick(live)
        if version == live.version:
            raise PromotionError("already_live", f"{version} is live already")
        sha256 = verified_sha256(store, version)
        event = PromotionEvent(
            version=version,
            action=action,
            at=at or dt.datetime.now(dt.UTC),
            by=by.strip(),
            reason=reason,
        )
        updated = LiveLora(version=version, sha256=sha256, history=[*live.history, event])
        store.put_bytes(updated.model_dump_json(indent=1).encode(), layout.live_lora_key())
    return updated


def promote(
    store: Store,
    version: str,
    by: str,
    reason: str = "",
    action: Action = "promote",
    at: dt.datetime | None = None,
) -> LiveLora:
    """Make ``version`` live (its weights' sha256 checked) and append the event."""
    return _change(store, lambda _: version, action, by, reason, at)


def rollback(store: Store, by: str, reason: str = "", version: str | None = None) -> LiveLora:
    """Make ``version`` live again, or (None) the version live before the current one."""
    return _change(store, lambda live: version or previous_live(live), "rollback", by, reason, None)


def live_before(live: LiveLora, version: str) -> str | None:
    """The version that was live just before ``version`` last became live (None: none)."""
    for index in range(len(live.history) - 1, -1, -1):
        if live.history[index].version == version:
            return live.history[index - 1].version if index else None
    return None


def version_order(version: str) -> tuple[str, int]:
    """Sort key of a version: its day, then its run number as a number."""
    day, _, run = version.rpartition(".")
    return day, int(run) if run.isdigit() else -1


def real_weights_verdict(lora: Mapping, allow_tiny: bool) -> tuple[bool, str]:
    """Whether a ``lora_weights`` document passes "trained on real weights", and why."""
    profile = str(lora.get("model_profile", ""))
    if profile != "tiny":
        return True, f"trained on the {profile or 'unknown'} base model {lora.get('model_path')}"
    why = lora.get("model_profile_reason", "")
    if allow_tiny:
        return True, f"tiny model allowed by training.allow_tiny_promotion ({why})"
    return False, (
        f"trained on the tiny random-init model ({why}); "
        "set training.allow_tiny_promotion to promote it anyway"
    )


def promotion_blockers(lora: Mapping, metrics: Mapping, allow_tiny: bool) -> list[tuple[str, str]]:
    """(code, text) of every reason the day's LoRA must not go live; [] when it may."""
    blockers: list[tuple[str, str]] = []
    if metrics.get("lora_version") != lora.get("version"):
        blockers.append(
            (
                "version_mismatch",
                f"metrics evaluated {metrics.get('lora_version')}, lora_weights is "
                f"{lora.get('version')}: materialize metrics first",
            )
        )
    if metrics.get("regressions"):
        names = ", ".join(str(r.get("metric", r)) for r in metrics["regressions"])
        blockers.append(("regression", f"worse than {metrics.get('previous_partition')}: {names}"))
    passed, why = real_weights_verdict(lora, allow_tiny)
    if not passed:
        blockers.append(("tiny_weights", why))
    return blockers
