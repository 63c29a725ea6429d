"""The endpoint judge: an OpenAI-compatible vision chat API picks the better of two frames.

One ``POST {base_url}/chat/completions`` per pair: both images as JPEG data URLs
(downscaled to ``endpoint.max_image_edge``), the theme's vibe and rubric in the prompt,
and the answer asked for as JSON ``{"winner": "A"|"B", "rationale": "..."}``. The pair
is shown in canonical order (by content hash), so a swapped pair is the same question.
Transport (key, timeouts, retries with backoff on 429/5xx honouring ``Retry-After``)
is :mod:`style_pipeline.remote_http`. Token use and cost come from the answer's
``usage`` and the theme's prices. A judge that cannot answer never fails the day: the
heuristic decides that pair, and the verdict says why (``fallback_reason``):

* ``malformed_answer``: two answers in a row were not the JSON asked for;
* ``endpoint_unavailable``: every attempt failed (timeouts, 429, 5xx);
* ``endpoint_refused``: a 4xx retrying cannot fix; the judge stops asking for the day;
* ``token_budget_spent``: ``judge.max_tokens_per_day`` is used up;
* ``image_unreadable``: a frame's JPEG could not be read.

After :data:`MAX_CONSECUTIVE_FAILURES` pairs in a row failed the judge stops asking too,
so a dead endpoint costs minutes, not hours of timeouts.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import replace

import httpx

from style_pipeline.contracts.themes import SCORES, Rubric, Theme
from style_pipeline.curation.judges import Candidate, HeuristicJudge, Stage, Verdict, fallback
from style_pipeline.redaction import redact
from style_pipeline.remote_http import (
    EndpointGaveUp,
    EndpointRefused,
    endpoint_client,
    image_data_url,
    post_with_retries,
    snippet,
)

MAX_CONSECUTIVE_FAILURES = 3
ANSWER_TOKENS = 200
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def judging_prompt(theme: Theme, stage: Stage, weights: Rubric) -> str:
    """The instructions sent with the two images (its wording is ``judge.prompt_version``)."""
    task = (
        "Both photographs show the same moment; pick the better shot of it."
        if stage == "cluster"
        else f"Pick the better opening image ({theme.roles[0].name}) for the whole set."
    )
    rubric = ", ".join(f"{s} {getattr(weights, s):g}" for s in SCORES)
    avoid = "; ".join(theme.anti_prompts) or "nothing in particular"
    return (
        f"You curate photographs for the theme '{theme.name}': {theme.description}\n"
        f"The set should feel like: {'; '.join(theme.vibe_prompts)}.\n"
        f"Avoid: {avoid}.\n"
        f"Weigh: {rubric} (q_tech = sharpness, exposure, noise; typography = room for a "
        "headline; composition = framing, level horizon, subject inside the frame).\n"
        f"{task} Image A is the first image, image B the second.\n"
        'Answer with JSON only: {"winner": "A" or "B", "rationale": "one sentence"}.'
    )


def parse_answer(text: str) -> tuple[str, str] | None:
    """``("A"|"B", rationale)`` from the model's text (fences tolerated), None if malformed."""
    match = _JSON_OBJECT.search(text)
    if match is None:
        return None
    try:
        data = json.loads(match.group(0))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    winner = str(data.get("winner", "")).strip().upper()
    if winner not in ("A", "B"):
        return None
    return winner, str(data.get("rationale", "")).strip()[:500]


