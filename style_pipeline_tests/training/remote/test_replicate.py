"""The Replicate backend against a fake Replicate API on 127.0.0.1 (real HTTP): inputs,
upload, progress, failure mid-run, cancel, 429/5xx bursts, malformed JSON, slow uploads,
tokens kept out of errors, and weights with kohya or cog-sdxl keys loading into the tiny
SDXL pipeline."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save

from style_pipeline.contracts.remote_training import RemoteCallSettings, ReplicateSettings
from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.training.remote.base import RemoteTrainingError
from style_pipeline.training.remote.http import (
    RemoteBadAnswer,
    RemoteHttp,
    RemoteRefused,
    RemoteUnavailable,
    reset_breakers,
)
from style_pipeline.training.remote.lora_files import (
    lora_from_payload,
    to_diffusers_keys,
    verify_loads,
    write_diffusers_lora,
)
from style_pipeline.training.remote.replicate import ReplicateBackend, parse_progress
from style_pipeline.training.remote.replicate_inputs import (
    build_dataset_zip,
    trainer_input,
)
from style_pipeline_tests.training.remote.replicate_fake import (
    TOKEN,
    FakeReplicate,
    ReplicateServer,
    lora_tensors,
    weights_payload,
)

XL = LoraTrainingConfig(model_family="sdxl", resolution=64, rank=4, max_train_steps=6)
FAST = RemoteCallSettings(timeout_s=5, max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.05)


@pytest.fixture(autouse=True)
def _fresh_breakers():
    reset_breakers()
    yield
    reset_breakers()


def backend(server, call=FAST, sleeps=None, **kwargs) -> ReplicateBackend:
    settings = ReplicateSettings(
        api_url=server.api_url, destination="tester/style", price_per_second_usd=0.001
    )
    http = RemoteHttp(
        settings.api_url, call, "replicate", TOKEN, token_env=settings.token_env,
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
    )  # fmt: skip
    return ReplicateBackend(settings, call, http=http, **kwargs)


def run_to_end(b: ReplicateBackend, remote_id: str, polls: int = 20):
    for _ in range(polls):
        status = b.status(remote_id)
        if status.status in ("completed", "failed", "cancelled"):
            return status
    raise AssertionError("the fake training never ended")


# -- inputs and the dataset zip ---------------------------------------------------------------


def test_input_mapping_for_sdxl():
    config = XL.model_copy(update={"lr_scheduler": "cosine", "learning_rate": 2e-4, "seed": 7})
    inputs, notes = trainer_input("stability-ai/sdxl", config, "https://f/1", 4, {"verbose": 0})
    assert inputs["input_images"] == "https://f/1"
    assert inputs["lora_rank"] == 4 and inputs["resolution"] == 64 and inputs["seed"] == 7
    assert inputs["lora_lr"] == inputs["unet_learning_rate"] == 2e-4
    assert inputs["max_train_steps"] == 6 and inputs["is_lora"] is True
    assert inputs["lr_scheduler"] == "linear" and inputs["verbose"] == 0  # extra_input wins
    assert inputs["crop_based_on_salience"] is False  # center_crop
    assert any("cosine sent as linear" in n for n in notes)
    assert any("extra_input overrides verbose" in n for n in notes)
    assert any(n.startswith("use_buckets=True not an input") for n in notes)
    assert not any(n.startswith(("alpha", "target_modules", "random_flip")) for n in notes)


def test_steps_from_epochs_when_no_max_steps():
    config = XL.model_copy(update={"max_train_steps": None, "num_train_epochs": 3})
    inputs, _ = trainer_input(
        "stability-ai/sdxl", config.model_copy(update={"train_batch_size": 2}), "u", 5, {}
    )
    assert inputs["max_train_steps"] == 3 * 3  # 3 epochs x ceil(5 / 2)


@pytest.mark.parametrize(
    ("trainer", "config", "message"),
    [
        ("stability-ai/sdxl", LoraTrainingConfig(), "trains SDXL"),
        ("someone/other-trainer", XL, "no input mapping"),
    ],
)
def test_refused_before_any_upload(trainer, config, message):
    with pytest.raises(RemoteTrainingError, match=message):
        trainer_input(trainer, config, "u", 1, {})


def test_dataset_zip_flattens_repeats_converts_webp_and_carries_captions(tmp_path):
    (tmp_path / "1_style").mkdir()
    (tmp_path / "3_ada").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "1_style" / "a.jpg")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "3_ada" / "b.webp")
    rows = [
        {"file_name": "1_style/a.jpg", "text": "sks style, a red square"},
        {"file_name": "3_ada/b.webp", "text": "ada, blue, with a comma", "repeats": 3},
    ]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    built = build_dataset_zip(tmp_path)
    assert built.images == 4 and build_dataset_zip(tmp_path).sha256 == built.sha256
    with zipfile.ZipFile(io.BytesIO(built.data)) as zf:
        names = sorted(zf.namelist())
        table = list(csv.DictReader(io.StringIO(zf.read("captions.csv").decode())))
        assert Image.open(io.BytesIO(zf.read("3_ada__b__r2.png"))).format == "PNG"
    assert names == [
        "1_style__a.jpg", "3_ada__b.png", "3_ada__b__r1.png", "3_ada__b__r2.png", "captions.csv"
    ]  # fmt: skip
    assert [r["image_file"] for r in table] == names[:-1]  # cog-sdxl pairs them sorted
    assert table[1]["caption"] == "ada, blue, with a comma"


@pytest.mark.parametrize(
    ("logs", "expected"),
    [
        ("", (0, None, None, None)),
        ("booting\n 12%|#  | 120/1000 [00:30<03:40,  4.00it/s]", (120, 1000, 220.0, None)),
        (" 1/10 [00:01<?, ?it/s]\r 2/10 [00:02<1:00:08, 1it/s]\rloss: 0.25", (2, 10, 3608.0, 0.25)),
        ("step 40/100 loss=1.5e-01\n", (40, 100, None, 0.15)),
    ],
)
def test_parse_progress(logs, expected):
    assert parse_progress(logs) == expected


# -- weights ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("style", "archive"), [("kohya", False), ("cog", True)])
def test_weights_become_diffusers_and_load(tmp_path, tiny_sdxl_model, style, archive):
    tensors = lora_tensors(Path(tiny_sdxl_model.path), style)
    payload = weights_payload(tensors, archive)
    path = write_diffusers_lora(payload, tmp_path / "w.safetensors", "test")
    with safe_open(str(path), framework="pt") as fh:
        keys = list(fh.keys())
    assert all(k.startswith("unet.") and (".lora.down." in k or ".lora.up." in k) for k in keys)
    assert len(keys) == len([k for k in tensors if not k.endswith(".alpha")])
    assert verify_loads(path, Path(tiny_sdxl_model.path)) == len(keys) // 2


def test_kohya_alpha_folded_into_up_weights_matches_diffusers_own_loader(tiny_sdxl_model):
    """The converted file changes the UNet exactly as diffusers' kohya loader does."""
    from style_pipeline.models.diffusion import load_pipeline

    tensors = lora_tensors(Path(tiny_sdxl_model.path), "kohya")
    fused = []
    for state in (dict(tensors), to_diffusers_keys(dict(tensors))):
        pipe = load_pipeline(tiny_sdxl_model.path)
        pipe.load_lora_weights(state)
        pipe.fuse_lora()
        state = pipe.unet.state_dict()  # the LoRA tensors differ: alpha vs folded in lora_B
        fused.append({k: v.clone() for k, v in state.items() if ".lora_" not in k})
    assert fused[0].keys() == fused[1].keys()
    assert sum(k.endswith(".base_layer.weight") for k in fused[0]) == 96
    for key in fused[0]:
        torch.testing.assert_close(fused[0][key], fused[1][key])


