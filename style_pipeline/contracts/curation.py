"""Curation contracts: config sections, the ``quality_scores`` record, ontology and overrides."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from style_pipeline.contracts.models import ModelConfig
from style_pipeline.contracts.sections import Section

DEFAULT_TEMPLATES = ("a photo of {term}.", "an image showing {term}.")
_TERM_PATTERN = r"^[a-z0-9][a-z0-9 '&/-]*[a-z0-9]$|^[a-z0-9]$"


class FaceConfig(BaseModel):
    """Face detection and the optional face requirements of the quality gate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    yunet_model: str | None = Field(None, description="path of face_detection_yunet_*.onnx")
    cascade_file: str | None = Field(None, description="Haar cascade XML (default: OpenCV's)")
    score_threshold: float = Field(0.7, gt=0, lt=1, description="YuNet confidence")
    min_face_fraction: float = Field(
        0.05, gt=0, lt=1, description="smallest face side relative to the image's short edge"
    )
    require_face: bool = Field(False, description="gate: reason no_face when none is found")
    max_faces: int | None = Field(None, ge=0, description="gate: too_many_faces above this")


class IqaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    brisque: bool = True
    clip_iqa: bool = True


class QualityConfig(BaseModel):
    """Analysis resolution and gate thresholds, tuned on the tuning split of
    benchmarks/heldout_corpus.py (plus the tuning photographs' part of
    benchmarks/curation_corpus.py) and checked on its held-out photographs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    analysis_long_edge: int = Field(512, ge=64)
    min_short_edge: int = Field(256, ge=1, description="low_resolution below (source pixels)")
    blur_focus_min: float = Field(
        0.344, ge=0, le=1, description="blurry: focus (1-px / 4-px difference ratio) below"
    )
    dark_p99_max: float = Field(0.45, ge=0, le=1, description="underexposed: 99th pct below")
    dark_mean_max: float = Field(0.08, ge=0, le=1, description="underexposed: or mean below")
    bright_clip_max: float = Field(
        0.005, ge=0, le=1, description="overexposed: fraction at level 255 above (and mean)"
    )
    bright_clip_mean_min: float = Field(
        0.30,
        ge=0,
        le=1,
        description="overexposed: ... and mean above (a dark frame with a "
        "small white object is not overexposed)",
    )
    bright_mean_max: float = Field(0.92, ge=0, le=1, description="overexposed: or mean above")
    noise_sigma_max: float = Field(11.0, ge=0, description="noisy above (0-255 scale)")
    ssim_redundant_min: float = Field(0.92, ge=-1, le=1, description="redundant at or above")
    faces: FaceConfig = FaceConfig()
    iqa: IqaConfig = IqaConfig()
    workers: int = Field(
        0, ge=0, description="processes measuring frames (0: one per CPU, 1: in the step)"
    )


class QualityRecord(BaseModel):
    """One row of ``quality_scores``."""

    model_config = ConfigDict(extra="forbid")

    frame_id: str
    media_id: str | None = None
    width: int
    height: int
    laplacian_var: float
    tenengrad: float
    sharpness: float
    mean_luminance: float
    luminance_p01: float
    luminance_p99: float
    shadow_clip: float
    highlight_clip: float
    noise_sigma: float
    colorfulness: float
    ssim_prev: float | None = None
    face_count: int | None = None
    largest_face_fraction: float | None = None
    brisque: float | None = None
    clip_iqa: float | None = None
    passed: bool = True
    reasons: list[str] = Field(default_factory=list)
    score: float = Field(0.0, description="ranking score: log10(1 + sharpness) - failed checks")
    focus: float | None = Field(
        None,
        description="blur gate's measure in [0.25, 1] (curation.quality.focus); None only in "
        "rows written before it existed, which the blur check then skips",
    )


class DedupConfig(BaseModel):
    """Thresholds of the near-duplicate relation and where the index lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phash_threshold: int = Field(12, ge=0, le=64, description="pHash distance of a sure match")
    borderline: int = Field(4, ge=0, le=64, description="pHash band above it decided by dHash")
    dhash_threshold: int = Field(12, ge=0, le=64, description="dHash distance in that band")
    lookback_days: int | None = Field(
        None, ge=1, description="compare with this many earlier days only (None: all)"
    )
    index_prefix: str = "dedup_set/index"
    workers: int = Field(
        0, ge=0, description="processes hashing frames (0: one per CPU, 1: in the step)"
    )


