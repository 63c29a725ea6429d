"""Stage ``llm_adapter``: a LoRA on the causal LM trained on the day's ``sft_dataset`` train
split, published as ``llm_adapter/<date>.<NNN>/`` (newest ``llm.keep_versions`` kept, and
the live one), tracked in MLflow when ``MLFLOW_TRACKING_URI`` is set."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from style_pipeline.contracts.llm import LlmAdapterDocument, LlmSettings
from style_pipeline.stages import FactValue
from style_pipeline.stages.tracking import track_training
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

SPLITS = ("train", "val", "test")


def split_key(sft_dataset: Mapping, partition: str, split: str) -> str:
    """Store key of a split's chat JSONL: the ``sft_dataset`` document's ``files`` entry,
    else the default layout key."""
    files = sft_dataset.get("files") or {}
    return str(files.get(split) or layout.sft_split_file(partition, split))


def read_split(store: Store, sft_dataset: Mapping, partition: str, split: str) -> list[dict]:
    """The split's examples (``{"messages": [...]}``); [] when its file is absent or empty.

    A line that is not a JSON object with a ``messages`` list is skipped, not fatal."""
    key = split_key(sft_dataset, partition, split)
    if not store.exists(key):
        return []
    rows = []
    for line in store.read_bytes(key).decode("utf-8").splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("messages"), list):
            rows.append(row)
    return rows


def loss_picture(losses: list[tuple[int, float]], title: str, store: Store, partition: str) -> str:
    """Write ``reports/llm_adapter/<date>/loss.png`` (the per-step training loss)."""
    from style_pipeline.media.pictures import loss_curve_png

    key = layout.report_key(layout.LLM_ADAPTER, partition, "loss.png")
    store.put_bytes(loss_curve_png([loss for _, loss in losses], title), key)
    return key


def train_llm_adapter(
    sft_dataset: Mapping,
    store: Store,
    partition: str,
    settings: LlmSettings,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
) -> tuple[LlmAdapterDocument, dict[str, FactValue]]:
    """Train and publish the day's adapter; a document with ``trained: false`` and the
    reason when the train split has fewer than ``llm.min_train_examples`` rows."""
    from style_pipeline.llm import adapters
    from style_pipeline.llm.trainer import train_adapter
    from style_pipeline.models.causal_lm import resolve_causal_lm

    examples = {s: read_split(store, sft_dataset, partition, s) for s in SPLITS}
    counts = {s: len(rows) for s, rows in examples.items()}
    snapshot = sft_dataset.get("snapshot_id")
    if counts["train"] < settings.min_train_examples:
        reason = (
            f"{counts['train']} train examples in sft_dataset {partition} "
            f"(llm.min_train_examples: {settings.min_train_examples})"
        )
        document = LlmAdapterDocument(
            trained=False, reason=reason, snapshot_id=snapshot, examples=counts
        )
        return document, {"trained": False, "reason": reason}
    model = resolve_causal_lm(settings)
    if model.fallback_reason:
        (warn or log)(f"LLM adapter on the TINY model: {model.fallback_reason}")
    every = settings.log_every_n_steps

    def on_step(step: int, loss: float) -> None:
        if step == 1 or step % every == 0:
            log(f"llm_adapter step {step}: loss {loss:.4f}")

    config_hash = settings.config_hash()
    with tempfile.TemporaryDirectory(prefix="llm_adapter_") as tmp:
        trained = train_adapter(
            model.path, examples["train"], settings.training, Path(tmp) / "adapter",
            base_model_id=model.model_id, on_step=on_step,
        )  # fmt: skip
        metadata: dict[str, Any] = {
            "snapshot_id": snapshot,
            "config_hash": config_hash,
            "config": settings.training.model_dump(mode="json"),
            "base_model": model.model_id,
            "model_profile": model.profile,
            "model_profile_reason": model.fallback_reason,
            "examples": counts,
            "steps": trained.steps,
            "losses": trained.losses,
            "device": trained.device,
            "seconds": trained.seconds,
        }
        version, stored = adapters.publish(store, partition, trained.folder, metadata)
        final = trained.losses[-1][1] if trained.losses else None
        run_id = track_training(
            "style_pipeline.llm_adapter",
            version,
            {"llm": settings.model_dump(mode="json", exclude={"eval"})},
            trained.losses,
            {"final_loss": final} if final is not None else {},
            {"asset": "llm_adapter", "version": version, "sha256": stored["sha256"],
             "snapshot_id": str(snapshot), "base_model": model.model_id},
            [trained.folder / adapters.CONFIG_NAME],
            warn,
        )  # fmt: skip
    live = adapters.read_live(store).version
    pruned = adapters.prune_versions(
        store, settings.keep_versions, {v for v in (live, version) if v}
    )
    log(f"llm_adapter {version}: {trained.steps} steps, final loss {final}, sha256 "
        f"{stored['sha256'][:12]}, pruned {pruned or 'none'}")  # fmt: skip
    document = LlmAdapterDocument(
        trained=True,
        version=version,
        prefix=layout.llm_adapter_dir(version),
        sha256=stored["sha256"],
        snapshot_id=snapshot,
        config_hash=config_hash,
        base_model=model.model_id,
        model_profile=model.profile,
        model_profile_reason=model.fallback_reason,
        examples=counts,
        steps=trained.steps,
        final_loss=final,
        losses=trained.losses,
        pruned=pruned,
        tracking_run=run_id,
    )
    facts: dict[str, FactValue] = {
        "trained": True,
        "version": version,
        "sha256": stored["sha256"],
        "snapshot_id": str(snapshot or "-"),
        "config_hash": config_hash,
        "base_model": model.model_id,
        "model_profile": model.profile,
        "steps": trained.steps,
        "final_loss": final if final is not None else float("nan"),
        "train_examples": counts["train"],
        "val_examples": counts["val"],
        "device": trained.device,
        "train_seconds": trained.seconds,
        "pruned": ", ".join(pruned) or "-",
        "tracking_run": run_id or "-",
    }
    return document, facts
