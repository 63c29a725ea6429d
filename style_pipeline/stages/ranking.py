"""The ``ranking`` stage: the best frame of each moment, chosen pair by pair with Elo.

Within each cluster the top contenders by ``total_prelim`` (frames that passed the
theme's constraints) meet in a round robin; the opener finalists (top by the first
role's affinity) meet in another. Schedules and budgets are ``curation/elo.py``; the
judge (heuristic or endpoint) is ``curation/judges.py``; verdicts a judge gave are
cached so nothing is asked twice. Returns one ``RankingRecord`` row per frame (hero,
alternates with their rank, Elo, the rationale of the last win, or the reason the frame
was not in a contest) and the day's ``JudgmentsDocument`` (written to
``layout.judgments_key(date)``) with the spend against the budgets.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import polars as pl
from PIL import Image

from style_pipeline.contracts.curation import JudgeSpend, Judgment, JudgmentsDocument
from style_pipeline.contracts.themes import SCORES, Rubric, Theme
from style_pipeline.curation.contests import RankingState, ranking_frame
from style_pipeline.curation.elo import interleave, round_robin, top_by
from style_pipeline.curation.judges import Candidate, HeuristicJudge, Judge, Stage, affinity
from style_pipeline.curation.judgment_cache import judgment_key, read_judgment, write_judgment
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store


@dataclass(frozen=True)
class RankingTables:
    """The upstream tables of one day's ``ranking``."""

    frames: pl.DataFrame
    scores: pl.DataFrame
    clusters: pl.DataFrame


@dataclass(frozen=True)
class RankingFacts:
    """What the ``ranking`` asset reports besides the table."""

    frames: int
    contenders: int
    clusters_judged: int
    opener_finalists: int
    spend: JudgeSpend
    fallback_reasons: dict[str, int]  # reason code -> pairs
    not_ranked: dict[str, int]  # RankingRecord.reason -> frames
    heroes: Mapping[int, str]  # cluster -> frame id


def make_judge(theme: Theme) -> Judge:
    """The judge named by ``theme.judge.kind`` (the endpoint needs base_url and model)."""
    if theme.judge.kind == "heuristic":
        return HeuristicJudge(theme.judge.seed)
    from style_pipeline.curation.endpoint_judge import EndpointJudge

    return EndpointJudge(theme)


