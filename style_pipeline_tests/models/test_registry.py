"""``models list|pull`` and ``models.allow_download`` against a fake Hub on 127.0.0.1.

The fake Hub serves tiny models built with the tiny profile; ``HF_ENDPOINT`` points at it
and offline mode is lifted only inside these tests (the real internet is never reached).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from style_pipeline.contracts.models import BlipModelConfig, ModelConfig, TinyBlipArch
from style_pipeline.models import profiles
from style_pipeline.models.blip import build_tiny_blip, load_blip, tiny_vocabulary
from style_pipeline.models.registry import (
    PullError,
    blip_entry,
    clip_entry,
    diffusion_entry,
    pull,
    select_files,
    status,
)
from style_pipeline_tests.models.fake_hub import FakeHub

REPO = "acme/tiny-blip"


@pytest.fixture(scope="module")
def tiny_blip_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("blip") / "tiny-blip"
    return build_tiny_blip(out, TinyBlipArch(), tiny_vocabulary(["a", "cat"]))


@pytest.fixture
def hub(tiny_blip_dir, monkeypatch):
    server = FakeHub()
    # a .bin copy beside the safetensors: the pull must skip it
    server.add_folder(REPO, tiny_blip_dir, {"pytorch_model.bin": b"not needed" * 100})
    server.serve_online(monkeypatch)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _policy():
    profiles.set_download_policy(None)
    yield
    profiles.set_download_policy(None)


def _blip(tmp_path, profile="pretrained") -> BlipModelConfig:
    return BlipModelConfig(
        profile=profile, pretrained=REPO, hf_cache_dir=str(tmp_path / "hub"),
        cache_dir=str(tmp_path / "models"), device="cpu",
    )  # fmt: skip


def _go_offline(monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_select_files_prefers_safetensors_and_skips_variants():
    files = [
        "model_index.json", "v1-5-pruned.safetensors", "v1-5-pruned.ckpt",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.non_ema.safetensors", "tokenizer/vocab.json",
        "text_encoder/pytorch_model.bin", ".gitattributes", "README.md",
    ]  # fmt: skip
    assert select_files(files, "diffusers") == [
        "model_index.json", "text_encoder/pytorch_model.bin", "tokenizer/vocab.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
    ]  # fmt: skip


def test_pull_then_the_resolver_loads_it_offline_as_pretrained(hub, tmp_path, monkeypatch):
    config = _blip(tmp_path)
    lines: list[str] = []
    pulled = pull(blip_entry(config), say=lines.append)
    assert pulled.cached and pulled.size_bytes > 0
    folder = Path(pulled.path or "")
    assert (folder / "model.safetensors").is_file()
    assert not (folder / "pytorch_model.bin").exists()
    assert "pulling" in lines[0] and "KB" in lines[0]
    _go_offline(monkeypatch)
    loaded = load_blip(config)
    assert loaded.profile_used == "pretrained"
    assert loaded.fallback_reason is None


def test_pulling_again_is_a_no_op(hub, tmp_path):
    entry = blip_entry(_blip(tmp_path))
    pull(entry)
    seen = len(hub.requests)
    lines: list[str] = []
    again = pull(entry, say=lines.append)
    assert again.cached
    assert len(hub.requests) == seen
    assert "already cached" in lines[0]


def test_a_dropped_connection_is_retried_within_the_pull(hub, tmp_path):
    hub.cut_once.add("model.safetensors")
    entry = blip_entry(_blip(tmp_path))
    assert pull(entry).cached
    assert hub.downloads().count(f"/{REPO}/resolve/{hub.sha(REPO)}/model.safetensors") == 2


def test_a_failed_pull_keeps_finished_files_and_the_next_fetches_only_the_rest(hub, tmp_path):
    """huggingface_hub resumes per file across runs (a file cut mid-way restarts)."""
    hub.failing.add("model.safetensors")
    entry = blip_entry(_blip(tmp_path))
    with pytest.raises(PullError, match="refused acme/tiny-blip"):
        pull(entry)
    assert not status(entry).cached
    first = len(hub.downloads())
    hub.failing.clear()
    assert pull(entry).cached
    assert [p.rsplit("/", 1)[1] for p in hub.downloads()[first:]] == ["model.safetensors"]


def test_an_unreachable_endpoint_says_so(hub, tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(PullError, match="cannot reach .* no internet") as info:
        pull(blip_entry(_blip(tmp_path)))
    assert "style-pipeline models pull blip" in str(info.value)


def test_offline_mode_refuses_to_pull(tmp_path):
    with pytest.raises(PullError, match="offline mode is on"):
        pull(blip_entry(_blip(tmp_path)))


def test_unknown_repository_is_named(hub, tmp_path):
    config = _blip(tmp_path).model_copy(update={"pretrained": "acme/nope"})
    with pytest.raises(PullError, match="acme/nope was not found"):
        pull(blip_entry(config))


def test_auto_fallback_names_the_pull_command(tmp_path):
    with pytest.warns(RuntimeWarning, match="FELL BACK"):
        loaded = load_blip(_blip(tmp_path, "auto"))
    assert loaded.profile_used == "tiny"
    assert (loaded.fallback_reason or "").endswith(
        "run `style-pipeline models pull blip` to fetch it"
    )


def test_auto_downloads_when_allowed(hub, tmp_path):
    profiles.set_download_policy(True)
    loaded = load_blip(_blip(tmp_path, "auto"))
    assert loaded.profile_used == "pretrained"
    assert hub.downloads()


def test_allowed_downloads_still_respect_offline_mode(hub, tmp_path, monkeypatch):
    profiles.set_download_policy(True)
    _go_offline(monkeypatch)
    with pytest.warns(RuntimeWarning, match="HF_HUB_OFFLINE is set"):
        loaded = load_blip(_blip(tmp_path, "auto"))
    assert loaded.profile_used == "tiny"
    assert not hub.downloads()


def test_clip_tag_pulls_open_clips_safetensors_file(hub, tmp_path):
    from style_pipeline.models.clip_files import find_cached_checkpoint

    repo = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
    hub.repos[repo] = {
        "open_clip_model.safetensors": b"s" * 64, "open_clip_pytorch_model.bin": b"b" * 64,
        "open_clip_config.json": b"{}",
    }  # fmt: skip
    config = ModelConfig(cache_dir=str(tmp_path / "models"), hf_cache_dir=str(tmp_path / "hub"))
    found = pull(clip_entry(config))
    assert found.cached and found.size_bytes == 64
    checkpoint, _ = find_cached_checkpoint(
        "ViT-B-32", "laion2b_s34b_b79k", tmp_path / "models", str(tmp_path / "hub")
    )
    assert checkpoint.name == "open_clip_model.safetensors"
    assert [p for p in hub.downloads() if p.endswith(".bin")] == []


def test_diffusion_pull_is_found_by_resolve_diffusion(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from style_pipeline.models.diffusion import resolve_diffusion, save_tiny_pipeline

    pipeline = save_tiny_pipeline(tmp_path / "tiny")
    hub.add_folder("acme/tiny-sd", pipeline, {"tiny-sd.safetensors": b"x" * 10})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "default-hub"))
    pulled = pull(diffusion_entry("acme/tiny-sd"))
    assert pulled.cached
    assert not (Path(pulled.path or "") / "tiny-sd.safetensors").exists()
    _go_offline(monkeypatch)
    resolved = resolve_diffusion("pretrained", "acme/tiny-sd")
    assert resolved.profile == "pretrained" and resolved.path == pulled.path


def _models_in(tmp_path, monkeypatch) -> None:
    """The CLI's settings: BLIP from the fake hub's repo, every cache under ``tmp_path``."""
    for key, value in {
        "CAPTIONING__CAPTION__BLIP__MODEL__PRETRAINED": REPO,
        "CAPTIONING__CAPTION__BLIP__MODEL__HF_CACHE_DIR": str(tmp_path / "hub"),
        "CURATION__CLIP__HF_CACHE_DIR": str(tmp_path / "hub"),
        "CURATION__CLIP__CACHE_DIR": str(tmp_path / "models"),
        "TRAINING__PRESET": "tiny",
        "CAPTIONING__CAPTION__CHECK__USE_ITM": "off",
        # the speech and LLM side's models, served by the fake hub in the --all test
        "SPEECH__TRANSCRIPTION__MODEL__PRETRAINED": "fake/whisper",
        "SPEECH__TRANSCRIPTION__MODEL__HF_CACHE_DIR": str(tmp_path / "hub"),
        "ALIGNMENT__ENCODER__PRETRAINED": "fake/sentence-encoder",
        "ALIGNMENT__ENCODER__HF_CACHE_DIR": str(tmp_path / "hub"),
        "LLM__PRETRAINED": "fake/causal-lm",
        "LLM__HF_CACHE_DIR": str(tmp_path / "hub"),
    }.items():
        monkeypatch.setenv(f"STYLE_PIPELINE_{key}", value)


def test_cli_list_and_pull(hub, tmp_path, monkeypatch):
    from style_pipeline.cli import app

    _models_in(tmp_path, monkeypatch)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "default-hub"))
    runner = CliRunner()
    before = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert before.exit_code == 0, before.output
    assert "blip" in before.output and "yes" not in before.output
    pulled = runner.invoke(app, ["models", "pull", "blip"], env={"COLUMNS": "200"})
    assert pulled.exit_code == 0, pulled.output
    assert "ready at" in pulled.output
    after = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert "yes" in after.output
    assert status(blip_entry(_blip(tmp_path))).cached
    failed = runner.invoke(app, ["models", "pull", "clip"], env={"COLUMNS": "200"})
    assert failed.exit_code == 1
    assert "was not found" in failed.output and "Traceback" not in failed.output
    bad = runner.invoke(app, ["models", "pull"])
    assert bad.exit_code != 0


def test_cli_pull_all_fetches_every_model_then_lists_them_cached(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from style_pipeline.cli import app
    from style_pipeline.contracts.models import DEFAULT_PRETRAINED
    from style_pipeline.models.diffusion import save_tiny_pipeline

    hub.add_folder(DEFAULT_PRETRAINED, save_tiny_pipeline(tmp_path / "tiny"))
    hub.repos["laion/CLIP-ViT-B-32-laion2B-s34B-b79K"] = {"open_clip_model.safetensors": b"w" * 8}
    for repo in ("fake/whisper", "fake/sentence-encoder", "fake/causal-lm"):
        hub.repos[repo] = {"config.json": b"{}", "model.safetensors": b"w" * 8}
    _models_in(tmp_path, monkeypatch)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "default-hub"))
    runner = CliRunner()
    pulled = runner.invoke(app, ["models", "pull", "--all"], env={"COLUMNS": "200"})
    assert pulled.exit_code == 0, pulled.output
    assert pulled.output.count("ready at") == 6
    listed = runner.invoke(app, ["models", "list"], env={"COLUMNS": "250"})
    rows = [line for line in listed.output.splitlines() if line.startswith("│ ") and "/" in line]
    names = [row.split("│")[1].strip() for row in rows if row.split("│")[1].strip()]
    assert names == ["clip", "blip", "diffusion", "whisper", "sentence-encoder", "causal-lm"], (
        listed.output
    )
    assert all(" yes " in row for row in rows if row.split("│")[1].strip()), listed.output


def test_cli_lists_the_caption_checks_itm_model_unless_itm_is_off(hub, tmp_path, monkeypatch):
    from style_pipeline.cli import app

    _models_in(tmp_path, monkeypatch)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "default-hub"))
    runner = CliRunner()
    without = runner.invoke(app, ["models", "list"], env={"COLUMNS": "250"})
    assert without.exit_code == 0 and "blip-itm" not in without.output, without.output
    monkeypatch.setenv("STYLE_PIPELINE_CAPTIONING__CAPTION__CHECK__USE_ITM", "auto")
    listed = runner.invoke(app, ["models", "list"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    assert "blip-itm" in listed.output and "Salesforce/blip-itm-base-coco" in listed.output
