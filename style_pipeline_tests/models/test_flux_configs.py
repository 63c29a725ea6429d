"""The tiny random-init FLUX.1 pipeline: offline tokenizers, saved folder, fingerprint."""

from __future__ import annotations

from style_pipeline.models.diffusion import (
    load_pipeline,
    resolve_diffusion,
    save_tiny_pipeline,
    tiny_fingerprint,
)
from style_pipeline.models.flux_configs import T5_MAX_LENGTH, build_tiny_t5_tokenizer


def test_t5_tokenizer_is_built_offline_and_reads_any_ascii():
    tokenizer = build_tiny_t5_tokenizer()
    ids = tokenizer("sks style, picture #3 (blue)!").input_ids
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id not in ids
    padded = tokenizer(["a"], max_length=8, padding="max_length", truncation=True).input_ids
    assert len(padded[0]) == 8 and tokenizer.model_max_length == T5_MAX_LENGTH


def test_tiny_flux_pipeline_is_saved_once_and_loads_as_flux(tmp_path):
    folder = save_tiny_pipeline(tmp_path, seed=0, family="flux")
    assert folder.name == f"tiny-flux-{tiny_fingerprint(0, 'flux')}"
    assert save_tiny_pipeline(tmp_path, seed=0, family="flux") == folder
    assert tiny_fingerprint(0, "flux") not in (
        tiny_fingerprint(0, "sd"),
        tiny_fingerprint(1, "flux"),
    )
    resolved = resolve_diffusion("tiny", cache_dir=tmp_path, family="flux")
    assert resolved.path == str(folder) and resolved.profile == "tiny"
    pipe = load_pipeline(folder)
    assert type(pipe).__name__ == "FluxPipeline"
    assert pipe.transformer.config.guidance_embeds
    assert pipe.vae.config.latent_channels == 16 and pipe.vae.config.shift_factor
    assert pipe.transformer.config.in_channels == 4 * pipe.vae.config.latent_channels
    assert type(pipe.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
