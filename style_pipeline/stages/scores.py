"""The ``scores`` stage: every frame's scorecard against the day's theme.

Reads the ``embeddings`` table (a theme change re-scores without re-embedding: only the
theme's few prompts are embedded, with the same CLIP model, which must match the table's
``model_id``), the ``quality_scores`` rows (``q_tech``, faces) and the frame JPEGs
(typography, composition). A frame with no quality row, no embedding or an unreadable
JPEG gets zero scores, ``passed`` False and a reason code (``no_quality_scores``,
``no_embedding``, ``unreadable_frame``); the rest of the day goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from PIL import UnidentifiedImageError

from style_pipeline.contracts.curation import CurationSettings, ScoreRecord
from style_pipeline.contracts.themes import SCORES, Theme
from style_pipeline.curation.embeddings import embed_texts, vectors_from_frame
from style_pipeline.curation.scorecard import aesthetic as aes
from style_pipeline.curation.scorecard.frame_layout import FrameLayout, load_layout
from style_pipeline.curation.scorecard.q_tech import q_tech
from style_pipeline.curation.scorecard.text_detection import TextDetector
from style_pipeline.curation.scorecard.total import constraint_reasons, total_prelim
from style_pipeline.curation.scorecard.vibe import vibe_scores
from style_pipeline.models import LoadedModel, load_model
from style_pipeline.paths import resolve_local
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import polars_schema

SCORECARD_VERSION = "1"
SCORES_SCHEMA = polars_schema(ScoreRecord)


@dataclass(frozen=True)
class ScoreFacts:
    """What the ``scores`` asset reports besides the table."""

    theme: str
    theme_hash: str
    aesthetic_source: str
    text_detector: str
    frames: int
    passed: int
    means: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


def choose_aesthetic(
    cfg: CurationSettings, clip: LoadedModel, store: Store, partition: str
) -> aes.AestheticHead:
    """LAION head when its file exists and fits, else the newest reward model, else proxy."""
    weights = resolve_local(cfg.scorecard.aesthetic_weights)
    if weights.is_file() and clip.model_name == cfg.scorecard.aesthetic_clip_model:
        head = aes.load_laion_head(weights)
        if head.layers[0].in_features == clip.dim:
            return aes.AestheticHead("laion-mlp", lambda v: aes.laion_scores(head, v))
    found = aes.newest_reward_model(store, partition, clip.model_id)
    if found is not None:
        day, model = found
        return aes.AestheticHead(f"reward_model:{day}", lambda v: model.score(v).astype(float))
    prompts = embed_texts(clip, list(aes.AESTHETIC_PROMPTS))
    return aes.AestheticHead("clip-proxy", lambda v: aes.clip_proxy_scores(v, prompts))


def score_day(
    frames: pl.DataFrame,
    quality: pl.DataFrame,
    embeddings: pl.DataFrame,
    store: Store,
    partition: str,
    cfg: CurationSettings,
    theme: Theme,
) -> tuple[pl.DataFrame, ScoreFacts]:
    """``scores`` rows (frames order) and facts for metadata."""
    if frames.is_empty():
        facts = ScoreFacts(theme.name, theme.theme_hash(), "none", "none", 0, 0)
        return pl.DataFrame(schema=SCORES_SCHEMA), facts
    clip = load_model(cfg.clip)
    ids = embeddings["model_id"].unique().to_list()
    if ids and ids != [clip.model_id]:
        raise ValueError(
            f"embeddings were made with {ids}, curation.clip loads {clip.model_id}: "
            "re-materialize embeddings or set curation.clip back"
        )
    head = choose_aesthetic(cfg, clip, store, partition)
    vibe_vecs = embed_texts(clip, theme.vibe_prompts)
    anti_vecs = embed_texts(clip, theme.anti_prompts) if theme.anti_prompts else vibe_vecs[:0]
    detector = TextDetector(cfg.scorecard.text_detector)

    day = frames.select("frame_id", "path").join(quality, on="frame_id", how="left")
    vec_of = dict(zip(embeddings["frame_id"], vectors_from_frame(embeddings), strict=True))
    has_q = day["sharpness"].is_not_null().to_numpy()
    q = np.zeros(len(day))
    if has_q.any():
        rows = day.filter(pl.col("sharpness").is_not_null())
        q[has_q] = q_tech(
            rows["sharpness"].to_list(),
            rows["mean_luminance"].to_list(),
            rows["shadow_clip"].to_list(),
            rows["highlight_clip"].to_list(),
            rows["noise_sigma"].to_list(),
            brisque=rows["brisque"].to_list(),
            clip_iqa=rows["clip_iqa"].to_list(),
        )
    aesthetic: dict[str, float] = {}
    vibe: dict[str, float] = {}
    ids_with_vec = [f for f in day["frame_id"] if f in vec_of]
    if ids_with_vec:
        matrix = np.stack([vec_of[f] for f in ids_with_vec])
        aesthetic = dict(zip(ids_with_vec, head.score(matrix), strict=True))
        temperature = cfg.scorecard.vibe_temperature
        vibe_day = vibe_scores(matrix, vibe_vecs, anti_vecs, temperature)
        vibe = dict(zip(ids_with_vec, vibe_day, strict=True))
    records, long_edge = [], cfg.scorecard.analysis_long_edge
    with store.local_copies(day["path"].to_list()) as local:
        for i, row in enumerate(day.iter_rows(named=True)):
            layout, problems = _layout(local[row["path"]], detector, long_edge)
            if not has_q[i]:
                problems.append("no_quality_scores")
            if row["frame_id"] not in vec_of:
                problems.append("no_embedding")
            records.append(
                _record(row, q[i], aesthetic, vibe, layout, problems, theme, head.source)
            )
    table = pl.DataFrame([r.model_dump() for r in records], schema=SCORES_SCHEMA)
    return table, _facts(table, theme, head.source, detector.kind)


def _layout(path: Path, detector: TextDetector, long_edge: int) -> tuple[FrameLayout | None, list]:
    try:
        return load_layout(path, detector, long_edge), []
    except (OSError, UnidentifiedImageError, ValueError):
        return None, ["unreadable_frame"]  # missing, truncated or not an image


def _record(row, q, aesthetic, vibe, layout, problems, theme: Theme, source) -> ScoreRecord:
    frame_id = row["frame_id"]
    scores = {
        "q_tech": float(q),
        "aesthetic": float(aesthetic.get(frame_id, 0.0)),
        "vibe": float(vibe.get(frame_id, 0.0)),
        "typography": layout.typography.typography if layout else 0.0,
        "composition": layout.composition.composition if layout else 0.0,
    }
    reasons = list(problems)
    if row["width"] is not None:
        reasons += constraint_reasons(
            scores["q_tech"], row["width"], row["height"], row["face_count"], theme.constraints
        )
    return ScoreRecord(
        frame_id=frame_id,
        **{k: min(1.0, max(0.0, v)) for k, v in scores.items()},
        aesthetic_source=source,
        text_fraction=layout.typography.text_fraction if layout else 0.0,
        calm_fraction=layout.typography.calm_fraction if layout else 0.0,
        thirds_distance=layout.composition.thirds_distance if layout else 0.0,
        horizon_tilt_deg=layout.composition.horizon_tilt_deg if layout else None,
        border_cut=layout.composition.border_cut if layout else False,
        total_prelim=min(1.0, max(0.0, total_prelim(scores, theme.rubric))),
        passed=not reasons,
        reasons=reasons,
        scorecard_version=SCORECARD_VERSION,
        theme=theme.name,
        theme_hash=theme.theme_hash(),
    )


def _facts(table: pl.DataFrame, theme: Theme, source: str, detector: str) -> ScoreFacts:
    reasons = table.select(pl.col("reasons").explode()).drop_nulls()["reasons"].value_counts()
    return ScoreFacts(
        theme=theme.name,
        theme_hash=theme.theme_hash(),
        aesthetic_source=source,
        text_detector=detector,
        frames=len(table),
        passed=int(table["passed"].sum() or 0),
        means={s: _mean(table, s) for s in (*SCORES, "total_prelim")},
        reasons={str(r): int(c) for r, c in reasons.iter_rows()},
    )


def _mean(table: pl.DataFrame, column: str) -> float:
    value = table.select(pl.col(column).cast(pl.Float64).mean()).item()
    return round(float(value or 0.0), 4)
