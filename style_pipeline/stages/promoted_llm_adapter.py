"""Stage ``promoted_llm_adapter``: the day's evaluated adapter goes live when nothing blocks it.

``llm_eval``'s blocking checks (``llm_no_regression``, ``llm_trained_on_real_weights``)
skip this asset in the run that failed them; the same gates are evaluated again here
(:func:`promotion_blockers`), so a run that selects this asset alone cannot promote what
they refused. The live version never moves backwards (a newer live one is left alone).
"""

from __future__ import annotations

from collections.abc import Mapping

from style_pipeline.contracts.llm import (
    LlmAdapterDocument,
    LlmEvalDocument,
    LlmSettings,
    PromotedLlmAdapterDocument,
)
from style_pipeline.llm import adapters
from style_pipeline.stages import FactValue
from style_pipeline.storage.store import Store


def real_weights_verdict(adapter: LlmAdapterDocument, allow_tiny: bool) -> tuple[bool, str]:
    """Whether the adapter passes "trained on real weights", and why."""
    if adapter.model_profile != "tiny":
        return True, f"base model {adapter.base_model} ({adapter.model_profile})"
    if allow_tiny:
        return True, "tiny base model, allowed by llm.allow_tiny_promotion"
    return False, (
        f"trained on the tiny random-init model ({adapter.model_profile_reason or 'profile tiny'})"
        "; set llm.allow_tiny_promotion for demos"
    )


def promotion_blockers(
    adapter: LlmAdapterDocument, evaluation: LlmEvalDocument, allow_tiny: bool
) -> list[tuple[str, str]]:
    """(code, text) of every gate the day's adapter fails; [] when it may go live."""
    blockers = []
    if evaluation.version != adapter.version or not evaluation.evaluated:
        blockers.append(("not_evaluated", f"llm_eval is about {evaluation.version}"))
    for flag in evaluation.regressions:
        blockers.append(
            ("regression", f"{flag['metric']} {flag['value']} vs baseline {flag['baseline']}")
        )
    real, why = real_weights_verdict(adapter, allow_tiny)
    if not real:
        blockers.append(("tiny_model", why))
    return blockers


def promote_adapter(
    llm_adapter: Mapping,
    llm_eval: Mapping,
    store: Store,
    partition: str,
    settings: LlmSettings,
) -> tuple[PromotedLlmAdapterDocument, dict[str, FactValue]]:
    """Promote the day's adapter version; raises ``AdapterError`` when a gate blocks it."""
    adapter = LlmAdapterDocument.model_validate(dict(llm_adapter))
    evaluation = LlmEvalDocument.model_validate(dict(llm_eval))
    live = adapters.read_live(store)
    if not adapter.trained or adapter.version is None:
        document = PromotedLlmAdapterDocument(
            decision="nothing_trained", version=None, live=live.version,
            reason=adapter.reason or "",
        )  # fmt: skip
    else:
        blockers = promotion_blockers(adapter, evaluation, settings.allow_tiny_promotion)
        if blockers:
            text = "; ".join(f"{code}: {why}" for code, why in blockers)
            raise adapters.AdapterError(blockers[0][0], text)
        order = adapters.version_order
        before = live.version
        if live.version and order(live.version) > order(adapter.version):
            decision, reason = "newer_live", f"{live.version} is newer and live"
        elif live.version == adapter.version:
            decision, reason = "already_live", "a re-run"
        else:
            reason = f"nightly {partition}: llm_eval passed against " + (
                evaluation.previous_version or "no baseline (first adapter)"
            )
            live = adapters.promote(store, adapter.version, adapters.NIGHTLY_AUTHOR, reason)
            decision = "promoted"
        event = next((e for e in reversed(live.history) if e.version == adapter.version), None)
        document = PromotedLlmAdapterDocument(
            decision=decision,
            version=adapter.version,
            sha256=adapter.sha256,
            previous=before if decision == "promoted" else _live_before(live, adapter.version),
            live=live.version,
            at=event.at if event else None,
            reason=reason,
        )
    facts: dict[str, FactValue] = {
        "decision": document.decision,
        "version": document.version or "-",
        "live": document.live or "-",
        "previous": document.previous or "-",
    }
    return document, facts


def _live_before(live, version: str) -> str | None:
    """The version live just before ``version`` last went live (None: none)."""
    for index in range(len(live.history) - 1, -1, -1):
        if live.history[index].version == version:
            return live.history[index - 1].version if index else None
    return live.version if live.version != version else None