def test_unreadable_payloads_are_clear_errors():
    with pytest.raises(RemoteTrainingError, match="neither a tar, a zip nor a safetensors"):
        lora_from_payload(b"<html>expired</html>", "x")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("a.safetensors", save({"a": torch.zeros(1)}))
        zf.writestr("b.safetensors", save({"b": torch.zeros(1)}))
    with pytest.raises(RemoteTrainingError, match="expected one .safetensors"):
        lora_from_payload(buffer.getvalue(), "x")


# -- the backend against the fake -------------------------------------------------------------


def test_full_lifecycle_trains_downloads_and_verifies(tmp_path, tiny_dataset, tiny_sdxl_model):
    fake = FakeReplicate(weights=weights_payload(lora_tensors(Path(tiny_sdxl_model.path)), True))
    with ReplicateServer(fake) as server:
        b = backend(server, verify_pipeline=Path(tiny_sdxl_model.path))
        assert b.available().ok and b.available().vram_gb == 80.0
        messages: list[str] = []
        remote_id = b.submit(tiny_dataset, XL, "replicate-abc", messages.append)
        training = fake.trainings[remote_id]
        assert training["input"]["max_train_steps"] == 6 and training["input"]["lora_rank"] == 4
        with zipfile.ZipFile(io.BytesIO(next(iter(fake.files.values())))) as zf:
            assert "captions.csv" in zf.namelist() and len(zf.namelist()) == 5
        assert b.status(remote_id).status == "running"  # starting -> processing
        midway = b.status(remote_id)
        assert (midway.step, midway.total_steps, midway.loss) == (2, 6, 0.5)
        assert midway.eta_s == 6.0 and midway.cost_usd is not None
        final = run_to_end(b, remote_id)
        assert final.status == "completed" and final.seconds == 9.0
        assert final.cost_usd == pytest.approx(9.0 * 0.001)
        assert any("uploading" in m for m in messages) and any(
            "-> tester/style" in m for m in messages
        )
        weights = b.download(remote_id, tmp_path / "out")
        assert weights.name == "pytorch_lora_weights.safetensors"
        assert len(load_file(str(weights))) == 96 * 2  # the tiny SDXL's 96 layers x (down, up)
        assert fake.cdn_authorization == [None]  # the token stays on the API host
        assert any(line.startswith("# PTI") for line in b.logs(remote_id))


