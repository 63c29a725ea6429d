"""Published LLM adapter versions in the Store, and which one is live.

A version is ``llm_adapter/<partition>.<NNN>/`` holding ``adapter_model.safetensors``,
``adapter_config.json`` and ``metadata.json`` (written last: a version is published once
it exists). Only the newest ``llm.keep_versions`` versions are kept, and never the live
one. The live version sits in ``promoted_llm_adapter/live.json`` (``LiveLlmAdapter``,
every change appended to its history, written in one put). No model library here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from pathlib import Path

from style_pipeline.contracts.llm import LiveLlmAdapter
from style_pipeline.contracts.training import PromotionEvent
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

log = logging.getLogger(__name__)

METADATA_NAME = "metadata.json"
WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"
NIGHTLY_AUTHOR = "promoted_llm_adapter"


class AdapterError(ValueError):
    """An adapter version unusable or a promotion refused, with a reason ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def _versions_in(store: Store) -> set[str]:
    found = (layout.llm_adapter_version_of(k) for k in store.list(layout.LLM_ADAPTER))
    return {v for v in found if v is not None}


def version_order(version: str) -> tuple[str, int]:
    """Sort key of a version: its day, then its run number as a number."""
    day, _, run = version.rpartition(".")
    return day, int(run)


def list_versions(store: Store) -> list[str]:
    """Published versions (with a metadata.json), oldest first."""
    return sorted(
        (v for v in _versions_in(store) if store.exists(layout.llm_adapter_file(v, METADATA_NAME))),
        key=version_order,
    )


def next_version(store: Store, partition: str) -> str:
    """``<partition>.<NNN>`` one past the highest run number of that partition (from 001)."""
    runs = [version_order(v)[1] for v in _versions_in(store) if v.startswith(f"{partition}.")]
    return f"{partition}.{max(runs, default=0) + 1:03d}"


def sha256_of_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def publish(store: Store, partition: str, folder: Path, metadata: dict) -> tuple[str, dict]:
    """Upload the adapter in ``folder`` as the next version of ``partition``; metadata last.

    Returns (version, the stored metadata: ``metadata`` + version, partition, sha256)."""
    version = next_version(store, partition)
    stored = {
        **metadata,
        "version": version,
        "partition": partition,
        "weights": WEIGHTS_NAME,
        "sha256": sha256_of_file(folder / WEIGHTS_NAME),
    }
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        store.put_file(folder / name, layout.llm_adapter_file(version, name))
    body = json.dumps(stored, indent=1, sort_keys=True).encode()
    store.put_bytes(body, layout.llm_adapter_file(version, METADATA_NAME))
    return version, stored


def read_metadata(store: Store, version: str) -> dict:
    """The ``metadata.json`` of one published version."""
    return json.loads(store.read_bytes(layout.llm_adapter_file(version, METADATA_NAME)))


def download(store: Store, version: str, out_dir: Path) -> Path:
    """Copy a version's weights and config into ``out_dir`` (sha256 checked)."""
    expected = verified_sha256(store, version)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        (out_dir / name).write_bytes(store.read_bytes(layout.llm_adapter_file(version, name)))
    if sha256_of_file(out_dir / WEIGHTS_NAME) != expected:
        raise AdapterError("sha256_mismatch", f"{version} changed while it was copied")
    return out_dir


def verified_sha256(store: Store, version: str) -> str:
    """The weights' sha256 of a published version, checked against its metadata."""
    if version not in list_versions(store):
        known = ", ".join(list_versions(store)[-5:]) or "none"
        raise AdapterError("unknown_version", f"{version} is not published (newest: {known})")
    expected = str(read_metadata(store, version).get("sha256"))
    key = layout.llm_adapter_file(version, WEIGHTS_NAME)
    if not store.exists(key):
        raise AdapterError("weights_missing", f"{version} has metadata but no weights at {key}")
    actual = hashlib.sha256(store.read_bytes(key)).hexdigest()
    if actual != expected:
        raise AdapterError(
            "sha256_mismatch", f"{key} hashes to {actual[:12]}, its metadata says {expected[:12]}"
        )
    return actual


def prune_versions(store: Store, keep: int, protect: set[str]) -> list[str]:
    """Delete all but the newest ``keep`` versions, never one in ``protect`` (the live one,
    the one just published). Metadata goes first, so a half-deleted version is unpublished."""
    versions = list_versions(store)
    doomed = [v for v in versions[: max(len(versions) - keep, 0)] if v not in protect]
    for version in doomed:
        store.delete(layout.llm_adapter_file(version, METADATA_NAME))
        for key in store.list(layout.llm_adapter_dir(version)):
            store.delete(key)
        log.info("pruned LLM adapter version %s", version)
    return doomed


def read_live(store: Store) -> LiveLlmAdapter:
    """The live-adapter document; an empty one before any promotion."""
    key = layout.live_llm_adapter_key()
    if not store.exists(key):
        return LiveLlmAdapter()
    return LiveLlmAdapter.model_validate_json(store.read_bytes(key))


def promote(store: Store, version: str, by: str, reason: str = "") -> LiveLlmAdapter:
    """Make ``version`` live (its sha256 checked) and append the event."""
    live = read_live(store)
    if version == live.version:
        raise AdapterError("already_live", f"{version} is live already")
    sha256 = verified_sha256(store, version)
    event = PromotionEvent(
        version=version, action="promote", at=dt.datetime.now(dt.UTC), by=by, reason=reason
    )
    updated = LiveLlmAdapter(version=version, sha256=sha256, history=[*live.history, event])
    store.put_bytes(updated.model_dump_json(indent=1).encode(), layout.live_llm_adapter_key())
    return updated
