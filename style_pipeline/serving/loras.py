"""The published LoRA versions as the app shows them: metadata, metrics, which one is live.

Reads only what ``lora_weights``, ``metrics`` and the promotion write, through the light
``training.versions`` and ``training.promotion`` (no model library: listing versions
never loads torch). A version name from a client is looked up
in the published list before any key is built from it: no client string reaches storage.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from style_pipeline.contracts.training import MetricsDocument
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training import versions
from style_pipeline.training.promotion import read_live
from style_pipeline.training.versions import (  # noqa: F401  (re-exported for the routes)
    METADATA_NAME,
    VERSION_PATTERN,
    is_published,
    list_versions,
)


class UnknownVersion(LookupError):
    """The name is not a published LoRA version."""


class NoLoraPublished(LookupError):
    """No version was asked for and none is live (or none is published at all)."""


def published_versions(store: Store) -> list[str]:
    """Published versions (``<date>.<NNN>`` folders with a metadata.json), oldest first."""
    return list_versions(store)


def read_metadata(store: Store, version: str) -> dict[str, Any]:
    """The metadata.json of a published version (``UnknownVersion`` when not published)."""
    if not is_published(store, version):
        raise UnknownVersion(version)
    data: dict[str, Any] = versions.read_metadata(store, version)
    return data


def resolve_version(store: Store, requested: str | None) -> str:
    """``requested`` when published, else the live version; raises when neither exists."""
    versions = published_versions(store)
    if requested is not None:
        if requested not in versions:
            raise UnknownVersion(requested)
        return requested
    if not versions:
        raise NoLoraPublished("no LoRA version is published yet: run lora_weights first")
    live = read_live(store).version
    if live is None:
        raise NoLoraPublished(
            "no LoRA version is live yet: promote one (style-pipeline lora promote VERSION) "
            "or name a version"
        )
    if live not in versions:
        raise NoLoraPublished(f"the live version {live} is no longer published")
    return live


def metrics_summary(store: Store, version: str, partition: str) -> dict[str, Any] | None:
    """The day's evaluation of ``version`` (``metrics/<date>.json``), None when absent."""
    try:
        key = layout.document_key(layout.METRICS, partition)
    except ValueError:
        return None
    if not store.exists(key):
        return None
    try:
        doc = MetricsDocument.model_validate_json(store.read_bytes(key))
    except ValidationError:
        return {"error": "unreadable metrics document", "key": key}
    if doc.lora_version != version:
        return None  # that day's evaluation is of another run of the day
    return {
        "metrics": doc.metrics,
        "regressions": len(doc.regressions),
        "previous_partition": doc.previous_partition,
    }


def catalogue(store: Store) -> dict[str, Any]:
    """Every published version with date, sha256, profile, metrics, and the live one."""
    live = read_live(store)
    items = []
    for version in reversed(published_versions(store)):
        meta = versions.read_metadata(store, version)
        partition = str(meta.get("partition", version.split(".", 1)[0]))
        items.append(
            {
                "version": version,
                "date": partition,
                "sha256": meta.get("sha256"),
                "model_profile": meta.get("model_profile"),
                "model_path": meta.get("model_path"),
                "family": meta.get("family"),
                "steps": meta.get("steps"),
                "final_loss": meta.get("final_loss"),
                "metrics": metrics_summary(store, version, partition),
                "live": version == live.version,
            }
        )
    return {"live": live.version, "versions": items}
