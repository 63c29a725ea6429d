"""Local VLM captioners on tiny random-init Florence-2, Qwen2-VL and BLIP-2 models.

Each family is built once per module (offline: config, byte-level BPE tokenizer trained
on a few words, processor) and loaded back through ``from_pretrained`` like real weights.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from style_pipeline.captioning.captioners import Captioner
from style_pipeline.captioning.vlm import VlmCaptioner, chat_messages, downscaled, florence_task
from style_pipeline.contracts.captioning_vlm import FLORENCE2_BASE_ID, VlmCaptionConfig
from style_pipeline.models.profiles import PretrainedUnavailable
from style_pipeline.models.registry import registry, status, vlm_catalog, vlm_entry
from style_pipeline.models.vlm import family_of, guess_family, load_vlm

WORDS = ["woman", "street", "golden hour", "tree", "watercolor"]
FAMILIES = ("florence2", "qwen2_vl", "blip2")
PROMPTS = {
    "florence2": ["<CAPTION>", "<MORE_DETAILED_CAPTION>", "<CAPTION>"],
    "qwen2_vl": ["Describe the woman.", "List the tags.", "One short sentence."],
    "blip2": ["", "a photo of", "a watercolor of a"],
}


@pytest.fixture(scope="module")
def vlm_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("vlm_cache"))


def _config(cache: str, family: str, **kw) -> VlmCaptionConfig:
    return VlmCaptionConfig(profile="tiny", family=family, cache_dir=cache, device="cpu", **kw)  # type: ignore[arg-type]


@pytest.fixture
def three_images() -> list[Image.Image]:
    colours = [(220, 60, 30), (20, 90, 200), (240, 240, 240)]
    return [Image.new("RGB", (64 + 16 * i, 48), c) for i, c in enumerate(colours)]


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_vlm_captions_each_image_in_order(family, vlm_cache, three_images):
    loaded = load_vlm(_config(vlm_cache, family), WORDS)
    assert loaded.family == family and loaded.profile_used == "tiny"
    assert sum(p.numel() for p in loaded.model.parameters()) < 500_000
    captioner = VlmCaptioner(loaded, batch_size=2, max_new_tokens=6, num_beams=2)
    assert isinstance(captioner, Captioner)
    prompts = PROMPTS[family]
    results = captioner.caption(three_images, prompts)
    assert [r.prompt for r in results] == prompts  # one per image, in input order
    assert all(r.source == "vlm" and family in r.model for r in results)
    assert all(isinstance(r.caption, str) and r.caption.isascii() for r in results)
    # batches of two (padded, mixed prompts) give what one image at a time gives
    pairs = zip(three_images, prompts, strict=True)
    alone = [captioner.caption([image], [prompt])[0].caption for image, prompt in pairs]
    assert [r.caption for r in results] == alone


def test_the_tiny_build_is_reused_and_keyed_by_words(vlm_cache):
    first = load_vlm(_config(vlm_cache, "blip2"), WORDS)
    again = load_vlm(_config(vlm_cache, "blip2"), reversed(WORDS))
    other = load_vlm(_config(vlm_cache, "blip2"), ["cat"])
    assert first.source == again.source and first.model_id == again.model_id
    assert other.source != first.source


def test_chat_prompt_is_a_user_turn_with_the_image_then_the_instruction(vlm_cache, images):
    loaded = load_vlm(_config(vlm_cache, "qwen2_vl"), WORDS)
    text = loaded.processor.apply_chat_template(
        chat_messages(images[0], "Use these words: woman, street"),
        add_generation_prompt=True, tokenize=False,
    )  # fmt: skip
    assert "<|vision_start|><|image_pad|><|vision_end|>Use these words: woman, street" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_florence_prompts_are_task_tokens(vlm_cache, images):
    assert florence_task("<CAPTION>") == "<CAPTION>"
    assert florence_task("<DETAILED_CAPTION> Look again.") == "<DETAILED_CAPTION>"
    captioner = VlmCaptioner(load_vlm(_config(vlm_cache, "florence2"), WORDS), max_new_tokens=3)
    assert captioner.default_prompt == "<MORE_DETAILED_CAPTION>"
    with pytest.raises(ValueError, match="task token"):
        captioner.caption(images, "describe this image")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_local_directory_loads_as_pretrained_with_its_family_read(family, vlm_cache):
    folder = load_vlm(_config(vlm_cache, family), WORDS).source
    config = VlmCaptionConfig(profile="pretrained", pretrained=folder, device="cpu")
    loaded = load_vlm(config)
    assert (loaded.family, loaded.profile_used, loaded.model_id) == (family, "pretrained", folder)
    assert loaded.metadata()["caption_model_family"] == family


def test_missing_pretrained_weights_name_the_pull_command(tmp_path):
    config = VlmCaptionConfig(profile="pretrained", hf_cache_dir=str(tmp_path), device="cpu")
    with pytest.raises(PretrainedUnavailable, match="style-pipeline models pull florence2"):
        load_vlm(config)
    qwen = config.model_copy(update={"pretrained": "Qwen/Qwen2-VL-2B-Instruct"})
    with pytest.raises(PretrainedUnavailable, match="models pull qwen2-vl"):
        load_vlm(qwen)


def test_auto_falls_back_to_the_tiny_family_of_the_id_loudly(tmp_path):
    config = VlmCaptionConfig(
        profile="auto", pretrained="Salesforce/blip2-opt-2.7b", hf_cache_dir=str(tmp_path),
        cache_dir=str(tmp_path / "models"), device="cpu",
    )  # fmt: skip
    with pytest.warns(RuntimeWarning, match="FELL BACK TO TINY"):
        loaded = load_vlm(config, WORDS)
    assert (loaded.family, loaded.profile_used) == ("blip2", "tiny")
    assert "style-pipeline models pull blip2" in (loaded.fallback_reason or "")
    assert loaded.metadata()["caption_profile_requested"] == "auto"


def test_family_detection():
    assert family_of("florence2", False) == "florence2"
    assert family_of("qwen2_5_vl", True) == "qwen2_vl"
    assert family_of("blip-2", False) == "blip2"
    assert family_of("llava", True) == "qwen2_vl"  # any chat-template VLM
    assert family_of("llava", False, "blip2") == "blip2"
    with pytest.raises(ValueError, match="captioning.caption.vlm.family"):
        family_of("pix2struct", False)
    assert [guess_family(i) for i in (FLORENCE2_BASE_ID, "Qwen/Qwen2.5-VL-3B-Instruct",
                                      "Salesforce/blip2-flan-t5-xl")] == list(FAMILIES)  # fmt: skip


def test_registry_knows_the_vlms(tmp_path):
    from style_pipeline.contracts.models import BlipModelConfig, ModelConfig

    config = VlmCaptionConfig(hf_cache_dir=str(tmp_path))
    entries = registry(ModelConfig(), BlipModelConfig(), "some/pipeline", "sd", config)
    assert [e.name for e in entries] == ["clip", "blip", "florence2", "diffusion"]
    assert [e.source for e in vlm_catalog()] == [
        "florence-community/Florence-2-base", "Qwen/Qwen2-VL-2B-Instruct",
        "Salesforce/blip2-opt-2.7b",
    ]  # fmt: skip
    assert vlm_entry(config.model_copy(update={"pretrained": "org/other-vlm"})).name == "vlm"
    found = status(vlm_entry(config))
    assert not found.cached and "not in the Hugging Face cache" in found.note


@pytest.mark.parametrize("family", FAMILIES)
def test_bfloat16_runs_on_cpu_too(family, vlm_cache, images):
    # dtype auto is bfloat16 on CUDA; the same path is exercised here on the CPU
    loaded = load_vlm(_config(vlm_cache, family, dtype="bfloat16"), WORDS)
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    assert loaded.metadata()["caption_model_dtype"] == "bfloat16"
    results = VlmCaptioner(loaded, max_new_tokens=3, num_beams=1).caption(images)
    assert len(results) == 2


@pytest.mark.parametrize(
    ("size", "edge", "expected"),
    [((1920, 1080), 768, (768, 432)), ((300, 200), 768, (300, 200)), ((100, 4000), 64, (2, 64)),
     ((1920, 1080), None, (1920, 1080))],
)  # fmt: skip
def test_images_are_downscaled_to_the_max_edge(size, edge, expected):
    assert downscaled(Image.new("RGB", size), edge).size == expected


@pytest.mark.parametrize("family", ["florence2", "blip2"])
def test_the_caption_is_the_continuation_only(family, vlm_cache, three_images):
    """What the pipeline returns equals the generated tokens after the prompt, decoded."""
    loaded = load_vlm(_config(vlm_cache, family), WORDS)
    captioner = VlmCaptioner(loaded, batch_size=3, max_new_tokens=6, num_beams=2)
    prompts = PROMPTS[family]
    got = [r.caption for r in captioner.caption(three_images, prompts)]
    inputs = loaded.processor(images=three_images, text=prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = loaded.model.generate(**inputs, **captioner.generate_kwargs)
    cut = 0 if loaded.model.config.is_encoder_decoder else inputs["input_ids"].shape[1]
    decoded = loaded.processor.batch_decode(out[:, cut:], skip_special_tokens=True)
    assert got == [" ".join(text.split()) for text in decoded]
