"""Stage ``llm_eval``: the day's adapter scored (validation perplexity, prompt-suite answer
length, refusal and empty rates) next to a baseline adapter scored on the same rows in the
same run: the live adapter, else the newest earlier version (none on a first run). A
metric worse than the baseline's beyond its ``llm.eval`` tolerance is a regression; the
asset's blocking check ``llm_no_regression`` fails on any."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from style_pipeline.contracts.llm import LlmAdapterDocument, LlmEvalDocument, LlmSettings
from style_pipeline.paths import resolve_local
from style_pipeline.stages import FactValue
from style_pipeline.stages.llm_adapter import read_split
from style_pipeline.storage.store import Store


def baseline_version(store: Store, version: str) -> str | None:
    """The adapter the day's ``version`` is compared with (None: nothing earlier)."""
    from style_pipeline.llm import adapters

    live = adapters.read_live(store).version
    published = adapters.list_versions(store)
    if live and live != version and live in published:
        return live
    earlier = [v for v in published if adapters.version_order(v) < adapters.version_order(version)]
    return earlier[-1] if earlier else None


def _scores(model_path: Path, adapter_dir: Path, val: list, prompts: list, settings: LlmSettings):
    import torch
    from peft import PeftModel

    from style_pipeline.llm.evaluate import score_adapter
    from style_pipeline.models.causal_lm import load_causal_lm

    base, tokenizer = load_causal_lm(model_path)
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    if torch.cuda.is_available():  # fp32 weights; a 0.5B model scores in seconds on a GPU
        model = model.to("cuda")
    return score_adapter(
        model, tokenizer, val, prompts, settings.eval, settings.training.max_length
    )


def evaluate_llm_adapter(
    llm_adapter: Mapping,
    sft_dataset: Mapping,
    store: Store,
    partition: str,
    settings: LlmSettings,
    log: Callable[[str], None] = print,
) -> tuple[LlmEvalDocument, dict[str, FactValue]]:
    """Score the day's adapter and its baseline; ``evaluated: false`` when none was trained."""
    from style_pipeline.llm import adapters
    from style_pipeline.llm.evaluate import load_prompts, regressions
    from style_pipeline.models.causal_lm import resolve_causal_lm

    adapter = LlmAdapterDocument.model_validate(dict(llm_adapter))
    if not adapter.trained or adapter.version is None:
        reason = f"no adapter trained on {partition}: {adapter.reason}"
        return LlmEvalDocument(version=None, evaluated=False, reason=reason), {
            "evaluated": False,
            "reason": reason,
        }
    val = read_split(store, sft_dataset, partition, "val")
    prompts = load_prompts(resolve_local(settings.eval.prompts))
    model = resolve_causal_lm(settings)
    if model.model_id != adapter.base_model:
        raise ValueError(
            f"{adapter.version} was trained on {adapter.base_model}, the resolver now gives "
            f"{model.model_id}: evaluate with the same llm.profile / llm.pretrained"
        )
    baseline = baseline_version(store, adapter.version)
    if baseline and adapters.read_metadata(store, baseline).get("base_model") != model.model_id:
        log(f"baseline {baseline} has another base model: not compared")
        baseline = None
    with tempfile.TemporaryDirectory(prefix="llm_eval_") as tmp:
        new_dir = adapters.download(store, adapter.version, Path(tmp) / "new")
        new = _scores(model.path, new_dir, val, prompts, settings)
        base_metrics: dict[str, float] = {}
        if baseline:
            base_dir = adapters.download(store, baseline, Path(tmp) / "baseline")
            base_metrics = _scores(model.path, base_dir, val, prompts, settings).metrics
    flags, compared = (
        regressions(new.metrics, base_metrics, settings.eval) if baseline else ([], [])
    )
    metrics = {**new.metrics, **{f"baseline_{k}": v for k, v in base_metrics.items()}}
    log(f"llm_eval {adapter.version} vs {baseline or 'none'}: {new.metrics}; "
        f"regressions: {[f['metric'] for f in flags] or 'none'}")  # fmt: skip
    document = LlmEvalDocument(
        version=adapter.version,
        evaluated=True,
        metrics=metrics,
        previous_version=baseline,
        previous_partition=adapters.version_order(baseline)[0] if baseline else None,
        regressions=flags,
        compared=compared,
        samples=new.samples,
    )
    facts: dict[str, Any] = {
        "evaluated": True,
        "version": adapter.version,
        "baseline": baseline or "-",
        "regressions": len(flags),
        "val_examples": len(val),
        **{k: v for k, v in metrics.items()},
    }
    return document, facts
