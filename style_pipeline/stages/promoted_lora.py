"""Stage ``promoted_lora``: the day's evaluated LoRA goes live when nothing blocks it.

Dagster's blocking checks on ``metrics`` (``no_regression``, ``trained_on_real_weights``)
skip this asset in the run that failed them; the same gates are evaluated again here, so a
run that selects ``promoted_lora`` alone cannot promote what they refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from style_pipeline.contracts.training import (
    LoraWeightsDocument,
    PromotedLoraDocument,
    TrainingSettings,
)
from style_pipeline.stages import FactValue
from style_pipeline.storage.store import Store
from style_pipeline.training.promotion import (
    NIGHTLY_AUTHOR,
    PromotionError,
    live_before,
    promote,
    promotion_blockers,
    read_live,
    verified_sha256,
    version_order,
)


def promote_day(
    lora_weights: Mapping,
    metrics: Mapping,
    store: Store,
    partition: str,
    settings: TrainingSettings,
) -> tuple[PromotedLoraDocument, dict[str, FactValue]]:
    """Promote the day's ``lora_weights`` version unless a gate blocks it or a newer one is live.

    ``lora_weights`` and ``metrics`` are the upstream documents as loaded (dicts).
    """
    lora = LoraWeightsDocument.model_validate(lora_weights)
    blockers = promotion_blockers(lora_weights, metrics, settings.allow_tiny_promotion)
    if blockers:
        code = blockers[0][0]
        raise PromotionError(code, "; ".join(f"{c}: {text}" for c, text in blockers))
    live = read_live(store)
    if live.version is not None and version_order(live.version) > version_order(lora.version):
        document = PromotedLoraDocument(
            decision="newer_live",
            version=lora.version,
            sha256=verified_sha256(store, lora.version),
            previous=live.version,
            live=live.version,
            at=None,
        )
    else:
        decision: Literal["promoted", "already_live"]
        if live.version != lora.version:
            reason = f"nightly {partition}: metrics passed" + (
                f" against {metrics['previous_partition']}"
                if metrics.get("previous_partition")
                else " (first evaluation)"
            )
            live = promote(store, lora.version, by=NIGHTLY_AUTHOR, reason=reason)
            decision = "promoted"
        else:
            decision = "already_live"  # a re-run: same keys, same document
        event = next(e for e in reversed(live.history) if e.version == lora.version)
        document = PromotedLoraDocument(
            decision=decision,
            version=lora.version,
            sha256=live.sha256 or "",
            previous=live_before(live, lora.version),
            live=lora.version,
            at=event.at,
        )
    facts: dict[str, FactValue] = {
        "decision": document.decision,
        "version": document.version,
        "previous": document.previous or "-",
        "sha256": document.sha256,
        "live": document.live,
    }
    return document, facts
