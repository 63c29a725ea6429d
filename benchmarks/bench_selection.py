"""Per-axis coverage of the theme selection vs picking by total_prelim alone vs facility location.

A generated day of frames with controlled axes: palette (a tint over the demo's photo
texture: warm, cool, neutral, vivid, muted), brightness (the demo's ``expose`` to a mean
luminance: day, dusk, night), orientation (image size) and people (a known face count;
face detection is not exercised). Values are skewed the way real days are (mostly day,
landscape, no people). ``total_prelim`` is simulated to favour bright frames, as q_tech
does. Embeddings are L2-normalised 8x8 Lab thumbnails (no model download); palette and
time of day are measured from the pixels with ``curation/coverage.py``, so the table also
reports how often the measured palette matches the intended one.

Methods, each keeping ``--budget`` frames: ``theme`` (``select_frames`` with role fit and
axis coverage), ``total_prelim`` (top by score) and ``facility_location`` (the existing
objective with quality_weight 0). Coverage of an axis = share of its values present in the
day that have at least one pick. Usage::

    .venv/bin/python benchmarks/bench_selection.py [--frames 300] [--budget 12] [--seeds 3]
        [--write-docs]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_section import write_section  # noqa: E402

from style_pipeline.contracts.curation import SelectionConfig  # noqa: E402
from style_pipeline.contracts.themes import Role, Theme  # noqa: E402
from style_pipeline.curation import coverage  # noqa: E402
from style_pipeline.curation.roles import role_probabilities  # noqa: E402
from style_pipeline.curation.selection import select_frames  # noqa: E402
from style_pipeline.curation.theme_greedy import ThemeTerms, axis_terms  # noqa: E402
from style_pipeline.demo.textures import expose, scene  # noqa: E402

SECTION = "## Selection coverage (theme roles and axes)"
TINTS = {  # intended palette -> RGB multiplier over a grey texture (then exposed)
    "warm": (1.0, 0.62, 0.3), "cool": (0.35, 0.62, 1.0), "neutral": (1.0, 1.0, 1.0),
    "vivid": (1.0, 0.0, 0.12), "muted": (1.0, 0.9, 0.8),
}  # fmt: skip
SHARES = {
    "palette": {"warm": 0.4, "cool": 0.3, "neutral": 0.15, "vivid": 0.1, "muted": 0.05},
    "time_of_day": {"day": 0.75, "dusk": 0.17, "night": 0.08},
    "orientation": {"landscape": 0.75, "portrait": 0.2, "square": 0.05},
    "people": {"none": 0.65, "one": 0.2, "few": 0.1, "crowd": 0.05},
}
EXPOSURE = {"day": 0.5, "dusk": 0.27, "night": 0.1}
SIZES = {"landscape": (96, 64), "portrait": (64, 96), "square": (80, 80)}
FACES = {"none": 0, "one": 1, "few": 3, "crowd": 8}


def make_day(n: int, seed: int):
    """Frames with intended axis values, measured tags, embeddings and total_prelim."""
    rng = np.random.default_rng(seed)
    intended, tags, vectors, prelim = [], [], [], []
    for _ in range(n):
        want = {a: str(rng.choice(list(s), p=list(s.values()))) for a, s in SHARES.items()}
        w, h = SIZES[want["orientation"]]
        grey = scene(rng, h, w, 1.0)
        rgb = expose(
            grey[..., None] * np.array(TINTS[want["palette"]], np.float32),
            EXPOSURE[want["time_of_day"]],
        )
        lum = float(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).mean() / 255)
        got = {
            "palette": coverage.palette_name(*coverage.dominant_colours(rgb, seed=seed)),
            "time_of_day": coverage.time_of_day(lum),
            "orientation": coverage.orientation(w, h),
            "people": str(coverage.people(FACES[want["people"]])),
        }
        lab = cv2.cvtColor(cv2.resize(rgb, (8, 8), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2LAB)
        v = lab.astype(np.float32).ravel() - 128
        intended.append(want)
        tags.append(got)
        vectors.append(v / np.linalg.norm(v))
        prelim.append(float(np.clip(0.35 + 0.6 * lum + rng.normal(0, 0.08), 0, 1)))
    return intended, tags, np.array(vectors, np.float32), np.array(prelim)


def theme_for(budget: int) -> Theme:
    roles = [
        Role(name="opener", quota=1), Role(name="anchor", quota=3),
        Role(name="body", quota=budget - 5), Role(name="closer", quota=1),
    ]  # fmt: skip
    return Theme(name="bench", version="1", vibe_prompts=["x"], roles=roles)


def pick(method: str, tags, x, prelim, budget: int, seed: int) -> list[int]:
    n = len(prelim)
    ids = [f"f{i:04d}" for i in range(n)]
    labels = np.zeros(n, dtype=np.int64)
    if method == "total_prelim":
        return [int(i) for i in np.argsort(-prelim, kind="stable")[:budget]]
    if method == "facility_location":
        cfg = SelectionConfig(budget=budget, per_cluster_k=None, quality_weight=0.0, seed=seed)
        res = select_frames(ids, prelim, x, labels, cfg)
    else:
        theme = theme_for(budget)
        cfg = SelectionConfig(budget=budget, per_cluster_k=None, seed=seed)
        scores = np.repeat(prelim[:, None], 5, axis=1)  # every score at total_prelim
        probs = role_probabilities(scores, theme.roles)
        axes = coverage.axis_values(theme)
        tag_ids, weights = axis_terms(tags, axes, {a: theme.emphasis(a) for a in axes})
        quotas = np.array([r.quota for r in theme.roles], np.float64)
        res = select_frames(
            ids, prelim, x, labels, cfg, theme=ThemeTerms(probs, quotas, tag_ids, weights)
        )
    return [i for i, d in enumerate(res.decisions) if d.keep]


def axis_coverage(tags, picked) -> dict[str, float]:
    out = {}
    for axis in SHARES:
        present = {t[axis] for t in tags}
        chosen = {tags[i][axis] for i in picked}
        out[axis] = len(chosen & present) / len(present)
    return out


def run(frames: int, budget: int, seeds: int):
    methods = ("theme", "total_prelim", "facility_location")
    cov = {m: {a: [] for a in SHARES} for m in methods}
    mean_prelim = {m: [] for m in methods}
    palette_ok = []
    for seed in range(seeds):
        intended, tags, x, prelim = make_day(frames, seed)
        palette_ok.append(
            np.mean([i["palette"] == t["palette"] for i, t in zip(intended, tags, strict=True)])
        )
        for m in methods:
            picked = pick(m, tags, x, prelim, budget, seed)
            for a, c in axis_coverage(tags, picked).items():
                cov[m][a].append(c)
            mean_prelim[m].append(float(prelim[picked].mean()))
    return cov, mean_prelim, float(np.mean(palette_ok))


def report(cov, mean_prelim, palette_ok, frames, budget, seeds) -> str:
    mean = {m: {a: float(np.mean(v)) for a, v in axes.items()} for m, axes in cov.items()}
    lines = [
        SECTION, "",
        f"`benchmarks/bench_selection.py --frames {frames} --budget {budget} --seeds {seeds}`: "
        f"generated days (skewed palette, brightness, orientation, people; see the module doc), "
        f"{budget} frames kept per method, mean over {seeds} seeds. Coverage = share of the "
        f"values present that day with at least one pick. Measured palette matched the "
        f"intended tint on {palette_ok:.0%} of frames.", "",
        "| axis | theme | total_prelim | facility location | theme / prelim | theme / FL |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for a in [*SHARES, "mean"]:
        row = {m: (np.mean(list(v.values())) if a == "mean" else v[a]) for m, v in mean.items()}
        t, p, f = row["theme"], row["total_prelim"], row["facility_location"]
        lines.append(f"| {a} | {t:.2f} | {p:.2f} | {f:.2f} | {t / p:.2f} | {t / f:.2f} |")
    mp = {m: np.mean(v) for m, v in mean_prelim.items()}
    lines += [
        "",
        f"Mean total_prelim of the picks: theme {mp['theme']:.3f}, total_prelim "
        f"{mp['total_prelim']:.3f}, facility location {mp['facility_location']:.3f}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--budget", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    cov, mp, ok = run(args.frames, args.budget, args.seeds)
    text = report(cov, mp, ok, args.frames, args.budget, args.seeds)
    print(text)
    if args.write_docs:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
