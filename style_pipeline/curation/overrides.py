"""Per-date curation overrides: frames to always keep (``lock_in``) or never keep (``exclude``).

One file per partition, YAML or JSON, e.g. ``overrides/2026-11-21.yaml``::

    lock_in: [<frame_id>, ...]
    exclude: [<frame_id>, ...]
    note: why
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from style_pipeline.contracts.curation import Overrides
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store


def parse_overrides(text: str, source: str = "<overrides>") -> Overrides:
    """Validate override text (JSON or YAML; empty text means no overrides)."""
    try:
        data = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{source}: cannot parse overrides: {err}") from err
    if data is None:
        return Overrides()
    if not isinstance(data, dict):
        raise ValueError(f"{source}: overrides must be a mapping, got {type(data).__name__}")
    return Overrides.model_validate(data)


def load_overrides(path: str | Path) -> Overrides:
    """Overrides from a local file; a missing file is an error (use the store loader for
    optional per-date files)."""
    path = Path(path)
    return parse_overrides(path.read_text(), str(path))


def overrides_for_partition(store: Store, partition: str, prefix: str = "overrides") -> Overrides:
    """``<prefix>/<partition>.yaml|.yml|.json`` from ``store``; none found -> empty overrides.

    More than one file for the same date is refused (which one would win is unclear).
    """
    found = [key for key in layout.override_keys(partition, prefix) if store.exists(key)]
    if len(found) > 1:
        raise ValueError(f"several override files for {partition}: {found}")
    if not found:
        return Overrides()
    return parse_overrides(store.read_bytes(found[0]).decode("utf-8"), found[0])


def override_key(store: Store, partition: str, prefix: str = "") -> str:
    """The key of the day's overrides document: the existing file, else ``<partition>.yml``.

    Several files for the same date are refused, as when reading.
    """
    found = [key for key in layout.override_keys(partition, prefix) if store.exists(key)]
    if len(found) > 1:
        raise ValueError(f"several override files for {partition}: {found}")
    if found:
        return found[0]
    return next(k for k in layout.override_keys(partition, prefix) if k.endswith(".yml"))


def dump_overrides(overrides: Overrides, key: str) -> bytes:
    """The document's bytes in the format its key names (JSON for ``.json``, else YAML)."""
    data = overrides.model_dump(mode="json", exclude_none=True)
    if not data.get("history"):
        data.pop("history", None)  # hand-written files stay as short as they were
    if key.endswith(".json"):
        return (json.dumps(data, indent=2) + "\n").encode("utf-8")
    return yaml.safe_dump(data, sort_keys=False).encode("utf-8")