class EmbeddingConfig(BaseModel):
    """Batching, image decoding and cache location of the ``embeddings`` asset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: Annotated[int, Field(gt=0)] | Literal["auto"] = Field(
        "auto", description="images per forward; auto: from free CUDA memory, 32 on CPU"
    )
    decode_workers: int = Field(
        0, ge=0, description="threads reading, decoding and preprocessing images (0: one per core)"
    )
    gpu_decode: bool = Field(
        True, description="on CUDA, decode JPEGs and resize them on the GPU (nvJPEG)"
    )
    jpeg_draft: bool = Field(
        True, description="CPU decode: JPEGs at the smallest DCT scale covering the model input"
    )
    prefetch_batches: int = Field(2, ge=1, description="batches decoded ahead of the forward")
    forward_threads: int = Field(
        0,
        ge=0,
        description="CPU: torch threads of the forward (0: 1 when decoding is the bottleneck, "
        "else torch's count)",
    )
    text_batch_size: int = Field(256, gt=0)
    cache_prefix: str = "embeddings/cache"


class KnnConfig(BaseModel):
    """How the neighbour graph is built."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(10, ge=1, description="neighbours per point (self excluded)")
    exact_max_n: int = Field(10_000, ge=1, description="exact search up to this many points")
    ivf_nlist: int | None = Field(None, ge=1, description="IVF lists; None: round(sqrt(n))")
    ivf_nprobe: int = Field(8, ge=1)
    ivf_dim: int | None = Field(64, ge=2, description="IVF search dim after PCA; None: full")
    pca_sample: int = Field(10_000, ge=2, description="rows used to fit PCA / train IVF")
    seed: int = 0


class ClusterConfig(BaseModel):
    """Neighbour graph, PCA and HDBSCAN settings of the ``clusters`` asset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    knn: KnnConfig = KnnConfig()
    pca_dim: int = Field(16, ge=2, description="HDBSCAN runs on this many PCA components")
    min_cluster_size: int = Field(5, ge=2)
    min_samples: int | None = Field(None, ge=1, description="None: min_cluster_size")
    cluster_selection_method: Literal["eom", "leaf"] = "eom"
    cluster_selection_epsilon: float = Field(0.0, ge=0)
    n_jobs: int | None = Field(None, ge=1, description="HDBSCAN core-distance jobs; None: all")


class SelectionConfig(BaseModel):
    """Budget and trade-offs of the curated selection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget: int = Field(200, ge=0, description="max kept frames per day, lock-ins included")
    per_cluster_k: int | None = Field(8, ge=1, description="candidates per cluster; None: all")
    outlier_policy: Literal["keep", "drop", "budgeted"] = "budgeted"
    outlier_budget_fraction: float = Field(0.1, ge=0, le=1, description="for 'budgeted'")
    objective: Literal["facility_location", "mmr"] = "facility_location"
    coverage_weight: float = Field(1.0, ge=0, description="weight of coverage / n_ground")
    quality_weight: float = Field(0.5, ge=0, description="weight of quality (0..1) / budget")
    mmr_lambda: float = Field(0.7, ge=0, le=1, description="MMR: quality vs redundancy")
    min_gain: float = Field(0.0, ge=0, description="stop when the best gain falls below")
    dense_max_entries: int = Field(
        16_000_000, ge=1, description="ground x candidates similarities held densely"
    )
    min_ground_sample: int = Field(
        2000, ge=1, description="below this many sampled ground rows use the k-NN graph"
    )
    seed: int = 0
    role_weight: float = Field(1.0, ge=0, description="theme runs: weight of role fit / slots")
    axis_weight: float = Field(1.0, ge=0, description="theme runs: weight of axis coverage")
    role_temperature: float = Field(
        0.05, gt=0, description="softmax temperature of role affinities (scores in [0, 1])"
    )


