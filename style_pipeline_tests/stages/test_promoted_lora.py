"""Stage ``promoted_lora``: gates, decisions and the per-day document, against a local Store."""

from __future__ import annotations

import pytest

from style_pipeline.contracts.training import TrainingSettings
from style_pipeline.stages.promoted_lora import promote_day
from style_pipeline.training.promotion import PromotionError, promote, read_live
from style_pipeline_tests.training.published import store_with_three_days

REAL = TrainingSettings()
ALLOW_TINY = TrainingSettings(allow_tiny_promotion=True)


def _lora(version: str, profile: str = "pretrained") -> dict:
    """A ``lora_weights`` document as the IO manager loads it (only the fields read here)."""
    return {
        "prefix": f"lora_weights/{version}", "pruned": [], "version": version,
        "partition": version[:10], "weights": "pytorch_lora_weights.safetensors",
        "sha256": "-", "dataset_hash": "d", "config_hash": "c", "config": {}, "seed": 0,
        "backend": "b", "steps": 1, "epochs": 1, "final_loss": 0.1, "losses": [0.1],
        "seconds": 1.0, "device": "cpu", "mixed_precision": "no", "family": "sd",
        "n_images": 4, "lora_parameters": 8, "notes": [], "model_path": "/models/sd15",
        "model_profile": profile, "model_profile_requested": profile,
        "model_profile_reason": "no weights on disk" if profile == "tiny" else "on disk",
        "estimate": {}, "torch_threads": 1, "versions": {},
    }  # fmt: skip


def _metrics(version: str, regressions: list | None = None) -> dict:
    return {
        "lora_version": version,
        "metrics": {"clip_score": 20.0},
        "previous_partition": "2026-01-01" if regressions is not None else None,
        "regressions": regressions or [],
        "compared": ["clip_score"] if regressions is not None else [],
    }


@pytest.fixture
def store(tmp_path):
    return store_with_three_days(tmp_path)


def test_first_promotion_then_next_day_then_rerun(store):
    first, facts = promote_day(
        _lora("2026-01-01.001"), _metrics("2026-01-01.001"), store, "2026-01-01", REAL
    )
    assert (first.decision, first.previous, first.live) == ("promoted", None, "2026-01-01.001")
    assert facts["version"] == "2026-01-01.001" and facts["previous"] == "-"
    second, facts = promote_day(
        _lora("2026-01-02.001"), _metrics("2026-01-02.001", []), store, "2026-01-02", REAL
    )
    assert (second.decision, second.previous) == ("promoted", "2026-01-01.001")
    assert second.sha256 == read_live(store).sha256 == facts["sha256"]
    event = read_live(store).history[-1]
    assert (event.by, event.action) == ("promoted_lora", "promote")
    assert "against 2026-01-01" in event.reason
    # a re-run writes the same document and appends no event
    again, _ = promote_day(
        _lora("2026-01-02.001"), _metrics("2026-01-02.001", []), store, "2026-01-02", REAL
    )
    assert again.model_copy(update={"decision": "promoted"}) == second
    assert again.decision == "already_live" and len(read_live(store).history) == 2


def test_backfill_of_an_older_day_never_moves_live_backwards(store):
    promote(store, "2026-01-03.001", by="ana")
    document, _ = promote_day(
        _lora("2026-01-02.001"), _metrics("2026-01-02.001"), store, "2026-01-02", REAL
    )
    assert (document.decision, document.live) == ("newer_live", "2026-01-03.001")
    assert read_live(store).version == "2026-01-03.001"


@pytest.mark.parametrize(
    ("profile", "regressions", "settings", "code"),
    [
        ("pretrained", [{"metric": "clip_score", "current": 1.0, "previous": 30.0}], REAL,
         "regression"),
        ("tiny", None, REAL, "tiny_weights"),
        ("tiny", [{"metric": "fid", "current": 90.0, "previous": 10.0}], ALLOW_TINY,
         "regression"),
    ],
)  # fmt: skip
def test_blocked_days_change_nothing(store, profile, regressions, settings, code):
    promote(store, "2026-01-01.001", by="ana")
    before = read_live(store)
    with pytest.raises(PromotionError) as caught:
        promote_day(
            _lora("2026-01-02.001", profile),
            _metrics("2026-01-02.001", regressions),
            store,
            "2026-01-02",
            settings,
        )
    assert caught.value.code == code
    assert read_live(store) == before


def test_tiny_weights_go_live_when_allowed(store):
    document, _ = promote_day(
        _lora("2026-01-02.001", "tiny"), _metrics("2026-01-02.001"), store, "2026-01-02", ALLOW_TINY
    )
    assert document.decision == "promoted" and read_live(store).version == "2026-01-02.001"


def test_metrics_of_another_version_block(store):
    with pytest.raises(PromotionError, match="version_mismatch"):
        promote_day(_lora("2026-01-02.001"), _metrics("2026-01-01.001"), store, "2026-01-02", REAL)
