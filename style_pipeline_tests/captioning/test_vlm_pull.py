"""``models pull`` of a VLM captioner against a fake Hub on 127.0.0.1, then an offline load.

The fake Hub serves a tiny Qwen2-VL (its chat template is a ``chat_template.jinja`` file,
which the pull must fetch with the configs); after the pull the resolver loads it offline
as ``pretrained`` and reads its family from ``config.json``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from style_pipeline.captioning.vlm import VlmCaptioner
from style_pipeline.contracts.captioning_vlm import VlmCaptionConfig
from style_pipeline.models import profiles
from style_pipeline.models.registry import pull, vlm_entry
from style_pipeline.models.vlm import load_vlm
from style_pipeline_tests.models.fake_hub import FakeHub

REPO = "acme/tiny-qwen2-vl"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    tiny = VlmCaptionConfig(profile="tiny", family="qwen2_vl", cache_dir=str(tmp_path / "m"))
    server = FakeHub()
    server.add_folder(REPO, Path(load_vlm(tiny, ["woman"]).source))
    server.serve_online(monkeypatch)
    profiles.set_download_policy(None)
    yield server
    server.stop()
    profiles.set_download_policy(None)


def test_pulled_vlm_loads_offline_as_pretrained(hub, tmp_path, monkeypatch, images):
    from huggingface_hub import constants

    config = VlmCaptionConfig(
        profile="pretrained", pretrained=REPO, hf_cache_dir=str(tmp_path / "hub"), device="cpu"
    )
    assert vlm_entry(config).name == "vlm"
    pulled = pull(vlm_entry(config))
    assert pulled.cached and (Path(pulled.path or "") / "chat_template.jinja").is_file()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loaded = load_vlm(config)
    assert (loaded.family, loaded.profile_used, loaded.model_id) == ("qwen2_vl", "pretrained", REPO)
    results = VlmCaptioner(loaded, max_new_tokens=3, num_beams=1).caption(images, "Describe.")
    assert len(results) == 2
