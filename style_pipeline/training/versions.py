"""Published LoRA versions in the Store: list them, read their metadata, name the next one.

A version is ``<partition>.<NNN>`` (sorts by day, then by run); it is published once its
``metadata.json`` exists (written last). No model library here: the CLI's ``lora list``
and the web app read versions without importing torch.
"""

from __future__ import annotations

import json
import re

from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

METADATA_NAME = "metadata.json"
VERSION_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}\.\d{3,}$")


def is_version_name(name: str) -> bool:
    """True when ``name`` looks like ``<YYYY-MM-DD>.<NNN>`` (nothing else reaches a key)."""
    return bool(VERSION_PATTERN.match(name))


def is_published(store: Store, version: str) -> bool:
    """True when ``version`` is well formed and its ``metadata.json`` is stored."""
    return is_version_name(version) and store.exists(
        layout.lora_version_file(version, METADATA_NAME)
    )


def list_versions(store: Store) -> list[str]:
    """Published versions (folders with a metadata.json), oldest first."""
    names = [layout.lora_version_of(key) for key in store.list(layout.LORA_WEIGHTS)]
    return sorted(n for n in set(names) if is_published(store, n))


def next_version(store: Store, partition: str) -> str:
    """``<partition>.<NNN>`` one past the highest run number of that partition (from 001)."""
    runs = [
        int(key.rsplit(".", 1)[-1])
        for key in (layout.lora_version_of(k) for k in store.list(layout.LORA_WEIGHTS))
        if key.startswith(f"{partition}.") and key.rsplit(".", 1)[-1].isdigit()
    ]
    return f"{partition}.{max(runs, default=0) + 1:03d}"


def read_metadata(store: Store, version: str) -> dict:
    """The ``metadata.json`` of one published version."""
    return json.loads(store.read_bytes(layout.lora_version_file(version, METADATA_NAME)))