def _image_loader(store: Store, key: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        with Image.open(io.BytesIO(store.read_bytes(key))) as im:
            return im.convert("RGB")

    return load


def _candidates(tables: RankingTables, store: Store) -> dict[str, Candidate]:
    """Frames with scores that passed, as candidates (merit: total_prelim)."""
    frames = {r["frame_id"]: r for r in tables.frames.iter_rows(named=True)}
    out = {}
    for row in tables.scores.filter(pl.col("passed")).iter_rows(named=True):
        frame = frames.get(row["frame_id"])
        if frame is None:
            continue  # a score of a frame not in today's frames: nothing to rank
        out[row["frame_id"]] = Candidate(
            row["frame_id"],
            frame["sha256"],
            {s: float(row[s]) for s in SCORES},
            float(row["total_prelim"]),
            _image_loader(store, frame["path"]),
        )
    return out


def _check_theme(scores: pl.DataFrame, theme_hash: str) -> None:
    stale = set(scores["theme_hash"].unique().to_list()) - {theme_hash} if len(scores) else set()
    if stale:
        raise ValueError(
            f"theme_mismatch: scores were computed under theme hash(es) {sorted(stale)}, the "
            f"theme in force is {theme_hash}; re-materialize scores for this day"
        )


def rank_day(
    tables: RankingTables, store: Store, theme: Theme, date: str, judge: Judge | None = None
) -> tuple[pl.DataFrame, JudgmentsDocument, RankingFacts]:
    """Judge the day's pairs, rate them with Elo, and name each cluster's hero."""
    theme_hash, settings = theme.theme_hash(), theme.judge
    _check_theme(tables.scores, theme_hash)
    own_judge = judge is None
    judge = make_judge(theme) if judge is None else judge
    state = RankingState.start(tables.frames, tables.scores, tables.clusters, settings)
    candidates = _candidates(tables, store)
    prelim = {fid: c.merit for fid, c in candidates.items()}

    members: dict[int, dict[str, float]] = {}
    for fid in candidates:
        cluster = state.cluster.get(fid)
        if cluster is not None and cluster >= 0:
            members.setdefault(cluster, {})[fid] = prelim[fid]
    contenders = {c: top_by(m, settings.contenders_per_cluster) for c, m in members.items()}
    order = sorted(contenders, key=lambda c: (-max(members[c].values()), c))
    schedules = [
        [(c, p) for p in round_robin(contenders[c], settings.max_pairs_per_cluster)] for c in order
    ]
    cluster_pairs = interleave(schedules, settings.max_pairs_per_day)

    opener = theme.roles[0].affinity
    pool = {fid: c for fid, c in candidates.items() if fid in state.cluster}  # outliers too
    merit = {fid: affinity(c.scores, opener) for fid, c in pool.items()}
    opener_merit = {fid: prelim[fid] if m is None else m for fid, m in merit.items()}
    finalists = top_by(opener_merit, settings.opener_finalists) if len(pool) > 1 else []
    remaining = settings.max_pairs_per_day - len(cluster_pairs)
    opener_pairs = round_robin(finalists, remaining)

    judgments: list[Judgment] = []
    decide = _Decider(store, judge, theme_hash, settings.prompt_version, judgments)
    for c in order:
        state.rate_cluster(c, contenders[c])
    for c, (a, b) in cluster_pairs:
        verdict = decide(candidates[a], candidates[b], "cluster", theme.rubric)
        state.record_cluster(c, a, b, verdict)
    openers = {fid: replace(candidates[fid], merit=opener_merit[fid]) for fid in finalists}
    state.rate_openers(finalists)
    for a, b in opener_pairs:
        state.record_opener(a, b, decide(openers[a], openers[b], "opener", opener))
    if own_judge and hasattr(judge, "close"):
        judge.close()

    table = ranking_frame(state, judge.name, theme_hash, prelim)
    spend = _spend(judge, judgments, settings.max_pairs_per_day, settings.max_tokens_per_day)
    document = JudgmentsDocument(date=date, theme_hash=theme_hash, spend=spend, judgments=judgments)
    store.put_bytes(document.model_dump_json(indent=2).encode(), layout.judgments_key(date))
    reasons = Counter(j.judge.split(":", 1)[1] for j in judgments if j.fallback_reason)
    facts = RankingFacts(
        frames=len(table),
        contenders=sum(len(c) for c in contenders.values()),
        clusters_judged=len(contenders),
        opener_finalists=len(finalists),
        spend=spend,
        fallback_reasons=dict(sorted(reasons.items())),
        not_ranked=dict(sorted(Counter(r for r in table["reason"] if r).items())),
        heroes=state.heroes(prelim),
    )
    return table, document, facts


class _Decider:
    """One pair: from the cache when a judge already answered it, else asked (and kept)."""

    def __init__(self, store: Store, judge: Judge, theme_hash: str, prompt_version: str,
                 judgments: list[Judgment]):  # fmt: skip
        self.store, self.judge, self.judgments = store, judge, judgments
        self.theme_hash, self.prompt_version = theme_hash, prompt_version

    def __call__(self, a: Candidate, b: Candidate, stage: Stage, weights: Rubric):
        key = judgment_key(
            a.content_hash, b.content_hash, self.theme_hash, self.judge.model, self.prompt_version
        )
        cached = None
        if self.judge.cacheable and a.content_hash != b.content_hash:
            cached = read_judgment(self.store, key, a, b)
        verdict = cached or self.judge.judge(a, b, stage, weights)
        if cached is None and self.judge.cacheable and verdict.fallback_reason is None:
            if a.content_hash != b.content_hash:  # identical bytes: the winner is by id
                write_judgment(self.store, key, a, b, verdict)
        self.judgments.append(
            Judgment(
                a=a.frame_id, b=b.frame_id, winner=verdict.winner, rationale=verdict.rationale,
                stage=stage, judge=verdict.judge, cached=cached is not None,
                fallback_reason=verdict.fallback_reason, input_tokens=verdict.input_tokens,
                output_tokens=verdict.output_tokens, cost_usd=round(verdict.cost_usd, 6),
            )
        )  # fmt: skip
        return verdict


def _spend(judge: Judge, judgments: list[Judgment], pairs: int, tokens: int) -> JudgeSpend:
    return JudgeSpend(
        judge=judge.name,
        model=None if judge.model == "heuristic" else judge.model,
        pairs=len(judgments),
        pair_budget=pairs,
        cache_hits=sum(j.cached for j in judgments),
        fallbacks=sum(j.fallback_reason is not None for j in judgments),
        input_tokens=sum(j.input_tokens for j in judgments),
        output_tokens=sum(j.output_tokens for j in judgments),
        token_budget=tokens,
        cost_usd=round(sum(j.cost_usd for j in judgments), 6),
    )
