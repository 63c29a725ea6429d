"""Ranking benchmark: hero accuracy of the heuristic judge on generated "moments".

    .venv/bin/python benchmarks/bench_ranking.py [--moments 16] [--write-docs]

A moment is one demo photo (``style_pipeline.demo.samples.make_photos``) shot four times:
the original (the best by construction) and three near-identical takes, each slightly
re-framed (a 1-3 % crop) and spoiled one way: blurred (Gaussian, sigma 2.5 px at 640 px),
under-exposed (mean luminance about 0.12) or noisy (Gaussian, sigma 18/255). The whole set
goes through the real pipeline in a temp root (``raw_media`` -> ``frames`` ->
``quality_scores`` -> ``embeddings`` -> ``scores``, Dagster in-process, CLIP on the
``auto`` profile: tiny random weights when no pretrained model is on disk, which makes
``aesthetic`` and ``vibe`` noise); then ``stages.ranking.rank_day`` judges each moment
with the heuristic judge, the moments given as the clusters (so the number measures the
judge and the scorecard, not HDBSCAN). Reports hero accuracy, what the misses lost to,
the same accuracy by ``q_tech`` alone, pairs used and seconds; ``--write-docs`` replaces
the "Curation: ranking (hero accuracy)" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import polars as pl
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_section import write_section  # noqa: E402

DAY = "2026-01-15"
HEADING = "## Curation: ranking (hero accuracy)"
KINDS = ("best", "blurred", "dark", "noisy")


def _reframe(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    cut = rng.uniform(0.01, 0.03)
    dy, dx = int(h * cut * rng.random()), int(w * cut * rng.random())
    crop = rgb[dy : h - int(h * cut) + dy, dx : w - int(w * cut) + dx]
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)


def _spoil(rgb: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    img = _reframe(rgb, rng).astype(np.float32) / 255
    if kind == "blurred":
        img = cv2.GaussianBlur(img, (0, 0), 2.5)
    elif kind == "dark":
        mean = float(img.mean())
        img = np.power(img, np.log(0.12) / np.log(max(mean, 0.05)))
    elif kind == "noisy":
        img = img + rng.normal(0, 18 / 255, img.shape).astype(np.float32)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def make_moments(drop: Path, moments: int, seed: int) -> dict[str, tuple[int, str]]:
    """Write the shots into ``drop``; file name -> (moment, kind)."""
    from style_pipeline.demo.samples import make_photos

    sources = Path(tempfile.mkdtemp(prefix="moments_src_"))
    photos = make_photos(sources, moments + 1, seed=seed, size=(640, 480))[:moments]  # no PNG
    rng, truth = np.random.default_rng(seed), {}
    for m, path in enumerate(photos):
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        for kind in KINDS:
            out = rgb if kind == "best" else _spoil(rgb, kind, rng)
            name = f"m{m:02d}_{kind}.jpg"
            Image.fromarray(out).save(drop / name, format="JPEG", quality=92)
            truth[name] = (m, kind)
    return truth


def run(moments: int, seed: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench_ranking_"))
    for name, sub in (("DROP", "drop"), ("STORAGE", "storage")):
        os.environ[f"STYLE_PIPELINE_{name}"] = str(root / sub)
    os.environ["DAGSTER_HOME"] = str(root / "dagster_home")
    os.environ.setdefault("STYLE_PIPELINE_CURATION__CLIP__PROFILE", "auto")
    (root / "dagster_home").mkdir()
    (root / "drop" / DAY).mkdir(parents=True)
    truth = make_moments(root / "drop" / DAY, moments, seed)

    import dagster as dg

    from style_pipeline.curation.themes import load_theme
    from style_pipeline.defs.run import load_defs
    from style_pipeline.settings import load_settings
    from style_pipeline.stages.ranking import RankingTables, rank_day
    from style_pipeline.storage.store import Store

    started = time.perf_counter()
    defs = load_defs()
    result = dg.materialize(
        [*defs.assets], partition_key=DAY, resources=defs.resources,
        selection=dg.AssetSelection.from_string("*scores"),
    )  # fmt: skip
    assert result.success, "the upstream of scores failed"
    pipeline_s = time.perf_counter() - started
    settings = load_settings()
    store = Store(settings.storage_root())

    def table(asset: str) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO(store.read_bytes(f"{asset}/{DAY}.parquet")))

    frames, scores = table("frames"), table("scores")
    moment_of = {
        r["frame_id"]: truth[Path(r["source_name"]).name] for r in frames.iter_rows(named=True)
    }
    clusters = pl.DataFrame(
        {"frame_id": list(moment_of), "cluster": [m for m, _ in moment_of.values()]},
        schema={"frame_id": pl.String, "cluster": pl.Int64},
    )
    theme = load_theme(settings.curation.theme, settings.curation.themes_dir)
    started = time.perf_counter()
    ranked, document, facts = rank_day(RankingTables(frames, scores, clusters), store, theme, DAY)
    ranking_s = time.perf_counter() - started
    heroes = {m: moment_of[f][1] for m, f in facts.heroes.items()}
    q = dict(zip(scores["frame_id"], scores["q_tech"], strict=True))
    by_q = {}
    for fid, (m, kind) in moment_of.items():
        if m not in by_q or q[fid] > q[by_q[m][0]]:
            by_q[m] = (fid, kind)
    means = (
        scores.join(
            pl.DataFrame({"frame_id": list(moment_of), "kind": [k for _, k in moment_of.values()]}),
            on="frame_id",
        )
        .group_by("kind")
        .agg(pl.col("q_tech", "total_prelim", "passed").mean())
    )
    return {
        "moments": moments,
        "shots": len(frames),
        "hero_correct": sum(k == "best" for k in heroes.values()),
        "judged": len(heroes),
        "misses": Counter(k for k in heroes.values() if k != "best"),
        "q_tech_correct": sum(k == "best" for _, k in by_q.values()),
        "pairs": facts.spend.pairs,
        "pair_budget": facts.spend.pair_budget,
        "aesthetic_source": scores["aesthetic_source"][0],
        "means": {r["kind"]: r for r in means.iter_rows(named=True)},
        "pipeline_s": pipeline_s,
        "ranking_s": ranking_s,
    }


def report(r: dict) -> str:
    acc = r["hero_correct"] / max(r["moments"], 1)
    lines = [
        HEADING,
        "",
        "```",
        f".venv/bin/python benchmarks/bench_ranking.py --moments {r['moments']} --write-docs",
        "```",
        "",
        f"{r['moments']} generated moments x 4 near-identical shots (the original, and "
        "re-framed takes blurred, under-exposed or noisy), 640x480, through the real "
        "`raw_media -> frames -> quality_scores -> embeddings -> scores` assets, then "
        "`rank_day` with the heuristic judge and the moments as clusters. CLIP profile "
        f"`auto`; aesthetic head: `{r['aesthetic_source']}` (without pretrained CLIP on disk "
        "`aesthetic` and `vibe` come from tiny random weights: noise the judge must see past).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| hero accuracy (heuristic judge, total_prelim) | **{acc:.1%}** "
        f"({r['hero_correct']}/{r['moments']}) |",
        f"| hero by `q_tech` alone | {r['q_tech_correct'] / max(r['moments'], 1):.1%} |",
        "| chance (1 of 4) | 25.0% |",
        f"| misses lost to | {dict(r['misses']) or 'none'} |",
        f"| pairs used / day budget | {r['pairs']} / {r['pair_budget']} |",
        f"| pipeline to scores / ranking | {r['pipeline_s']:.1f} s / {r['ranking_s']:.2f} s |",
        "",
        "| shot | mean q_tech | mean total_prelim | passed |",
        "|---|---|---|---|",
    ]
    for kind in KINDS:
        m = r["means"].get(kind)
        if m:
            lines.append(
                f"| {kind} | {m['q_tech']:.3f} | {m['total_prelim']:.3f} | {m['passed']:.0%} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moments", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    text = report(run(args.moments, args.seed))
    print(text)
    if args.write_docs:
        write_section(HEADING, text)


if __name__ == "__main__":
    main()
