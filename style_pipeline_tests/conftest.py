"""Shared fixtures: isolated roots, a Dagster instance in tmp, a moto S3 server on loopback."""

from __future__ import annotations

import os
import socket
import uuid

import dagster as dg
import pytest

from style_pipeline.settings import load_settings

# The suite's dates (2026-01-05, ...) need partitions whatever data/ holds (ADR 0005).
os.environ.setdefault("STYLE_PIPELINE_START_DATE", "2025-01-01")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Every test gets its own drop folder, storage root and DAGSTER_HOME."""
    monkeypatch.setenv("STYLE_PIPELINE_DROP", str(tmp_path / "drop"))
    monkeypatch.setenv("STYLE_PIPELINE_STORAGE", str(tmp_path / "storage"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    # data/characters/ may hold a user's (or the demo's) reference photos: none in tests
    monkeypatch.setenv("STYLE_PIPELINE_CHARACTERS__REFERENCES_DIR", str(tmp_path / "characters"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    (tmp_path / "drop").mkdir()
    (tmp_path / "dagster_home").mkdir()


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models run faster on one thread than on two contended ones (CI has 2 cores)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


TINY_ENV = {
    "CURATION__CLIP__PROFILE": "tiny",
    "CURATION__MIN_CURATED_PER_DAY": "1",
    "CAPTIONING__FINETUNE__STEPS": "2",
    "CAPTIONING__FINETUNE__BATCH_SIZE": "2",
    "CAPTIONING__CAPTION__BLIP__MODEL__PROFILE": "tiny",
    "TRAINING__PRESET": "tiny",
    "TRAINING__EVALUATION__NUM_INFERENCE_STEPS": "2",
    "TRAINING__EVALUATION__SEEDS": "[0]",
    "TRAINING__ALLOW_TINY_PROMOTION": "true",  # tiny weights are all the tests have
    # lora_weights_reproducible re-trains every LoRA a test trains; its own test turns it on
    "TRAINING__REPRO_CHECK__MODE": "never",
    # the speech and LLM side: tiny Whisper, sentence encoder and causal LM
    "SPEECH__TRANSCRIPTION__MODEL__PROFILE": "tiny",
    "ALIGNMENT__ENCODER__PROFILE": "tiny",
    "LLM__PROFILE": "tiny",
    "LLM__ALLOW_TINY_PROMOTION": "true",
}
CACHE_KEYS = (
    "CURATION__CLIP__CACHE_DIR",
    "CAPTIONING__CAPTION__BLIP__MODEL__CACHE_DIR",
    "TRAINING__MODEL_CACHE_DIR",
    "SPEECH__TRANSCRIPTION__MODEL__CACHE_DIR",
    "ALIGNMENT__ENCODER__CACHE_DIR",
    "LLM__MODEL_CACHE_DIR",
)


@pytest.fixture
def tiny_models(monkeypatch, tmp_path):
    """Every model on its tiny profile with a per-test cache, and 2-step fine-tunes."""
    for key, value in TINY_ENV.items():
        monkeypatch.setenv(f"STYLE_PIPELINE_{key}", value)
    for key in CACHE_KEYS:
        monkeypatch.setenv(f"STYLE_PIPELINE_{key}", str(tmp_path / "models"))


def materialize_day(day: str, select: str, **kwargs):
    """Materialize ``select`` of the whole code location for one date (tests' helper)."""
    from style_pipeline.defs.run import load_defs

    defs = load_defs()
    return dg.materialize(
        [*defs.assets],
        partition_key=day,
        resources=defs.resources,
        selection=dg.AssetSelection.from_string(select),
        **kwargs,
    )


@pytest.fixture
def settings():
    return load_settings()


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server():
    """A moto S3 server on 127.0.0.1 (loopback only) for the whole session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_root(moto_server, monkeypatch):
    """A fresh bucket on the moto server; returns ``s3://bucket/prefix`` with env pointing at it."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    bucket = f"sp-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    import fsspec

    fsspec.filesystem("s3").clear_instance_cache()
    return f"s3://{bucket}/pipeline"
