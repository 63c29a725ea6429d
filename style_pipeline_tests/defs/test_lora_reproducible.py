"""lora_weights_reproducible: the nightly check re-trains the day's version from what it
recorded and compares sha256; a different hash fails it with both hashes."""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import pytest

from style_pipeline.contracts.training import ReproCheckSettings
from style_pipeline.defs.run import materialize_partition
from style_pipeline.defs.training.assets import reproduction_result
from style_pipeline.demo.samples import make_photos
from style_pipeline.paths import resolve_local
from style_pipeline.settings import load_settings
from style_pipeline.stages.lora_reproduction import Reproduction, reproduce_version, why_not
from style_pipeline.storage.store import Store

DAY = "2026-02-10"
UP_TO_LORA = "group:ingest or group:curation or group:captioning or key:training_dataset"
AUTO = ReproCheckSettings()
META = {"config": {"deterministic": True}, "device": "cpu", "seconds": 12.0}


@pytest.mark.slow
def test_nightly_check_retrains_the_version_and_matches(tiny_models, monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_TRAINING__REPRO_CHECK__MODE", "auto")  # the default
    settings = load_settings()
    assert settings.training.repro_check.mode == "auto"
    make_photos(settings.drop_path() / DAY, 4, seed=11, size=(640, 480))
    instance = dg.DagsterInstance.ephemeral()
    run = materialize_partition(DAY, f"{UP_TO_LORA} or key:lora_weights", instance=instance)
    assert run.success, run.failed_steps
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("lora_weights"), "lora_weights_reproducible"), limit=5
    )
    (record,) = records
    evaluation = record.event.dagster_event.event_specific_data  # the check's evaluation
    store = Store(settings.storage_root())
    published = json.loads(store.read_bytes(f"lora_weights/{DAY}.json"))
    assert evaluation.passed, evaluation.description
    assert evaluation.partition == DAY
    meta = evaluation.metadata
    assert meta["re_trained"].value is True
    assert meta["actual_sha256"].value == meta["expected_sha256"].value == published["sha256"]

    # the same version re-trained again, by the stage, under "always": still bit-identical
    cache = resolve_local(settings.training.model_cache_dir)
    always = ReproCheckSettings(mode="always")
    again = reproduce_version(store, published["version"], always, cache)
    assert again.matches and again.actual == published["sha256"]

    # a published hash the training does not give back: the check fails with both hashes
    key = f"{published['prefix']}/metadata.json"
    metadata = json.loads(store.read_bytes(key))
    forged = hashlib.sha256(b"other weights").hexdigest()
    store.put_bytes(json.dumps({**metadata, "sha256": forged}).encode(), key)
    found = reproduce_version(store, published["version"], always, cache)
    assert found.ran and not found.matches
    result = reproduction_result(found)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert forged in result.description and published["sha256"] in result.description

    # the dataset folder rebuilt since (another manifest): unverifiable, a WARN failure
    store.put_bytes(json.dumps(metadata).encode(), key)
    manifest_key = f"training_dataset/{DAY}/manifest.json"
    manifest = json.loads(store.read_bytes(manifest_key))
    store.put_bytes(json.dumps({**manifest, "dataset_hash": "0" * 64}).encode(), manifest_key)
    gone = reproduce_version(store, published["version"], always, cache)
    assert not gone.ran and gone.unverifiable and "rebuilt" in gone.reason
    verdict = reproduction_result(gone)
    assert not verdict.passed and verdict.severity == dg.AssetCheckSeverity.WARN


def test_auto_retrains_only_fast_deterministic_runs_of_this_device_type():
    assert why_not(META, AUTO, "cpu") is None
    assert "deterministic: false" in why_not({**META, "config": {}}, AUTO, "cpu")
    assert "trained on cuda:0" in why_not({**META, "device": "cuda:0"}, AUTO, "cpu")
    assert why_not({**META, "device": "cuda:0"}, AUTO, "cuda") is None
    assert "max_train_seconds" in why_not({**META, "seconds": 5000.0}, AUTO, "cpu")
    assert why_not({**META, "seconds": 5000.0}, ReproCheckSettings(mode="always"), "cpu") is None
    assert "never" in why_not(META, ReproCheckSettings(mode="never"), "cpu")


def test_a_version_left_alone_passes_and_says_why():
    skipped = Reproduction("2026-01-01.001", "ab" * 32, ran=False, reason="mode is never")
    result = reproduction_result(skipped)
    assert result.passed and result.metadata["re_trained"].value is False
    assert result.description == "not re-trained: mode is never"
