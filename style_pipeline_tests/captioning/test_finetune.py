"""Caption-model LoRA fine-tune: 2 steps on tiny BLIP, saved, versioned, deterministic."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image
from safetensors.torch import load_file

from style_pipeline.captioning.captioners import BlipCaptioner
from style_pipeline.captioning.factory import make_captioner
from style_pipeline.captioning.finetune import (
    ADAPTER_WEIGHTS,
    adapter_local_dir,
    data_fingerprint,
    finetune_caption_model,
    latest_caption_model,
    load_seed_pairs,
)
from style_pipeline.contracts.captioning import CaptionConfig, CaptionFinetuneConfig
from style_pipeline.storage.store import Store
from style_pipeline_tests.captioning.conftest import WORDS

CONFIG = CaptionFinetuneConfig(steps=2, batch_size=2, lr=1e-3, rank=4, alpha=8, seed=7)
CAPTIONS = ["a woman in the street", "a tree at golden hour", "a woman by a tree"]


@pytest.fixture
def seed_dir(tmp_path):
    folder = tmp_path / "seed_captions"
    folder.mkdir()
    for i, caption in enumerate(CAPTIONS):
        Image.new("RGB", (64, 64), (40 * i, 200 - 50 * i, 90)).save(folder / f"seed_{i}.png")
        (folder / f"seed_{i}.txt").write_text(caption + "\n")
    Image.new("RGB", (64, 64)).save(folder / "no_caption.png")  # ignored: no .txt
    return folder


def test_load_seed_pairs(seed_dir, tmp_path):
    pairs = load_seed_pairs(seed_dir)
    assert [p.image.name for p in pairs] == ["seed_0.png", "seed_1.png", "seed_2.png"]
    assert [p.caption for p in pairs] == CAPTIONS
    with pytest.raises(ValueError, match="no image"):
        load_seed_pairs(tmp_path / "drop")
    (seed_dir / "seed_0.txt").write_text("  \n")
    with pytest.raises(ValueError, match="empty seed caption"):
        load_seed_pairs(seed_dir)


def test_finetune_saves_a_lora_adapter_that_reloads(seed_dir, tmp_path, tiny_blip, images):
    store = Store(tmp_path / "storage")
    assert latest_caption_model(store) is None
    logs: list[str] = []
    result = finetune_caption_model(
        store, load_seed_pairs(seed_dir), tiny_blip, CONFIG, version="v0001", log=logs.append
    )
    assert result.key == "caption_model/v0001" == latest_caption_model(store)
    meta = json.loads(store.read_bytes("caption_model/v0001/metadata.json"))
    assert meta["steps"] == 2 and len(meta["losses"]) == 2 and len(logs) == 2
    assert math.isfinite(meta["final_loss"]) and meta["final_loss"] > 0
    assert meta["base_model"] == tiny_blip.model_id
    assert meta["data_hash"] == data_fingerprint(load_seed_pairs(seed_dir))
    assert meta["config"]["rank"] == 4 and meta["prompt"] == "a photo in the style of sps_style, "
    weights = load_file(str(tmp_path / "storage/caption_model/v0001" / ADAPTER_WEIGHTS))
    assert weights and all("lora_A" in k or "lora_B" in k for k in weights)
    assert any(".query." in k for k in weights) and any(".value." in k for k in weights)
    assert not any(k for k in tiny_blip.model.state_dict() if "lora" in k)  # base unloaded
    with adapter_local_dir(store, result.key) as adapter:
        captioner = BlipCaptioner(tiny_blip, adapter_dir=adapter, max_new_tokens=4, num_beams=1)
    assert captioner.model_id.endswith("+lora:v0001")
    assert len(captioner.caption(images, meta["prompt"])) == 2
    with pytest.raises(FileExistsError):
        finetune_caption_model(store, load_seed_pairs(seed_dir), tiny_blip, CONFIG, version="v0001")


def test_same_seed_gives_the_same_adapter_bytes(seed_dir, tmp_path, tiny_blip_config):
    from style_pipeline.models.blip import load_blip

    pairs = load_seed_pairs(seed_dir)
    digests = []
    for root in (tmp_path / "a", f"memory://{tmp_path.name}/b"):
        store = Store(root)
        result = finetune_caption_model(store, pairs, load_blip(tiny_blip_config, WORDS), CONFIG)
        digests.append((store.read_bytes(f"{result.key}/{ADAPTER_WEIGHTS}"), result.metadata))
    (bytes_a, meta_a), (bytes_b, meta_b) = digests
    assert bytes_a == bytes_b
    memory = Store(f"memory://{tmp_path.name}/b")
    with adapter_local_dir(memory, latest_caption_model(memory)) as adapter:
        assert (adapter / ADAPTER_WEIGHTS).read_bytes() == bytes_a
        assert (adapter / "adapter_config.json").is_file()
    assert meta_a["losses"] == meta_b["losses"]
    import torch

    threads = torch.get_num_threads()
    other = CONFIG.model_copy(update={"seed": 8, "num_threads": threads + 1})
    result = finetune_caption_model(
        Store(tmp_path / "c"), pairs, load_blip(tiny_blip_config, WORDS), other
    )
    assert result.metadata["adapter_sha256"] != meta_a["adapter_sha256"]
    assert torch.get_num_threads() == threads  # restored after training


def test_factory_uses_the_newest_matching_caption_model(seed_dir, tmp_path, tiny_blip_config):
    from style_pipeline.models.blip import load_blip

    store = Store(tmp_path / "storage")
    pairs = load_seed_pairs(seed_dir)
    for version in ("20250101T000000Z-a", "20250102T000000Z-b"):
        finetune_caption_model(
            store, pairs, load_blip(tiny_blip_config, WORDS), CONFIG, version=version
        )
    store.put_bytes(b"{}", "caption_model/20991231T000000Z-incomplete/adapter_config.json")
    assert latest_caption_model(store) == "caption_model/20250102T000000Z-b"
    config = CaptionConfig(backend="blip", blip={"model": tiny_blip_config, "max_new_tokens": 4})
    selected = make_captioner(config, categories={}, store=store, words=WORDS)
    assert "fine-tuned adapter caption_model/20250102T000000Z-b" in selected.reason
    assert selected.captioner.model_id.endswith("+lora:20250102T000000Z-b")


def test_finetune_logs_first_every_nth_and_last_step(seed_dir, tmp_path, tiny_blip):
    """The same steps as the LoRA trainer for the same N (training/test_progress_log.py)."""
    from style_pipeline_tests.training.test_progress_log import LOGGED_N2_OF_5, logged_steps

    logs: list[str] = []
    finetune_caption_model(
        Store(tmp_path / "storage"), load_seed_pairs(seed_dir), tiny_blip,
        CONFIG.model_copy(update={"steps": 5}), version="v0001", log=logs.append,
        log_every_n_steps=2,
    )  # fmt: skip
    assert logged_steps(logs) == LOGGED_N2_OF_5