class OverrideChange(BaseModel):
    """One change made through the review app: who set which action on which frame, when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame_id: str
    action: Literal["lock_in", "exclude", "clear"]
    by: str = Field(description="who asked (the review page's user name, or the client)")
    at: datetime.datetime = Field(description="when, UTC")


class Overrides(BaseModel):
    """Manual decisions that beat the selection; a frame cannot be in both lists.

    Hand-written files carry only the lists and a note; the review app also records who
    changed the document last, when, and every change it made (``history``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lock_in: list[str] = Field(default_factory=list, description="frame ids always kept")
    exclude: list[str] = Field(default_factory=list, description="frame ids never kept")
    note: str | None = None
    updated_by: str | None = Field(None, description="who wrote the document last")
    updated_at: datetime.datetime | None = Field(None, description="when, UTC")
    history: list[OverrideChange] = Field(default_factory=list, description="oldest first")

    @model_validator(mode="after")
    def _disjoint(self) -> Overrides:
        both = sorted(set(self.lock_in) & set(self.exclude))
        if both:
            raise ValueError(f"frame ids both locked in and excluded: {both}")
        return self


class Term(BaseModel):
    """One vocabulary entry; ``term`` is the canonical lower-case label used in captions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    term: str = Field(pattern=_TERM_PATTERN)
    synonyms: list[str] = Field(default_factory=list)
    description: str | None = None

    @field_validator("synonyms")
    @classmethod
    def _clean_synonyms(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip().lower() for v in values]
        if any(not v for v in cleaned):
            raise ValueError("synonyms must not be empty")
        return cleaned


class Category(BaseModel):
    """A facet of the style vocabulary with its own zero-shot prompt templates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    templates: list[str] = Field(default_factory=lambda: list(DEFAULT_TEMPLATES), min_length=1)
    max_labels: int = Field(2, ge=1, description="labels per frame from this category")
    terms: list[Term] = Field(min_length=1)

    @field_validator("templates")
    @classmethod
    def _has_placeholder(cls, values: list[str]) -> list[str]:
        for template in values:
            if template.count("{term}") != 1:
                raise ValueError(f"template {template!r} must contain '{{term}}' exactly once")
        return values


class Ontology(BaseModel):
    """The whole vocabulary; every term and synonym is unique across all categories."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    version: str = Field(pattern=r"^\d+\.\d+(\.\d+)?$")
    categories: list[Category] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Ontology:
        names = [c.name for c in self.categories]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate category names in {names}")
        seen: dict[str, str] = {}
        for category in self.categories:
            for term in category.terms:
                for word in (term.term, *term.synonyms):
                    if word in seen:
                        raise ValueError(
                            f"{word!r} appears twice: in {seen[word]} and {category.name}/"
                            f"{term.term}"
                        )
                    seen[word] = f"{category.name}/{term.term}"
        return self

    def terms(self) -> list[tuple[str, str]]:
        """(category, term) for every term, in file order."""
        return [(c.name, t.term) for c in self.categories for t in c.terms]

    def category(self, name: str) -> Category:
        for category in self.categories:
            if category.name == name:
                return category
        raise KeyError(f"no category {name!r} in ontology {self.name}")


class ScorecardConfig(BaseModel):
    """Models and calibration of the ``scores`` asset (formulas: curation/scorecard/)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aesthetic_weights: str = Field(
        "data/models/aesthetic/sac+logos+ava1-l14-linearMSE.pth",
        description="LAION improved-aesthetic-predictor head (.pth or .safetensors); used "
        "when the file exists, never downloaded",
    )
    aesthetic_clip_model: str = Field(
        "ViT-L-14", description="open_clip architecture the LAION head was trained on"
    )
    vibe_temperature: float = Field(
        0.02, gt=0, description="cosine margin per logistic unit of the vibe score"
    )
    text_detector: Literal["auto", "rapidocr", "heuristic"] = Field(
        "auto", description="auto: rapidocr when installed, else the MSER heuristic"
    )
    analysis_long_edge: int = Field(256, ge=32, description="saliency and layout resolution")


class CurationSettings(Section):
    """Thresholds and models of the curation group (each sub-model documents its fields)."""

    dedup: DedupConfig = DedupConfig()
    quality: QualityConfig = QualityConfig()
    clip: ModelConfig = ModelConfig()
    embeddings: EmbeddingConfig = EmbeddingConfig()
    clusters: ClusterConfig = ClusterConfig()
    selection: SelectionConfig = SelectionConfig()
    ontology_path: str = "data/ontology.json"
    overrides_root: str = Field(
        "data/overrides", description="holds <date>.yml with lock_in / exclude frame ids"
    )
    min_curated_per_day: int = Field(4, ge=0, description="blocking check before training")
    max_duplicate_rate: float = Field(0.9, ge=0, le=1, description="warning check")
    min_pass_rate: float = Field(0.1, ge=0, le=1, description="warning check")
    theme: str = Field("default", description="a name in themes_dir, or a YAML path")
    themes_dir: str = Field("data/themes", description="holds <name>.yaml themes")
    scorecard: ScorecardConfig = ScorecardConfig()


class OntologySnapshot(BaseModel):
    """The ``ontology`` document: the vocabulary in force that day and the file it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="local path of the ontology file")
    sha256: str = Field(description="sha256 of the file bytes")
    ontology: Ontology


class ScoreRecord(BaseModel):
    """One row of ``scores``: every score in [0, 1] against the day's theme."""

    model_config = ConfigDict(extra="forbid")

    frame_id: str
    q_tech: float = Field(ge=0, le=1, description="sharpness, exposure, noise (robust, no tuning)")
    aesthetic: float = Field(ge=0, le=1)
    aesthetic_source: str = Field(description="which head scored it, e.g. laion-mlp, reward_model")
    vibe: float = Field(ge=0, le=1, description="calibrated CLIP similarity to the theme")
    typography: float = Field(ge=0, le=1, description="room for a headline, minus existing text")
    text_fraction: float = Field(ge=0, le=1, description="image area covered by detected text")
    calm_fraction: float = Field(ge=0, le=1, description="largest calm low-saliency region")
    composition: float = Field(ge=0, le=1)
    thirds_distance: float = Field(ge=0, description="saliency centroid to nearest thirds point")
    horizon_tilt_deg: float | None = None
    border_cut: bool = Field(description="the salient subject touches the frame border")
    total_prelim: float = Field(ge=0, le=1, description="theme-weighted sum")
    passed: bool = Field(description="above the theme's hard constraints")
    reasons: list[str] = Field(default_factory=list, description="e.g. low_q_tech")
    scorecard_version: str
    theme: str
    theme_hash: str


class RankingRecord(BaseModel):
    """One row of ``ranking``: a frame's contest within its cluster (and as an opener)."""

    model_config = ConfigDict(extra="forbid")

    frame_id: str
    cluster: int
    contender: bool = Field(description="among the cluster's top contenders by total_prelim")
    elo: float | None = None
    wins: int = 0
    losses: int = 0
    hero: bool = False
    alternate_rank: int | None = Field(None, description="1 = first alternate to the hero")
    opener_finalist: bool = False
    opener_elo: float | None = None
    rationale: str | None = Field(None, description="the judge's words for its last win")
    judge: str = Field(description="heuristic, endpoint:<model>, or fallback:<reason>")
    theme_hash: str
    reason: str | None = Field(
        None,
        description="why the frame was not in a contest: failed_constraints, not_a_contender, "
        "outlier, no_scores, no_cluster",
    )


class Judgment(BaseModel):
    """One pairwise judgment (kept in ``ranking/<date>/judgments.json`` and the cache)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: str = Field(description="frame id")
    b: str
    winner: str
    rationale: str = ""
    stage: Literal["cluster", "opener"]
    judge: str
    cached: bool = False
    fallback_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class JudgeSpend(BaseModel):
    """What the day's judging used against its budgets."""

    model_config = ConfigDict(extra="forbid")

    judge: str
    model: str | None = None
    pairs: int = 0
    pair_budget: int = 0
    cache_hits: int = 0
    fallbacks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    token_budget: int = 0
    cost_usd: float = 0.0


class JudgmentsDocument(BaseModel):
    """Every judgment of the day and the spend, for audit and ``curated_list``."""

    model_config = ConfigDict(extra="forbid")

    date: str
    theme_hash: str
    spend: JudgeSpend
    judgments: list[Judgment] = Field(default_factory=list)


class ThemeRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    hash: str


class CuratedListItem(BaseModel):
    """One chosen frame, in rank order, with why it is there."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(ge=1)
    frame_id: str
    cluster_id: int
    role: str
    scores: dict[str, float]
    diversity_tags: list[str] = Field(description="axis:value, e.g. time_of_day:night")
    tags: dict[str, str] = Field(description="the same as a machine map axis -> value")
    reasons: list[str]
    artifacts: dict[str, str] = Field(description="storage keys: frame, export copy")
    elo: float | None = None
    rationale: str | None = None


class CuratedListAudit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    created_at: datetime.datetime
    optimizer: dict[str, Any]
    judge: JudgeSpend
    seeds: dict[str, int]


class CuratedListDocument(BaseModel):
    """``curated_list/<date>.json``: the day's selection as a portable, reasoned list."""

    model_config = ConfigDict(extra="forbid")

    version: Literal["1"] = "1"
    date: str
    theme: ThemeRef
    items: list[CuratedListItem]
    coverage: dict[str, dict[str, int]] = Field(description="axis -> value -> frames chosen")
    low_coverage: dict[str, str] = Field(
        default_factory=dict, description="axis -> a prompt such as 'need more night shots?'"
    )
    audit: CuratedListAudit