def test_latest_version_is_used_when_none_configured(tiny_dataset):
    with ReplicateServer() as server:
        b = backend(server)
        b.submit(tiny_dataset, XL, "j", None)
        assert ("GET", "/v1/models/stability-ai/sdxl") in server.fake.requests


def test_failure_mid_run_reports_the_error_without_the_token(tiny_dataset):
    with ReplicateServer(FakeReplicate(fail_at_step=4)) as server:
        b = backend(server)
        remote_id = b.submit(tiny_dataset, XL, "j", None)
        final = run_to_end(b, remote_id)
        assert final.status == "failed" and "CUDA out of memory" in (final.error or "")
        assert TOKEN not in (final.error or "")
        with pytest.raises(RemoteTrainingError, match="failed, not succeeded"):
            b.download(remote_id, Path("/nonexistent"))


def test_cancel_then_cancel_again_is_quiet(tiny_dataset):
    with ReplicateServer() as server:
        b = backend(server)
        remote_id = b.submit(tiny_dataset, XL, "j", None)
        b.status(remote_id)
        b.cancel(remote_id)
        assert b.status(remote_id).status == "cancelled"
        b.cancel(remote_id)  # 409 from the service: already over, nothing to stop


def test_429_and_5xx_bursts_are_retried_with_retry_after(tiny_dataset):
    fake = FakeReplicate()
    fake.faults += [
        ("/v1/files", 503, "busy", {}),
        ("/v1/trainings", 429, "{}", {"Retry-After": "0.04"}),
    ]
    fake.faults += [("/v1/trainings", 502, "bad gateway", {})]
    sleeps: list[float] = []
    with ReplicateServer(fake) as server:
        b = backend(server, sleeps=sleeps)
        remote_id = b.submit(tiny_dataset, XL, "j", None)
        assert b.status(remote_id).status == "running"
    assert len(sleeps) == 3 and 0.04 in sleeps


def test_malformed_json_names_the_route(tiny_dataset):
    fake = FakeReplicate(faults=[("/v1/trainings", 200, "{not json", {})])
    with ReplicateServer(fake) as server:
        b = backend(server)
        remote_id = b.submit(tiny_dataset, XL, "j", None)
        with pytest.raises(
            RemoteBadAnswer, match=f"replicate GET /trainings/{remote_id}: answer is not JSON"
        ):
            b.status(remote_id)


def test_slow_upload_times_out_then_gives_up(tiny_dataset):
    call = FAST.model_copy(update={"timeout_s": 0.2, "max_attempts": 2})
    with ReplicateServer(FakeReplicate(slow_upload_s=0.6)) as server:
        b = backend(server, call=call)
        with pytest.raises(
            RemoteUnavailable, match="replicate POST /files: gave up after 2 attempts"
        ):
            b.submit(tiny_dataset, XL, "j", None)
        assert not server.fake.trainings


def test_wrong_token_is_refused_and_never_echoed(tiny_dataset, monkeypatch):
    wrong = "r8_wrong0123456789abcdefXYZ"
    monkeypatch.setenv("REPLICATE_API_TOKEN", wrong)
    with ReplicateServer() as server:
        settings = ReplicateSettings(api_url=server.api_url, destination="tester/style")
        b = ReplicateBackend(settings, FAST)
        availability = b.available()
        assert not availability.ok and "401" in availability.detail
        with pytest.raises(RemoteRefused) as refused:
            b.submit(tiny_dataset, XL, "j", None)
        assert wrong not in str(refused.value) and refused.value.status == 401


def test_missing_token_or_destination_are_clear(tiny_dataset, monkeypatch):
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    b = ReplicateBackend(ReplicateSettings(destination="a/b"), FAST)
    assert not b.available().ok
    with pytest.raises(RemoteTrainingError, match="REPLICATE_API_TOKEN"):
        b.submit(tiny_dataset, XL, "j", None)
    with pytest.raises(RemoteTrainingError, match="destination"):
        ReplicateBackend(ReplicateSettings(), FAST).submit(tiny_dataset, XL, "j", None)
