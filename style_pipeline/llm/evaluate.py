"""Scores of an LLM adapter and the regressions against a baseline adapter.

Scores: perplexity of the assistant answers of the SFT validation split (token-weighted,
the prompt given through the chat template, as in training), and over the fixed prompt
suite (``data/llm_eval/prompts.jsonl``) the greedy answers' mean length in tokens, the
share of empty answers and the refusal rate (an answer containing a phrase of
``llm.eval.refusal_phrases``). The baseline (the live adapter, else the newest earlier
version) is scored on the same rows in the same run, so the two numbers compare.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from style_pipeline.contracts.llm import LlmEvalSettings
from style_pipeline.llm.trainer import prompt_completion


@dataclass(frozen=True)
class AdapterScores:
    metrics: dict[str, float]
    samples: list[dict[str, str]] = field(default_factory=list)


def load_prompts(path: Path) -> list[dict[str, str]]:
    """The prompt suite: one JSON object per line with ``id`` and ``prompt``."""
    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row, dict) or not str(row.get("prompt", "")).strip():
            raise ValueError(f"{path}:{number}: expected an object with a non-empty 'prompt'")
        prompts.append({"id": str(row.get("id", number)), "prompt": str(row["prompt"])})
    return prompts


@torch.no_grad()
def answer_perplexity(
    model: Any, tokenizer: Any, examples: Sequence[Mapping], max_length: int
) -> tuple[float | None, int]:
    """(exp of the mean NLL over the answers' tokens, number of answer tokens); (None, 0)
    when no example has an answer."""
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for example in examples:
        pair = prompt_completion(dict(example))
        if pair is None:
            continue
        prompt_ids = _ids(tokenizer, pair["prompt"], add_generation_prompt=True)
        full_ids = _ids(tokenizer, pair["prompt"] + pair["completion"], add_generation_prompt=False)
        full_ids = full_ids[:max_length]
        start = min(len(prompt_ids), len(full_ids) - 1)
        if start < 1 or full_ids[:start] != prompt_ids[:start]:
            start = max(1, start)  # a template that rewrites the prompt: score from there on
        inputs = torch.tensor([full_ids], device=device)
        logits = model(input_ids=inputs).logits[0, :-1].float()
        targets = inputs[0, 1:]
        nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")[start - 1 :]
        total += float(nll.sum())
        count += int(nll.numel())
    if count == 0:
        return None, 0
    return math.exp(total / count), count


def _ids(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=False
    )
    if isinstance(ids, Mapping):  # some tokenizers answer a BatchEncoding regardless
        ids = ids["input_ids"]
    return [int(i) for i in ids]


@torch.no_grad()
def suite_answers(
    model: Any, tokenizer: Any, prompts: Sequence[Mapping[str, str]], max_new_tokens: int
) -> list[dict[str, Any]]:
    """Greedy answers to each suite prompt: id, prompt, response, tokens."""
    device = next(model.parameters()).device
    out = []
    for item in prompts:
        ids = _ids(tokenizer, [{"role": "user", "content": item["prompt"]}], True)
        inputs = torch.tensor([ids], device=device)
        generated = model.generate(
            input_ids=inputs,
            attention_mask=torch.ones_like(inputs),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )[0, len(ids) :]
        text = tokenizer.decode(generated, skip_special_tokens=True).strip()
        eos = tokenizer.eos_token_id
        tokens = int((generated != eos).sum()) if eos is not None else len(generated)
        out.append({"id": item["id"], "prompt": item["prompt"], "response": text, "tokens": tokens})
    return out


def is_refusal(text: str, phrases: Sequence[str]) -> bool:
    lowered = text.lower().replace("\u2019", "'")
    return any(phrase.lower() in lowered for phrase in phrases)


def score_adapter(
    model: Any,
    tokenizer: Any,
    val_examples: Sequence[Mapping],
    prompts: Sequence[Mapping[str, str]],
    settings: LlmEvalSettings,
    max_length: int,
) -> AdapterScores:
    """Perplexity on ``val_examples`` and answer statistics on ``prompts``."""
    model.eval()
    ppl, tokens = answer_perplexity(
        model, tokenizer, val_examples[: settings.max_val_examples], max_length
    )
    answers = suite_answers(model, tokenizer, prompts, settings.max_new_tokens)
    metrics: dict[str, float] = {"val_answer_tokens": float(tokens), "suite_prompts": len(answers)}
    if ppl is not None:
        metrics["val_perplexity"] = round(ppl, 6)
    if answers:
        n = len(answers)
        metrics["mean_response_tokens"] = round(sum(a["tokens"] for a in answers) / n, 4)
        metrics["empty_rate"] = round(sum(not a["response"] for a in answers) / n, 4)
        refusals = sum(is_refusal(a["response"], settings.refusal_phrases) for a in answers)
        metrics["refusal_rate"] = round(refusals / n, 4)
    samples = [{k: str(a[k]) for k in ("id", "prompt", "response")} for a in answers]
    return AdapterScores(metrics, samples)


def regressions(
    new: Mapping[str, float], baseline: Mapping[str, float], settings: LlmEvalSettings
) -> tuple[list[dict[str, Any]], list[str]]:
    """(metrics worse than the baseline beyond their tolerance, metrics compared)."""
    flags: list[dict[str, Any]] = []
    compared: list[str] = []

    def flag(metric: str, limit: float, rule: str) -> None:
        flags.append(
            {"metric": metric, "value": new[metric], "baseline": baseline[metric],
             "limit": round(limit, 6), "rule": rule}
        )  # fmt: skip

    if "val_perplexity" in new and "val_perplexity" in baseline:
        compared.append("val_perplexity")
        limit = baseline["val_perplexity"] * (1 + settings.perplexity_tolerance)
        if new["val_perplexity"] > limit:
            flag(
                "val_perplexity",
                limit,
                f"higher than baseline x (1 + {settings.perplexity_tolerance})",
            )
    if "refusal_rate" in new and "refusal_rate" in baseline:
        compared.append("refusal_rate")
        limit = baseline["refusal_rate"] + settings.refusal_tolerance
        if new["refusal_rate"] > limit:
            flag("refusal_rate", limit, f"above baseline + {settings.refusal_tolerance}")
    if "mean_response_tokens" in new and baseline.get("mean_response_tokens"):
        compared.append("mean_response_tokens")
        base = baseline["mean_response_tokens"]
        if abs(new["mean_response_tokens"] - base) > settings.length_tolerance * base:
            flag("mean_response_tokens", settings.length_tolerance * base,
                 f"changed by more than {settings.length_tolerance} x baseline")  # fmt: skip
    return flags, compared
