"""The ``sft_dataset`` stage: the accepted ``aligned_pairs`` of the last ``sft.window_days``
days -> chat-format JSONL splits, deduplicated and split together.

Writes ``sft_dataset/<day>/``: ``train.jsonl``, ``val.jsonl``, ``test.jsonl`` (one
``{"messages": [...]}`` per kept pair), ``rows.parquet`` (every pair: split, kept or the
reason it was not, the row it duplicates) and ``manifest.json`` (the source videos of each
split, counts, sha256 of each file). The document names them and carries the snapshot id.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from style_pipeline.contracts.alignment import SPLITS, SftDatasetDocument, SftRecord, SftSettings
from style_pipeline.llm.sft_dataset import (
    Pair,
    build_rows,
    jsonl,
    snapshot_id,
    split_manifest,
    template,
)
from style_pipeline.storage.layout import partition_dir, sft_file_key
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import polars_schema, records_to_frame

SFT_SCHEMA = polars_schema(SftRecord)


@dataclass(frozen=True)
class SftFacts:
    rows: pl.DataFrame  # the SFT table (also stored as rows.parquet)
    kept: int
    rejected: int


def pairs_of(aligned_pairs: Mapping[str, pl.DataFrame | None]) -> list[Pair]:
    """The accepted rows of the window's ``aligned_pairs`` tables (day -> table)."""
    pairs = []
    for day in sorted(aligned_pairs):
        table = aligned_pairs[day]
        if table is None or table.is_empty():
            continue
        accepted = table.filter(pl.col("status") == "accepted")
        pairs += [
            Pair(r["pair_id"], r["media_id"], r["prompt"], r["response"], r.get("language") or "")
            for r in accepted.to_dicts()
        ]
    return pairs


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_sft_dataset(
    aligned_pairs: Mapping[str, pl.DataFrame | None] | pl.DataFrame | None,
    store: Store,
    partition: str,
    cfg: SftSettings,
) -> tuple[SftDatasetDocument, SftFacts]:
    """Filter, deduplicate, split and write the day's SFT files; the document and facts.

    ``aligned_pairs``: the window's tables by day (one table: the day's own).
    """
    if not isinstance(aligned_pairs, Mapping):
        aligned_pairs = {partition: aligned_pairs}
    pairs = pairs_of(aligned_pairs)
    days = sorted(d for d, t in aligned_pairs.items() if t is not None and not t.is_empty())
    rows = build_rows(pairs, cfg)
    table = records_to_frame(rows, SftRecord) if rows else pl.DataFrame(schema=SFT_SCHEMA)
    blobs: dict[str, bytes] = {split: jsonl(rows, split, cfg) for split in SPLITS}
    buffer = io.BytesIO()
    table.write_parquet(buffer, compression="zstd", statistics=True)
    blobs["rows"] = buffer.getvalue()
    kept = [r for r in rows if r.status == "kept"]
    manifest = split_manifest(rows)
    counts = {split: sum(1 for r in kept if r.split == split) for split in SPLITS}
    snapshot = snapshot_id(rows, cfg)
    blobs["manifest"] = (
        json.dumps(
            {
                "snapshot_id": snapshot,
                "videos": manifest,
                "counts": counts,
                "sha256": {name: _sha(data) for name, data in blobs.items()},
            },
            indent=2,
            sort_keys=True,
        ).encode()
        + b"\n"
    )
    for name, data in blobs.items():
        store.put_bytes(data, sft_file_key(partition, name))
    rejected = Counter(r.reason for r in rows if r.status == "rejected")
    document = SftDatasetDocument(
        snapshot_id=snapshot,
        prefix=partition_dir("sft_dataset", partition),
        files={name: sft_file_key(partition, name) for name in blobs},
        sha256={name: _sha(data) for name, data in blobs.items()},
        counts=counts,
        videos={split: len(ids) for split, ids in manifest.items()},
        rejected=dict(sorted(rejected.items())),
        pairs_in=len(pairs),
        partitions=days,
        template=template(cfg),
        config_hash=hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:16],
    )
    return document, SftFacts(rows=table, kept=len(kept), rejected=len(rows) - len(kept))
