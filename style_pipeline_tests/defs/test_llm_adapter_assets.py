"""llm_adapter -> llm_eval (blocking checks) -> promoted_llm_adapter through Dagster, on the
tiny causal LM, from an ``sft_dataset`` document and its JSONL files in the storage root."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from style_pipeline.settings import load_settings
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.conftest import materialize_day
from style_pipeline_tests.llm.helpers import DAY, examples, put_sft

SELECT = "key:llm_adapter or key:llm_eval or key:promoted_llm_adapter"


@pytest.fixture
def tiny_llm(monkeypatch, tmp_path):
    for key, value in {
        "PROFILE": "tiny",
        "MODEL_CACHE_DIR": str(tmp_path / "models"),
        "TRAINING__MAX_STEPS": "2",
        "TRAINING__BATCH_SIZE": "2",
        "EVAL__MAX_NEW_TOKENS": "3",
    }.items():
        monkeypatch.setenv(f"STYLE_PIPELINE_LLM__{key}", value)


def _sft_day(store: Store) -> None:
    document = put_sft(store, DAY, {"train": examples(4), "val": examples(2, "song")})
    store.put_bytes(json.dumps(document).encode(), layout.document_key("sft_dataset", DAY))


def _checks(result) -> dict[str, bool]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }


def test_nightly_llm_assets_promote_when_tiny_is_allowed(tiny_llm, monkeypatch, instance):
    monkeypatch.setenv("STYLE_PIPELINE_LLM__ALLOW_TINY_PROMOTION", "true")
    store = Store(load_settings().storage_root())
    _sft_day(store)
    result = materialize_day(DAY, SELECT, instance=instance)
    assert result.success
    assert _checks(result) == {"llm_no_regression": True, "llm_trained_on_real_weights": True}
    adapter = json.loads(store.read_bytes(layout.document_key(layout.LLM_ADAPTER, DAY)))
    assert adapter["trained"] and adapter["version"] == f"{DAY}.001" and adapter["steps"] == 2
    assert store.exists(layout.llm_adapter_file(adapter["version"], "adapter_model.safetensors"))
    evaluation = json.loads(store.read_bytes(layout.document_key(layout.LLM_EVAL, DAY)))
    assert evaluation["evaluated"] and evaluation["metrics"]["val_perplexity"] > 1
    live = json.loads(store.read_bytes(layout.live_llm_adapter_key()))
    assert live["version"] == adapter["version"] and live["sha256"] == adapter["sha256"]
    materialization = result.asset_materializations_for_node("llm_adapter")[0]
    assert materialization.metadata["model_profile"].value == "tiny"
    assert "loss.png" in materialization.metadata["loss_curve"].value
    assert store.exists(layout.report_key(layout.LLM_ADAPTER, DAY, "loss.png"))


def test_a_tiny_adapter_is_evaluated_but_blocked(tiny_llm, instance):
    store = Store(load_settings().storage_root())
    _sft_day(store)
    result = materialize_day(DAY, SELECT, instance=instance, raise_on_error=False)
    assert _checks(result) == {"llm_no_regression": True, "llm_trained_on_real_weights": False}
    assert store.exists(layout.document_key(layout.LLM_EVAL, DAY))
    assert not store.exists(layout.document_key(layout.PROMOTED_LLM_ADAPTER, DAY))
    assert not store.exists(layout.live_llm_adapter_key())
