"""The day's contests: who may compete, their Elo as verdicts arrive, and the ranking rows.

A frame competes in its cluster when it has scores, a cluster (not noise, ``-1``), passed
the theme's constraints and is among the cluster's top contenders; otherwise its row
says why (``no_scores``, ``no_cluster``, ``failed_constraints``, ``outlier``,
``not_a_contender``). The hero is the top of its cluster's standings (Elo, then
``total_prelim``, then id); the other contenders are alternates 1, 2, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from style_pipeline.contracts.curation import RankingRecord
from style_pipeline.contracts.themes import JudgeSettings
from style_pipeline.curation.elo import Ratings
from style_pipeline.curation.judges import Verdict
from style_pipeline.storage.tables import records_to_frame


@dataclass
class RankingState:
    """Ratings per cluster and among opener finalists, with each frame's last verdicts."""

    settings: JudgeSettings
    frame_ids: list[str]
    cluster: dict[str, int]
    reason: dict[str, str]
    clusters: dict[int, Ratings] = field(default_factory=dict)
    openers: Ratings | None = None
    last_judge: dict[str, str] = field(default_factory=dict)
    last_win: dict[str, str] = field(default_factory=dict)
    opener_win: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        frames: pl.DataFrame,
        scores: pl.DataFrame,
        clusters: pl.DataFrame,
        settings: JudgeSettings,
    ) -> RankingState:
        """Every frame of the day, with the reason it cannot compete when it cannot."""
        passed = dict(zip(scores["frame_id"], scores["passed"], strict=True))
        cluster = dict(zip(clusters["frame_id"], clusters["cluster"], strict=True))
        reason = {}
        for fid in frames["frame_id"]:
            if fid not in passed:
                reason[fid] = "no_scores"
            elif fid not in cluster:
                reason[fid] = "no_cluster"
            elif not passed[fid]:
                reason[fid] = "failed_constraints"
            elif cluster[fid] < 0:
                reason[fid] = "outlier"
        return cls(settings, list(frames["frame_id"]), cluster, reason)

    def _ratings(self) -> Ratings:
        return Ratings(self.settings.elo_start, self.settings.elo_k)

    def rate_cluster(self, cluster: int, contenders: list[str]) -> None:
        self.clusters[cluster] = self._ratings()
        self.clusters[cluster].add(contenders)

    def record_cluster(self, cluster: int, a: str, b: str, verdict: Verdict) -> None:
        self.clusters[cluster].record(a, b, verdict.winner)
        self.last_judge[a] = self.last_judge[b] = verdict.judge
        self.last_win[verdict.winner] = verdict.rationale

    def rate_openers(self, finalists: list[str]) -> None:
        self.openers = self._ratings()
        self.openers.add(finalists)

    def record_opener(self, a: str, b: str, verdict: Verdict) -> None:
        assert self.openers is not None, "rate_openers first"
        self.openers.record(a, b, verdict.winner)
        self.opener_win[verdict.winner] = verdict.rationale

    def heroes(self, prelim: Mapping[str, float]) -> dict[int, str]:
        """cluster -> its hero's frame id."""
        return {c: r.standings(prelim)[0] for c, r in sorted(self.clusters.items()) if r.elo}


def ranking_frame(
    state: RankingState, judge: str, theme_hash: str, prelim: Mapping[str, float]
) -> pl.DataFrame:
    """One ``RankingRecord`` row per frame: cluster by cluster, hero, alternates, the rest."""
    places: dict[str, int] = {}
    for table_ratings in state.clusters.values():
        places.update({fid: i for i, fid in enumerate(table_ratings.standings(prelim))})
    openers = state.openers.elo if state.openers is not None else {}
    records = []
    for fid in state.frame_ids:
        cluster = state.cluster.get(fid, -1)
        ratings = state.clusters.get(cluster)
        contender = ratings is not None and fid in ratings.elo
        place = places.get(fid) if contender else None
        records.append(
            RankingRecord(
                frame_id=fid,
                cluster=cluster,
                contender=contender,
                elo=round(ratings.elo[fid], 3) if ratings is not None and contender else None,
                wins=ratings.wins[fid] if ratings is not None and contender else 0,
                losses=ratings.losses[fid] if ratings is not None and contender else 0,
                hero=place == 0,
                alternate_rank=place if place else None,
                opener_finalist=fid in openers,
                opener_elo=round(openers[fid], 3) if fid in openers else None,
                rationale=state.last_win.get(fid, state.opener_win.get(fid)),
                judge=state.last_judge.get(fid, judge),
                theme_hash=theme_hash,
                reason=state.reason.get(fid) or (None if contender else "not_a_contender"),
            )
        )
    table = records_to_frame(records, RankingRecord)
    return table.sort(
        ["cluster", "hero", "alternate_rank", "frame_id"],
        descending=[False, True, False, False],
        nulls_last=True,
    )
