"""Published LoRA versions written the way the trainer writes them (weights, then metadata)."""

from __future__ import annotations

import hashlib
import json

from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.lora_models import WEIGHT_NAME
from style_pipeline.training.versions import METADATA_NAME


def publish_version(store: Store, version: str, profile: str = "pretrained") -> str:
    """Store a version folder (distinct weight bytes per version); returns its sha256."""
    weights = f"weights of {version}".encode() * 64
    sha256 = hashlib.sha256(weights).hexdigest()
    store.put_bytes(weights, layout.lora_version_file(version, WEIGHT_NAME))
    metadata = {
        "version": version,
        "partition": version.rsplit(".", 1)[0],
        "weights": WEIGHT_NAME,
        "sha256": sha256,
        "model_profile": profile,
        "config": {"name": "tiny" if profile == "tiny" else "sd15"},
        "final_loss": 0.25,
    }
    store.put_bytes(json.dumps(metadata).encode(), layout.lora_version_file(version, METADATA_NAME))
    return sha256


THREE_DAYS = ("2026-01-01.001", "2026-01-02.001", "2026-01-03.001")


def store_with_three_days(root) -> Store:
    """A store under ``root`` with one published version on each of three days."""
    store = Store(root / "storage")
    for version in THREE_DAYS:
        publish_version(store, version)
    return store
