"""Training assets through Dagster: metrics' blocking checks keep promoted_lora from running.

One day of generated photos goes through the whole graph with tiny models; then the day is
re-run against a crafted earlier evaluation that today's regresses from, and on tiny
weights without ``allow_tiny_promotion``: both runs evaluate but promote nothing.
"""

import json

import dagster as dg
import pytest

from style_pipeline.demo.samples import make_photos
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store
from style_pipeline.training.promotion import read_live
from style_pipeline_tests.conftest import materialize_day

DAY = "2026-11-12"
pytestmark = pytest.mark.slow


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_regression_and_tiny_weights_block_promotion(tiny_models, instance, monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_TRAINING__ALLOW_TINY_PROMOTION", "true")
    settings = load_settings()
    make_photos(settings.drop_path() / DAY, 4, seed=5, size=(640, 480))
    store = Store(settings.storage_root())

    first = materialize_day(DAY, "*", instance=instance)
    assert first.success
    assert (
        _checks(first).items() >= {"no_regression": True, "trained_on_real_weights": True}.items()
    )
    version = json.loads(store.read_bytes(f"lora_weights/{DAY}.json"))["version"]
    promoted = json.loads(store.read_bytes(f"promoted_lora/{DAY}.json"))
    assert (promoted["decision"], promoted["version"], promoted["previous"]) == (
        "promoted", version, None,
    )  # fmt: skip
    assert read_live(store).version == version

    # an earlier day evaluated far better: today's retrained LoRA regresses against it
    today = json.loads(store.read_bytes(f"metrics/{DAY}.json"))
    earlier = {**today, "lora_version": "2026-11-11.001", "regressions": [], "compared": []}
    earlier["metrics"] = {**today["metrics"], "clip_score": today["metrics"]["clip_score"] + 50}
    store.put_bytes(json.dumps(earlier).encode(), "metrics/2026-11-11.json")
    regressed = materialize_day(
        DAY,
        "key:lora_weights or key:metrics or key:promoted_lora",
        instance=instance,
        raise_on_error=False,
    )
    assert not regressed.success
    assert _checks(regressed) == {"no_regression": False, "trained_on_real_weights": True}
    assert _materialized(regressed) == {"lora_weights", "metrics"}  # promoted_lora skipped
    retrained = json.loads(store.read_bytes(f"lora_weights/{DAY}.json"))["version"]
    assert retrained != version and read_live(store).version == version

    # no earlier day any more, but tiny weights without allow_tiny_promotion
    store.delete("metrics/2026-11-11.json")
    monkeypatch.setenv("STYLE_PIPELINE_TRAINING__ALLOW_TINY_PROMOTION", "false")
    tiny = materialize_day(
        DAY, "key:metrics or key:promoted_lora", instance=instance, raise_on_error=False
    )
    assert _checks(tiny) == {"no_regression": True, "trained_on_real_weights": False}
    assert _materialized(tiny) == {"metrics"} and read_live(store).version == version
    # selected alone, the asset applies the same gates itself
    alone = materialize_day(DAY, "promoted_lora", instance=instance, raise_on_error=False)
    assert not alone.success and read_live(store).version == version
    failure = next(e for e in alone.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "tiny_weights" in str(failure.step_failure_data.error)

    monkeypatch.setenv("STYLE_PIPELINE_TRAINING__ALLOW_TINY_PROMOTION", "true")
    assert materialize_day(DAY, "promoted_lora", instance=instance).success
    live = read_live(store)
    assert live.version == retrained
    assert [(e.version, e.by) for e in live.history] == [
        (version, "promoted_lora"), (retrained, "promoted_lora"),
    ]  # fmt: skip
