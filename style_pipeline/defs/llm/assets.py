"""LLM group, training side: the nightly LoRA adapter on ``sft_dataset``, its evaluation
(blocking checks) and its promotion to ``promoted_llm_adapter/live.json``.

Stages are imported inside each asset: loading the code location imports no model library.
"""

import time
from typing import Any

import dagster as dg

from style_pipeline.contracts.llm import (
    LlmAdapterDocument,
    PromotedLlmAdapterDocument,
)
from style_pipeline.defs.metadata import loss_markdown, picture_url, series_table
from style_pipeline.defs.ownership import group_options
from style_pipeline.defs.partitions import DAILY_PARTITIONS, MAY_BE_MISSING
from style_pipeline.defs.placement import K8S_GPU_OP_TAGS
from style_pipeline.defs.resources import SettingsResource, StorageResource

LLM = group_options("llm")


def _elapsed(started: float) -> float:
    return round(time.perf_counter() - started, 3)


@dg.asset(
    **LLM,
    kinds={"pytorch", "safetensors"},
    io_manager_key="json_io_manager",
    ins={"sft_dataset": dg.AssetIn(metadata=MAY_BE_MISSING)},
    pool="training",
    op_tags=K8S_GPU_OP_TAGS,  # k8s_job_executor: this step's pod goes to a GPU node
)
def llm_adapter(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    sft_dataset: dict | None,
) -> dg.Output[LlmAdapterDocument]:
    """LoRA adapter (TRL SFTTrainer + PEFT, safetensors) trained on the day's SFT split."""
    from style_pipeline.stages.llm_adapter import train_llm_adapter

    started = time.perf_counter()
    cfg, store = settings.load(), storage.store()
    document, facts = train_llm_adapter(
        sft_dataset or {}, store, context.partition_key, cfg.llm,
        log=context.log.info, warn=context.log.warning,
    )  # fmt: skip
    if not document.trained:
        context.log.warning(f"no LLM adapter trained: {document.reason}")
    metadata: dict[str, Any] = {**facts, "seconds": _elapsed(started)}
    if document.losses:
        metadata["loss_series"] = series_table(document.losses)
    if document.losses and cfg.pictures.enabled:
        from style_pipeline.stages.llm_adapter import loss_picture

        title = f"{document.version}: {document.examples.get('train', 0)} examples"
        try:
            key = loss_picture(document.losses, title, store, context.partition_key)
        except (OSError, ValueError) as err:  # a picture must never fail the asset
            context.log.warning(f"loss curve not drawn: {err!r}")
        else:
            url = picture_url(cfg.serving.base_url(), key)
            losses = [loss for _, loss in document.losses]
            metadata["loss_curve"] = loss_markdown(url, str(store.path(key)), losses)
    return dg.Output(document, metadata=metadata)


@dg.asset(
    **LLM,
    kinds={"pytorch", "json"},
    io_manager_key="json_io_manager",
    ins={"sft_dataset": dg.AssetIn(metadata=MAY_BE_MISSING)},
    check_specs=[
        dg.AssetCheckSpec(
            "llm_no_regression",
            asset="llm_eval",
            blocking=True,
            partitions_def=DAILY_PARTITIONS,
            description="validation perplexity, refusal rate and answer length of the day's "
            "adapter no worse than the baseline adapter's beyond llm.eval tolerances; blocks "
            "that day's promotion when it fails",
        ),
        dg.AssetCheckSpec(
            "llm_trained_on_real_weights",
            asset="llm_eval",
            blocking=True,
            partitions_def=DAILY_PARTITIONS,
            description="the day's adapter was trained on a real base model, not the tiny "
            "random-init one (unless llm.allow_tiny_promotion); blocks promotion",
        ),
    ],
)
def llm_eval(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    llm_adapter: dict,
    sft_dataset: dict | None,
):
    """Validation perplexity, prompt-suite answers and refusals vs the baseline adapter."""
    from style_pipeline.stages.llm_eval import evaluate_llm_adapter
    from style_pipeline.stages.promoted_llm_adapter import real_weights_verdict

    started = time.perf_counter()
    cfg = settings.load().llm
    document, facts = evaluate_llm_adapter(
        llm_adapter, sft_dataset or {}, storage.store(), context.partition_key, cfg,
        log=context.log.info,
    )  # fmt: skip
    samples = dg.MetadataValue.md(
        "\n".join(f"- **{s['prompt']}** → {s['response'][:200] or '_(empty)_'}"
                  for s in document.samples) or "_no samples_"
    )  # fmt: skip
    yield dg.Output(document, metadata={**facts, "samples": samples, "seconds": _elapsed(started)})
    yield dg.AssetCheckResult(
        check_name="llm_no_regression",
        passed=not document.regressions,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "no regression"
            if not document.regressions
            else "; ".join(
                f"{f['metric']} {f['value']} (limit {f['limit']})" for f in document.regressions
            )
        ),  # fmt: skip
        metadata={
            "regressions": str(document.regressions),
            "compared": str(document.compared),
            "baseline": document.previous_version or "-",
        },
    )
    adapter = LlmAdapterDocument.model_validate(llm_adapter)
    real, why = real_weights_verdict(adapter, cfg.allow_tiny_promotion)
    yield dg.AssetCheckResult(
        check_name="llm_trained_on_real_weights",
        passed=real,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"model_profile": str(adapter.model_profile), "reason": why},
    )


@dg.asset(
    **LLM,
    kinds={"json"},
    io_manager_key="json_io_manager",
)
def promoted_llm_adapter(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    llm_adapter: dict,
    llm_eval: dict,
) -> dg.Output[PromotedLlmAdapterDocument]:
    """Makes the day's adapter live (promoted_llm_adapter/live.json) once llm_eval passes."""
    from style_pipeline.stages.promoted_llm_adapter import promote_adapter

    started = time.perf_counter()
    document, facts = promote_adapter(
        llm_adapter, llm_eval, storage.store(), context.partition_key, settings.load().llm
    )
    context.log.info(
        f"{document.decision}: {document.version} (live: {document.live}, "
        f"before: {document.previous or 'none'})"
    )
    return dg.Output(document, metadata={**facts, "seconds": _elapsed(started)})