def _content(payload: object) -> str | None:
    try:
        content = payload["choices"][0]["message"]["content"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        return None
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else None


def _usage(payload: object) -> tuple[int, int]:
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


class EndpointJudge:
    """Asks a vision chat endpoint; falls back to the heuristic per pair, reason recorded."""

    cacheable = True

    def __init__(
        self,
        theme: Theme,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        self.theme, self.settings = theme, theme.judge
        self.endpoint = theme.judge.endpoint
        self._client = endpoint_client(self.endpoint, transport)
        self.model = str(self.endpoint.model)
        self.name = f"endpoint:{self.model}"
        self.heuristic = HeuristicJudge(theme.judge.seed)
        self.input_tokens = self.output_tokens = self.requests_made = 0
        self.stopped: str | None = None  # reason code once the judge stops asking
        self._failures = 0
        self._sleep, self._rng = sleep, rng or random.Random(theme.judge.seed)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> EndpointJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def tokens_used(self) -> int:
        return self.input_tokens + self.output_tokens

    def judge(self, a: Candidate, b: Candidate, stage: Stage, weights: Rubric) -> Verdict:
        """The endpoint's verdict, or the heuristic's with the reason it had to decide."""
        if self.stopped:
            return self._fallback(a, b, stage, weights, self.stopped, "stopped asking earlier")
        if self.tokens_used >= self.settings.max_tokens_per_day:
            budget = self.settings.max_tokens_per_day
            return self._fallback(a, b, stage, weights, "token_budget_spent", f"{budget} tokens")
        first, second = sorted((a, b), key=lambda c: c.content_hash)
        try:
            urls = [self._data_url(first), self._data_url(second)]
        except (OSError, ValueError) as exc:
            detail = snippet(exc, self.endpoint.api_key_env)
            return self._fallback(a, b, stage, weights, "image_unreadable", detail)
        body = self._body(judging_prompt(self.theme, stage, weights), urls)
        tokens_in = tokens_out = 0
        for _ in range(2):  # a malformed answer is asked once more
            try:
                payload = self._post(body)
            except EndpointRefused as exc:
                self.stopped = "endpoint_refused"
                return self._fallback(a, b, stage, weights, self.stopped, exc.detail)
            except EndpointGaveUp as exc:
                self._failures += 1
                if self._failures >= MAX_CONSECUTIVE_FAILURES:
                    self.stopped = "endpoint_unavailable"
                return self._fallback(a, b, stage, weights, "endpoint_unavailable", str(exc))
            used_in, used_out = _usage(payload)
            tokens_in, tokens_out = tokens_in + used_in, tokens_out + used_out
            self.input_tokens += used_in
            self.output_tokens += used_out
            answer = parse_answer(_content(payload) or "")
            if answer is not None:
                self._failures = 0
                winner = first if answer[0] == "A" else second
                rationale = redact(answer[1], [self.endpoint.api_key_env])
                return Verdict(
                    winner.frame_id, rationale, self.name, None, tokens_in, tokens_out,
                    self._cost(tokens_in, tokens_out),
                )  # fmt: skip
        shown = snippet(_content(payload) or payload, self.endpoint.api_key_env)
        verdict = self._fallback(a, b, stage, weights, "malformed_answer", shown)
        cost = self._cost(tokens_in, tokens_out)
        return replace(verdict, input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost)

    def _fallback(self, a, b, stage, weights, code: str, detail: str) -> Verdict:
        return fallback(self.heuristic, a, b, stage, weights, code, detail)

    def _data_url(self, candidate: Candidate) -> str:
        if candidate.image is None:
            raise ValueError(f"no image for frame {candidate.frame_id}")
        return image_data_url(candidate.image(), self.endpoint.max_image_edge)

    def _body(self, prompt: str, urls: list[str]) -> dict:
        images = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
        return {
            "model": self.model,
            "max_tokens": ANSWER_TOKENS,
            "temperature": self.endpoint.temperature,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}, *images]}],
        }

    def _post(self, body: dict) -> object:
        response = post_with_retries(
            self._client, "chat/completions", body, self.endpoint,
            sleep=self._sleep, rng=self._rng, on_request=self._count,
        )  # fmt: skip
        try:
            return response.json()
        except ValueError:  # not JSON at all: treated like a malformed answer
            return {"choices": [{"message": {"content": response.text[:2000]}}]}

    def _count(self) -> None:
        self.requests_made += 1

    def _cost(self, tokens_in: int, tokens_out: int) -> float:
        s = self.settings
        return tokens_in / 1000 * s.input_usd_per_1k_tokens + (
            tokens_out / 1000 * s.output_usd_per_1k_tokens
        )
