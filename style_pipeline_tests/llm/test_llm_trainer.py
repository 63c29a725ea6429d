"""The tiny causal LM, TRL SFT + LoRA on it, reloading the adapter, and CPU determinism."""

from __future__ import annotations

import hashlib

import pytest
import torch

from style_pipeline.contracts.llm import LlmSettings, LlmTrainingConfig
from style_pipeline.llm.trainer import (
    ADAPTER_WEIGHTS,
    NotTrainable,
    prompt_completion,
    train_adapter,
)
from style_pipeline.models.causal_lm import causal_lm_entry, load_causal_lm, resolve_causal_lm
from style_pipeline.models.profiles import PretrainedUnavailable
from style_pipeline_tests.llm.helpers import chat, examples


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    cache = tmp_path_factory.mktemp("llm_models")
    return resolve_causal_lm(LlmSettings(profile="tiny", model_cache_dir=str(cache)))


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        (chat("q?", "a."), ([("user", "q?")], ("assistant", "a."))),
        (
            {"messages": [{"role": "system", "content": "s"}, *chat("q", "a")["messages"]]},
            ([("system", "s"), ("user", "q")], ("assistant", "a")),
        ),
        ({"messages": [{"role": "user", "content": "q"}]}, None),
        ({"messages": [{"role": "assistant", "content": "a"}]}, None),
        (chat("q", "   "), None),
        ({}, None),
    ],
)
def test_prompt_completion(example, expected):
    got = prompt_completion(example)
    if expected is None:
        assert got is None
        return
    assert [(m["role"], m["content"]) for m in got["prompt"]] == expected[0]
    assert [(m["role"], m["content"]) for m in got["completion"]] == [expected[1]]


def test_tiny_model_has_a_chat_template_and_is_reused(tiny_lm, tmp_path):
    assert tiny_lm.profile == "tiny" and tiny_lm.model_id.startswith("tiny-llama@sha256:")
    model, tokenizer = load_causal_lm(tiny_lm.path)
    assert model.config.model_type == "llama"
    text = tokenizer.apply_chat_template(chat("hi", "hello")["messages"], tokenize=False)
    assert "<|im_start|>user\nhi<|im_end|>" in text and "<|im_start|>assistant\nhello" in text
    again = resolve_causal_lm(
        LlmSettings(profile="tiny", model_cache_dir=str(tiny_lm.path.parents[1]))
    )
    assert again.path == tiny_lm.path and again.model_id == tiny_lm.model_id


def test_registry_entry_of_the_configured_model(tmp_path):
    entry = causal_lm_entry(LlmSettings())
    assert (entry.name, entry.kind, entry.source) == (
        "causal-lm", "transformers", "Qwen/Qwen2.5-0.5B-Instruct",
    )  # fmt: skip
    assert entry.pullable
    assert not causal_lm_entry(LlmSettings(pretrained=str(tmp_path))).pullable


def test_pretrained_missing_never_downloads(tmp_path):
    settings = LlmSettings(profile="pretrained", pretrained=str(tmp_path / "nope"))
    with pytest.raises(PretrainedUnavailable, match="models pull causal-lm"):
        resolve_causal_lm(settings)
    auto = LlmSettings(
        profile="auto", pretrained=str(tmp_path / "nope"), model_cache_dir=str(tmp_path)
    )
    with pytest.warns(RuntimeWarning, match="FELL BACK TO TINY"):
        resolved = resolve_causal_lm(auto)
    assert resolved.profile == "tiny" and "models pull causal-lm" in (
        resolved.fallback_reason or ""
    )


def test_sft_trains_reloads_and_is_bit_identical_on_cpu(tiny_lm, tmp_path):
    from peft import PeftModel

    config = LlmTrainingConfig(max_steps=3, batch_size=2, learning_rate=1e-2)
    seen: list[tuple[int, float]] = []
    runs = []
    for name in ("a", "b"):
        runs.append(
            train_adapter(
                tiny_lm.path, examples(6), config, tmp_path / name, base_model_id=tiny_lm.model_id,
                on_step=lambda step, loss: seen.append((step, loss)), device="cpu",
            )
        )  # fmt: skip
    first, second = runs
    assert first.steps == 3 and [s for s, _ in first.losses] == [1, 2, 3]
    assert seen[:3] == first.losses
    digests = [hashlib.sha256((r.folder / ADAPTER_WEIGHTS).read_bytes()).hexdigest() for r in runs]
    assert digests[0] == digests[1]
    assert first.losses == second.losses
    assert sorted(p.name for p in first.folder.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    base, tokenizer = load_causal_lm(tiny_lm.path)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    model = PeftModel.from_pretrained(base, str(first.folder))
    assert model.peft_config["default"].base_model_name_or_path == tiny_lm.model_id
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # trained: B left zero init
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "what game is next?"}], add_generation_prompt=True,
        return_tensors="pt", return_dict=True,
    )  # fmt: skip
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
    merged = model.merge_and_unload()
    changed = any(
        not torch.equal(before[k], v) for k, v in merged.state_dict().items() if k in before
    )
    assert changed


def test_no_usable_examples(tiny_lm, tmp_path):
    with pytest.raises(NotTrainable, match="none of 1 examples"):
        train_adapter(
            tiny_lm.path, [{"messages": []}], LlmTrainingConfig(), tmp_path, base_model_id="x"
        )


def test_bf16_autocast_trains_on_cpu_and_fp16_is_refused(tiny_lm, tmp_path):
    bf16 = LlmTrainingConfig(max_steps=1, batch_size=2, precision="bf16")
    run = train_adapter(
        tiny_lm.path, examples(2), bf16, tmp_path / "bf16", base_model_id="x", device="cpu"
    )
    assert run.steps == 1 and all(0 < loss < 20 for _, loss in run.losses)
    fp16 = LlmTrainingConfig(max_steps=1, precision="fp16")
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        train_adapter(
            tiny_lm.path, examples(2), fp16, tmp_path / "fp16", base_model_id="x", device="cpu"
        )
