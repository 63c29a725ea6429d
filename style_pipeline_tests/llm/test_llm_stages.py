"""Stages llm_adapter, llm_eval and promoted_llm_adapter against a local Store."""

from __future__ import annotations

import pytest

from style_pipeline.llm import adapters
from style_pipeline.stages.llm_adapter import train_llm_adapter
from style_pipeline.stages.llm_eval import evaluate_llm_adapter
from style_pipeline.stages.promoted_llm_adapter import promote_adapter
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.llm.helpers import DAY, chat, examples, put_sft, tiny_settings

VAL = [chat(f"what song is playing {i}?", "this song is great music tonight") for i in range(4)]


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("llm_models")


def test_publishes_versions_and_keeps_the_newest_three(tmp_path, model_cache):
    store = Store(tmp_path / "s")
    settings = tiny_settings(model_cache, max_steps=1)
    sft = put_sft(store, DAY, {"train": examples(4), "val": VAL})
    published = []
    for _ in range(4):
        document, facts = train_llm_adapter(sft, store, DAY, settings, log=lambda _: None)
        published.append(document.version)
        assert facts["trained"] is True and facts["snapshot_id"] == "snap"
    assert published == [f"{DAY}.00{n}" for n in range(1, 5)]
    assert adapters.list_versions(store) == published[1:]
    assert document.pruned == published[:1]
    assert document.examples == {"train": 4, "val": 4, "test": 0}
    metadata = adapters.read_metadata(store, published[-1])
    assert metadata["sha256"] == document.sha256 == adapters.verified_sha256(store, published[-1])
    assert metadata["snapshot_id"] == "snap" and metadata["config_hash"] == settings.config_hash()
    assert metadata["model_profile"] == "tiny" and metadata["steps"] == 1
    # same data, config and seed: every version holds the same bytes
    assert len({adapters.read_metadata(store, v)["sha256"] for v in published[1:]}) == 1
    assert sorted(
        k.rsplit("/", 1)[1] for k in store.list(layout.llm_adapter_dir(published[-1]))
    ) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "metadata.json",
    ]


def test_too_few_examples_trains_nothing(tmp_path, model_cache):
    store = Store(tmp_path / "s")
    document, facts = train_llm_adapter({}, store, DAY, tiny_settings(model_cache))
    assert not document.trained and "0 train examples" in (document.reason or "")
    evaluation, _ = evaluate_llm_adapter(
        document.model_dump(), {}, store, DAY, tiny_settings(model_cache)
    )
    assert not evaluation.evaluated
    promoted, _ = promote_adapter(
        document.model_dump(), evaluation.model_dump(), store, DAY, tiny_settings(model_cache)
    )
    assert promoted.decision == "nothing_trained" and promoted.live is None


def test_eval_gate_blocks_a_worse_adapter(tmp_path, model_cache):
    """A baseline fitted on the validation answers; then an adapter trained one tiny step on
    unrelated text: its validation perplexity is far above the baseline's (beyond the 5 %
    tolerance), so llm_no_regression fails and the promotion is refused."""
    store = Store(tmp_path / "s")
    good = tiny_settings(model_cache, max_steps=12, learning_rate=3e-2)
    sft = put_sft(store, DAY, {"train": VAL * 2, "val": VAL})
    first, _ = train_llm_adapter(sft, store, DAY, good)
    evaluation, facts = evaluate_llm_adapter(first.model_dump(), sft, store, DAY, good)
    assert evaluation.evaluated and evaluation.previous_version is None
    assert evaluation.regressions == [] and facts["baseline"] == "-"
    assert evaluation.metrics["val_perplexity"] > 1 and evaluation.metrics["suite_prompts"] == 12
    assert {s["id"] for s in evaluation.samples} >= {"greeting", "next_game"}
    promoted, _ = promote_adapter(first.model_dump(), evaluation.model_dump(), store, DAY, good)
    assert promoted.decision == "promoted" and promoted.live == first.version
    assert adapters.read_live(store).version == first.version

    day2 = "2026-01-06"
    worse = tiny_settings(model_cache, max_steps=1, learning_rate=1e-5)
    sft2 = put_sft(store, day2, {"train": examples(4, "chess"), "val": VAL})
    second, _ = train_llm_adapter(sft2, store, day2, worse)
    result, facts = evaluate_llm_adapter(second.model_dump(), sft2, store, day2, worse)
    assert result.previous_version == first.version and facts["regressions"] >= 1
    flagged = {f["metric"]: f for f in result.regressions}
    assert "val_perplexity" in flagged
    assert result.metrics["val_perplexity"] > result.metrics["baseline_val_perplexity"] * 1.05
    with pytest.raises(adapters.AdapterError, match="regression: val_perplexity"):
        promote_adapter(second.model_dump(), result.model_dump(), store, day2, worse)
    assert adapters.read_live(store).version == first.version

    # the same adapter against a lenient tolerance passes and goes live
    lenient = worse.model_copy(
        update={
            "eval": worse.eval.model_copy(
                update={
                    "perplexity_tolerance": 1e6,
                    "length_tolerance": 1e6,
                    "refusal_tolerance": 1,
                }
            )
        }
    )
    ok, _ = evaluate_llm_adapter(second.model_dump(), sft2, store, day2, lenient)
    assert ok.regressions == [] and "val_perplexity" in ok.compared
    promoted, _ = promote_adapter(second.model_dump(), ok.model_dump(), store, day2, lenient)
    assert promoted.decision == "promoted" and promoted.previous == first.version
    again, _ = promote_adapter(second.model_dump(), ok.model_dump(), store, day2, lenient)
    assert again.decision == "already_live"


def test_tiny_adapter_is_not_promoted_unless_allowed(tmp_path, model_cache):
    store = Store(tmp_path / "s")
    settings = tiny_settings(model_cache, max_steps=1).model_copy(
        update={"allow_tiny_promotion": False}
    )
    sft = put_sft(store, DAY, {"train": examples(2)})
    document, _ = train_llm_adapter(sft, store, DAY, settings)
    evaluation, _ = evaluate_llm_adapter(document.model_dump(), sft, store, DAY, settings)
    with pytest.raises(adapters.AdapterError, match="tiny_model"):
        promote_adapter(document.model_dump(), evaluation.model_dump(), store, DAY, settings)


def test_training_is_tracked_in_an_mlflow_file_store(tmp_path, model_cache, monkeypatch):
    import mlflow

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = Store(tmp_path / "s")
    sft = put_sft(store, DAY, {"train": examples(4)})
    document, facts = train_llm_adapter(sft, store, DAY, tiny_settings(model_cache, max_steps=2))
    assert document.tracking_run and facts["tracking_run"] == document.tracking_run
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(document.tracking_run)
    assert run.data.tags["version"] == document.version
    assert run.data.tags["sha256"] == document.sha256
    assert run.data.params["llm.training.max_steps"] == "2"
    history = client.get_metric_history(document.tracking_run, "train_loss")
    assert [m.step for m in history] == [1, 2]
    assert [a.path for a in client.list_artifacts(document.tracking_run)] == ["adapter_config.json"]


def test_tracking_off_without_the_variable(tmp_path, monkeypatch):
    from style_pipeline.stages.tracking import track_training

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert track_training("x", "run", {"a": 1}, [(1, 0.5)], {}, {}) is None
