"""Shared bits of the LLM adapter tests: settings on the tiny model, SFT files in a Store."""

from __future__ import annotations

import json
from pathlib import Path

from style_pipeline.contracts.llm import LlmSettings
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

DAY = "2026-01-05"


def chat(prompt: str, answer: str) -> dict:
    return {
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    }


def examples(n: int, topic: str = "game") -> list[dict]:
    return [
        chat(f"what {topic} is next {i}?", f"we play {topic} number {i} tonight") for i in range(n)
    ]


def tiny_settings(cache: Path, **training) -> LlmSettings:
    """The tiny model (cached in ``cache``), a few steps, nothing promoted unless allowed."""
    return LlmSettings.model_validate(
        {
            "profile": "tiny",
            "model_cache_dir": str(cache),
            "training": {"max_steps": 3, "batch_size": 2, **training},
            "eval": {"max_new_tokens": 4},
            "allow_tiny_promotion": True,
        }
    )


def put_sft(store: Store, day: str, splits: dict[str, list[dict]], snapshot: str = "snap") -> dict:
    """Write the split JSONL files and return an ``sft_dataset``-shaped document."""
    files = {}
    for split, rows in splits.items():
        key = layout.sft_split_file(day, split)
        store.put_bytes("".join(json.dumps(r) + "\n" for r in rows).encode(), key)
        files[split] = key
    return {"snapshot_id": snapshot, "files": files}
