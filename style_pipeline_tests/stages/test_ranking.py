"""The ``ranking`` stage against a local Store: heroes, reasons, budgets, cache, endpoint."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest
from PIL import Image

from style_pipeline.contracts.captioning import EndpointConfig
from style_pipeline.contracts.curation import JudgmentsDocument, RankingRecord, ScoreRecord
from style_pipeline.contracts.themes import JudgeSettings, Theme
from style_pipeline.curation.themes import load_theme
from style_pipeline.stages.ranking import RankingTables, rank_day
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import polars_schema, records_to_frame
from style_pipeline_tests.curation.judge_server import (  # noqa: F401 (a fixture)
    ChatServer,
    chat_server_fixture,
)

DAY = "2026-11-12"
KEY_ENV = "SP_RANKING_TEST_KEY"
# frame -> (cluster, total_prelim, passed); "f_noscore" has no scores, "f_nocluster" no cluster
PLAN = {
    "f_c0_a": (0, 0.90, True),
    "f_c0_b": (0, 0.70, True),
    "f_c0_c": (0, 0.60, True),
    "f_c0_d": (0, 0.50, True),
    "f_c0_e": (0, 0.40, True),  # fifth: not a contender
    "f_c0_bad": (0, 0.95, False),  # failed the constraints
    "f_c1_a": (1, 0.30, True),
    "f_c1_b": (1, 0.80, True),
    "f_out": (-1, 0.99, True),  # noise
    "f_noscore": (1, 0.0, True),
    "f_nocluster": (None, 0.5, True),
}


def _theme(**judge) -> Theme:
    theme = load_theme("default", "data/themes")
    return theme.model_copy(update={"judge": JudgeSettings(**judge)})


def _tables(store: Store, theme: Theme, prelim: dict[str, float] | None = None) -> RankingTables:
    frames, scores, clusters = [], [], []
    for i, (fid, (cluster, total, passed)) in enumerate(PLAN.items()):
        key = f"frames/{DAY}/{fid}.jpg"
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), (10 * i, 100, 200 - 10 * i)).save(buffer, format="JPEG")
        store.put_bytes(buffer.getvalue(), key)
        frames.append({"frame_id": fid, "path": key, "sha256": f"{i:064x}"})
        if cluster is not None:
            clusters.append({"frame_id": fid, "cluster": cluster})
        if fid == "f_noscore":
            continue
        total = (prelim or {}).get(fid, total)
        scores.append(
            ScoreRecord(
                frame_id=fid, q_tech=total, aesthetic=total, aesthetic_source="test", vibe=total,
                typography=0.5, text_fraction=0.0, calm_fraction=0.3, composition=total,
                thirds_distance=0.1, border_cut=False, total_prelim=total, passed=passed,
                reasons=[] if passed else ["low_q_tech"], scorecard_version="test",
                theme=theme.name, theme_hash=theme.theme_hash(),
            )
        )  # fmt: skip
    return RankingTables(
        pl.DataFrame(frames),
        records_to_frame(scores, ScoreRecord),
        pl.DataFrame(clusters, schema={"frame_id": pl.String, "cluster": pl.Int64}),
    )


def _rows(table: pl.DataFrame) -> dict[str, dict]:
    return {r["frame_id"]: r for r in table.iter_rows(named=True)}


def _cached(store) -> list[str]:
    """Every cached judgment (entries sit in two-hex-digit fan-out folders)."""
    return [key for folder in store.list("ranking/cache") for key in store.list(folder)]


def test_heroes_alternates_reasons_and_the_judgments_document(tmp_path):
    store, theme = Store(tmp_path), _theme()
    table, document, facts = rank_day(_tables(store, theme), store, theme, DAY)
    assert table.schema == polars_schema(RankingRecord)
    rows = _rows(table)
    assert len(rows) == len(PLAN)
    assert facts.heroes == {0: "f_c0_a", 1: "f_c1_b"}
    assert rows["f_c0_a"]["hero"] and rows["f_c0_a"]["wins"] == 3
    assert [rows[f]["alternate_rank"] for f in ("f_c0_b", "f_c0_c", "f_c0_d")] == [1, 2, 3]
    assert rows["f_c0_a"]["elo"] > rows["f_c0_b"]["elo"] > rows["f_c0_d"]["elo"]
    assert "total_prelim 0.900" in rows["f_c0_a"]["rationale"]
    reasons = {f: r["reason"] for f, r in rows.items() if r["reason"]}
    assert reasons == {
        "f_c0_e": "not_a_contender", "f_c0_bad": "failed_constraints", "f_out": "outlier",
        "f_noscore": "no_scores", "f_nocluster": "no_cluster",
    }  # fmt: skip
    assert facts.not_ranked == {"failed_constraints": 1, "no_cluster": 1, "no_scores": 1,
                                "not_a_contender": 1, "outlier": 1}  # fmt: skip
    # cluster 0: 4 contenders -> 6 pairs; cluster 1: 1 pair; opener finalists: all 7 passed
    finalists = {f for f, r in rows.items() if r["opener_finalist"]}
    assert finalists == {"f_c0_a", "f_c0_b", "f_c0_c", "f_c0_d", "f_c0_e", "f_c1_a", "f_c1_b",
                         "f_out"}  # fmt: skip
    assert facts.spend.pairs == 6 + 1 + 8 * 7 // 2
    assert facts.spend.cache_hits == 0 and facts.spend.fallbacks == 0
    assert rows["f_out"]["opener_elo"] == max(r["opener_elo"] or 0 for r in rows.values())
    stored = JudgmentsDocument.model_validate_json(store.read_bytes(layout.judgments_key(DAY)))
    assert stored == document and stored.spend.judge == "heuristic"
    assert [j.stage for j in stored.judgments[:7]] == ["cluster"] * 7
    # clusters share the budget round by round: the most promising cluster (0.9) first
    assert (stored.judgments[0].a, stored.judgments[1].a) == ("f_c0_a", "f_c1_b")


@pytest.mark.parametrize(("budget", "cluster_pairs"), [(0, 0), (1, 1), (3, 3), (7, 7)])
def test_the_day_pair_budget(tmp_path, budget, cluster_pairs):
    store, theme = Store(tmp_path), _theme(max_pairs_per_day=budget)
    _, document, facts = rank_day(_tables(store, theme), store, theme, DAY)
    assert facts.spend.pairs == budget and facts.spend.pair_budget == budget
    assert sum(j.stage == "cluster" for j in document.judgments) == cluster_pairs
    assert facts.heroes[0] == "f_c0_a"  # unjudged contenders stand by total_prelim


def test_per_cluster_caps(tmp_path):
    store, theme = Store(tmp_path), _theme(contenders_per_cluster=2, max_pairs_per_cluster=1,
                                           opener_finalists=2)  # fmt: skip
    table, document, facts = rank_day(_tables(store, theme), store, theme, DAY)
    assert facts.contenders == 4 and facts.spend.pairs == 3
    assert table.filter(pl.col("cluster") == 0)["contender"].sum() == 2


def test_scores_of_another_theme_are_refused(tmp_path):
    store, theme = Store(tmp_path), _theme()
    tables = _tables(store, theme)
    other = theme.model_copy(update={"version": "9.9"})
    with pytest.raises(ValueError, match="theme_mismatch"):
        rank_day(tables, store, other, DAY)


def _endpoint_theme(server: ChatServer) -> Theme:
    endpoint = EndpointConfig(base_url=server.base_url, model="vlm-judge", api_key_env=KEY_ENV,
                              max_attempts=2, backoff_base_s=0.0, timeout_s=30)  # fmt: skip
    return _theme(kind="endpoint", endpoint=endpoint, opener_finalists=2,
                  input_usd_per_1k_tokens=1.0)  # fmt: skip


def test_endpoint_judgments_are_cached_whichever_way_round(tmp_path, chat_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-rankingtest-0123456789")
    store, theme = Store(tmp_path), _endpoint_theme(chat_server)
    _, first, facts = rank_day(_tables(store, theme), store, theme, DAY)
    asked = len(chat_server.bodies)
    assert asked == first.spend.pairs == 6 + 1 + 1 and facts.spend.cache_hits == 0
    assert first.spend.input_tokens == 1000 * asked and first.spend.cost_usd == pytest.approx(asked)
    assert first.spend.judge == "endpoint:vlm-judge" and first.spend.model == "vlm-judge"
    assert len(_cached(store)) == asked

    # the same day again: nothing is asked
    _, second, _ = rank_day(_tables(store, theme), store, theme, DAY)
    assert len(chat_server.bodies) == asked
    assert second.spend.cache_hits == asked and second.spend.input_tokens == 0
    assert [j.winner for j in second.judgments] == [j.winner for j in first.judgments]

    # cluster 1's two frames swap places by total_prelim: the pair comes the other way round
    swapped = _tables(store, theme, prelim={"f_c1_a": 0.85, "f_c1_b": 0.30})
    _, third, _ = rank_day(swapped, store, theme, DAY)
    pair = next(j for j in third.judgments if {j.a, j.b} == {"f_c1_a", "f_c1_b"})
    assert (pair.a, pair.cached) == ("f_c1_a", True)
    assert len(chat_server.bodies) == asked


def test_a_failing_endpoint_falls_back_for_the_day(tmp_path, chat_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-rankingtest-0123456789")
    from style_pipeline_tests.curation.judge_server import Reply

    chat_server.script = [Reply(status=503, raw="busy")] * 6
    store, theme = Store(tmp_path), _endpoint_theme(chat_server)
    table, document, facts = rank_day(_tables(store, theme), store, theme, DAY)
    assert facts.spend.fallbacks == document.spend.pairs == 8
    assert facts.fallback_reasons == {"endpoint_unavailable": 8}
    assert len(chat_server.bodies) == 6  # three pairs x two attempts, then it stops asking
    assert facts.heroes == {0: "f_c0_a", 1: "f_c1_b"}
    assert _rows(table)["f_c0_a"]["judge"] == "fallback:endpoint_unavailable"
    assert _cached(store) == []  # fallbacks are never cached
    assert json.loads(store.read_bytes(layout.judgments_key(DAY)))["spend"]["fallbacks"] == 8
