"""Judges: the heuristic's verdicts and words; the endpoint judge against a real HTTP server.

The server (``judge_server.py``) listens on 127.0.0.1 and answers like an OpenAI-compatible
chat API: normal answers with ``usage``, 429 with Retry-After, slow answers past the
timeout, malformed JSON, 500s and 401s that echo the bearer key.
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from style_pipeline.contracts.captioning import EndpointConfig
from style_pipeline.contracts.themes import JudgeSettings, Rubric, Theme
from style_pipeline.curation.endpoint_judge import EndpointJudge, parse_answer
from style_pipeline.curation.judges import Candidate, HeuristicJudge
from style_pipeline.curation.judgment_cache import judgment_key, read_judgment, write_judgment
from style_pipeline.curation.themes import load_theme
from style_pipeline.storage.store import Store
from style_pipeline_tests.curation.judge_server import (  # noqa: F401 (a fixture)
    ChatServer,
    Reply,
    chat_server_fixture,
)

KEY_ENV = "SP_JUDGE_TEST_KEY"
SECRET = "sk-judgetest-0123456789abcdef"
RUBRIC = Rubric()


def _candidate(fid: str, digest: str, merit: float, size=(900, 600), **scores) -> Candidate:
    colour = (40 + 10 * len(fid), 120, 200)
    base = {"q_tech": 0.5, "aesthetic": 0.5, "vibe": 0.5, "typography": 0.5, "composition": 0.5}
    return Candidate(fid, digest, {**base, **scores}, merit, lambda: Image.new("RGB", size, colour))


A = _candidate("frame_a", "aaaa", 0.8, q_tech=0.9)
B = _candidate("frame_b", "bbbb", 0.6, q_tech=0.4)


def _theme(server: ChatServer | None = None, timeout_s: float = 10.0, **judge) -> Theme:
    theme = load_theme("default", "data/themes")
    endpoint = EndpointConfig(
        base_url=server.base_url if server else "http://127.0.0.1:9/v1", model="vlm-judge",
        api_key_env=KEY_ENV, timeout_s=timeout_s, max_attempts=3, backoff_base_s=0.01,
        backoff_max_s=2.0,
    )  # fmt: skip
    settings = JudgeSettings(kind="endpoint", endpoint=endpoint, input_usd_per_1k_tokens=0.5,
                             output_usd_per_1k_tokens=2.0, **judge)  # fmt: skip
    return theme.model_copy(update={"judge": settings})


@pytest.fixture
def judge_for(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    made, slept = [], []

    def make(server, timeout_s: float = 10.0, **judge) -> EndpointJudge:
        judge_ = EndpointJudge(_theme(server, timeout_s, **judge), sleep=slept.append)
        made.append(judge_)
        return judge_

    make.slept = slept  # type: ignore[attr-defined]
    yield make
    for j in made:
        j.close()


def test_heuristic_prefers_higher_merit_and_names_the_deciding_score():
    verdict = HeuristicJudge().judge(B, A, "cluster", RUBRIC)
    assert verdict.winner == "frame_a"
    assert verdict.judge == "heuristic" and verdict.fallback_reason is None
    assert "total_prelim 0.800 vs 0.600" in verdict.rationale
    assert "q_tech +" in verdict.rationale


def test_heuristic_tie_break_is_seeded_and_order_free():
    x, y = _candidate("x1", "11", 0.5), _candidate("y1", "22", 0.5)
    winners = set()
    for seed in range(8):
        judge = HeuristicJudge(seed)
        first, second = judge.judge(x, y, "cluster", RUBRIC), judge.judge(y, x, "cluster", RUBRIC)
        assert first.winner == second.winner
        assert f"seed {seed}" in first.rationale
        winners.add(first.winner)
    assert winners == {"x1", "y1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"winner": "B", "rationale": "level horizon"}', ("B", "level horizon")),
        ('```json\n{"winner": "a", "rationale": "sharper"}\n```', ("A", "sharper")),
        ('{"winner": "C"}', None),
        ("A is better", None),
        ('{"winner": "A", ', None),
    ],
)
def test_parse_answer(text, expected):
    assert parse_answer(text) == expected


def test_endpoint_answer_usage_cost_and_request(chat_server, judge_for):
    chat_server.script = [Reply(content='{"winner": "B", "rationale": "B is better lit"}',
                                usage=(1200, 30))]  # fmt: skip
    judge = judge_for(chat_server)
    verdict = judge.judge(A, B, "cluster", RUBRIC)
    # shown in content-hash order: "aaaa" is image A, "bbbb" image B
    assert verdict.winner == "frame_b" and verdict.rationale == "B is better lit"
    assert verdict.judge == "endpoint:vlm-judge" and verdict.fallback_reason is None
    assert (verdict.input_tokens, verdict.output_tokens) == (1200, 30)
    assert verdict.cost_usd == pytest.approx(1.2 * 0.5 + 0.03 * 2.0)
    body = chat_server.bodies[0]
    assert body["model"] == "vlm-judge"
    text, *images = body["messages"][0]["content"]
    assert "calm, well-composed editorial photograph" in text["text"]
    assert '"winner"' in text["text"]
    assert len(images) == 2
    decoded = [
        Image.open(io.BytesIO(base64.b64decode(i["image_url"]["url"].split(",", 1)[1])))
        for i in images
    ]
    assert all(max(im.size) == 768 for im in decoded)  # downscaled to max_image_edge
    assert chat_server.authorizations == [f"Bearer {SECRET}"]


def test_swapped_pair_is_the_same_question(chat_server, judge_for):
    judge = judge_for(chat_server)
    first, second = judge.judge(A, B, "cluster", RUBRIC), judge.judge(B, A, "cluster", RUBRIC)
    assert first.winner == second.winner == "frame_a"
    assert chat_server.bodies[0] == chat_server.bodies[1]


def test_429_retry_after_is_honoured(chat_server, judge_for):
    chat_server.script = [Reply(status=429, raw='{"error": "slow down"}',
                                headers={"Retry-After": "1.5"})]  # fmt: skip
    judge = judge_for(chat_server)
    verdict = judge.judge(A, B, "cluster", RUBRIC)
    assert verdict.fallback_reason is None and judge.requests_made == 2
    assert judge_for.slept == [1.5]


def test_a_timeout_is_retried(chat_server, judge_for):
    chat_server.script = [Reply(delay_s=1.5)]
    judge = judge_for(chat_server, timeout_s=0.3)
    verdict = judge.judge(A, B, "cluster", RUBRIC)
    assert verdict.fallback_reason is None and verdict.winner == "frame_a"
    assert judge.requests_made == 2


def test_malformed_json_is_asked_once_more(chat_server, judge_for):
    chat_server.script = [Reply(content="A, clearly", usage=(900, 5))]
    judge = judge_for(chat_server)
    verdict = judge.judge(A, B, "cluster", RUBRIC)
    assert verdict.fallback_reason is None and judge.requests_made == 2
    assert verdict.input_tokens == 1900  # both answers were paid for


def test_malformed_twice_falls_back_to_the_heuristic(chat_server, judge_for):
    chat_server.script = [Reply(raw="not json at all"), Reply(content='{"winner": "maybe"}')]
    judge = judge_for(chat_server)
    verdict = judge.judge(B, A, "cluster", RUBRIC)
    assert verdict.judge == "fallback:malformed_answer"
    assert verdict.fallback_reason.startswith("malformed_answer: ")
    assert verdict.winner == "frame_a"  # the heuristic's choice
    assert "total_prelim" in verdict.rationale
    assert verdict.input_tokens == 1000  # the raw answer had no usage, the second did


def test_500s_fall_back_then_the_judge_stops_asking(chat_server, judge_for):
    chat_server.script = [Reply(status=500, raw=f"upstream broke; got {SECRET}")] * 9
    judge = judge_for(chat_server)
    for _ in range(3):
        verdict = judge.judge(A, B, "cluster", RUBRIC)
        assert verdict.judge == "fallback:endpoint_unavailable"
        assert "gave up after 3 attempts" in verdict.fallback_reason
        assert "HTTP 500" in verdict.fallback_reason
        assert SECRET not in verdict.fallback_reason
    assert judge.requests_made == 9
    later = judge.judge(A, B, "cluster", RUBRIC)
    assert later.judge == "fallback:endpoint_unavailable" and judge.requests_made == 9


def test_a_refusal_echoing_the_key_is_redacted_and_stops_asking(chat_server, judge_for):
    chat_server.script = [Reply(status=401, raw=f'{{"error": "bad key Bearer {SECRET}"}}')]
    judge = judge_for(chat_server)
    verdict = judge.judge(A, B, "cluster", RUBRIC)
    assert verdict.judge == "fallback:endpoint_refused"
    assert "HTTP 401" in verdict.fallback_reason and SECRET not in verdict.fallback_reason
    assert judge.judge(A, B, "opener", RUBRIC).judge == "fallback:endpoint_refused"
    assert judge.requests_made == 1


def test_a_rationale_echoing_the_key_is_redacted(chat_server, judge_for):
    chat_server.script = [Reply(content=f'{{"winner": "A", "rationale": "key {SECRET}"}}')]
    verdict = judge_for(chat_server).judge(A, B, "cluster", RUBRIC)
    assert SECRET not in verdict.rationale and verdict.rationale.startswith("key ")


def test_the_token_budget_stops_asking(chat_server, judge_for):
    judge = judge_for(chat_server, max_tokens_per_day=1500)
    assert judge.judge(A, B, "cluster", RUBRIC).fallback_reason is None
    assert judge.judge(A, B, "cluster", RUBRIC).fallback_reason is None  # 1020 < 1500
    spent = judge.judge(A, B, "cluster", RUBRIC)
    assert spent.judge == "fallback:token_budget_spent" and spent.input_tokens == 0
    assert judge.requests_made == 2 and judge.tokens_used == 2040


def test_an_unreadable_image_falls_back(chat_server, judge_for):
    def broken() -> Image.Image:
        raise OSError("cannot identify image file")

    bad = Candidate("frame_c", "cccc", dict(A.scores), 0.1, broken)
    verdict = judge_for(chat_server).judge(A, bad, "cluster", RUBRIC)
    assert verdict.judge == "fallback:image_unreadable" and verdict.winner == "frame_a"
    assert chat_server.bodies == []


def test_a_missing_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ValueError, match=KEY_ENV):
        EndpointJudge(_theme())


def test_cached_judgment_is_shared_by_both_orders(tmp_path):
    store = Store(tmp_path)
    key = judgment_key("aaaa", "bbbb", "theme", "vlm", "1")
    assert key == judgment_key("bbbb", "aaaa", "theme", "vlm", "1")
    assert key != judgment_key("aaaa", "bbbb", "theme", "vlm", "2")
    assert key.startswith("ranking/cache/")
    assert read_judgment(store, key, A, B) is None
    verdict = HeuristicJudge().judge(A, B, "cluster", RUBRIC)
    write_judgment(store, key, A, B, verdict)
    hit = read_judgment(store, key, B, A)
    assert hit is not None and hit.winner == "frame_a" and hit.rationale == verdict.rationale
    store.put_bytes(b"{torn", key)
    assert read_judgment(store, key, A, B) is None
