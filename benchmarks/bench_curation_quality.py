"""Dedup and quality-gate benchmark: ours vs imagededup (PHash) and cleanvision, one run.

    .venv/bin/python benchmarks/bench_curation_quality.py [--out DIR] [--no-write]

Needs the bench extras (imagededup, cleanvision, scikit-image). Builds the corpus of
benchmarks/curation_corpus.py, then measures side by side:
- near-duplicate pairs: precision / recall / F1 and images/s (hashing + grouping);
- blur, underexposure (dark) and overexposure (light) detection F1;
- throughput of our quality metrics; scaling of the Hamming index vs a dense scan.
Results are printed and written to the "Curation: dedup and quality" section of
docs/benchmarks.md (only that section is replaced).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from curation_corpus import CorpusImage, build_corpus  # noqa: E402
from docs_section import write_section  # noqa: E402

from style_pipeline.contracts.curation import DedupConfig, QualityConfig, QualityRecord
from style_pipeline.curation import hashing  # noqa: E402
from style_pipeline.curation.dedup import HashedFrame, group_frames
from style_pipeline.curation.faces import FaceDetector  # noqa: E402
from style_pipeline.curation.iqa import IqaScorer  # noqa: E402
from style_pipeline.curation.quality import load_analysis_image, measure, with_gate

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
HEADING = "## Curation: dedup and quality"
Pair = tuple[str, str]


def prf(predicted: set[Pair], truth: set[Pair]) -> tuple[float, float, float]:
    tp = len(predicted & truth)
    p = tp / len(predicted) if predicted else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def pairs_of_groups(groups: Iterable[Iterable[str]]) -> set[Pair]:
    return {tuple(sorted(p)) for g in groups for p in itertools.combinations(set(g), 2)}


def truth_pairs(items: list[CorpusImage]) -> set[Pair]:
    by_base: dict[str, list[str]] = {}
    for item in items:
        by_base.setdefault(item.base, []).append(item.path.name)
    return pairs_of_groups(by_base.values())


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def best_of(runs: int, fn):
    """(result, seconds) of the fastest of ``runs`` calls (the machine is shared)."""
    results = [timed(fn) for _ in range(runs)]
    return min(results, key=lambda r: r[1])


def ours_groups(items: list[CorpusImage], workers: int) -> dict[str, str]:
    """frame name -> group id."""
    hashes = hashing.hash_files([i.path for i in items], workers=workers)
    frames = [
        HashedFrame(i.path.name, h.phash, h.dhash) for i, h in zip(items, hashes, strict=True)
    ]
    rows = group_frames(frames, "2026-01-01", DedupConfig())
    return dict(zip(rows["frame_id"], rows["group_id"], strict=True))


def ours_dedup(items: list[CorpusImage], workers: int) -> set[Pair]:
    groups: dict[str, list[str]] = {}
    for fid, gid in ours_groups(items, workers).items():
        groups.setdefault(gid, []).append(fid)
    return pairs_of_groups(groups.values())


def missed_variants(items: list[CorpusImage]) -> dict[str, int]:
    """Per near-duplicate kind: copies not grouped with their base."""
    group = ours_groups(items, workers=2)
    base_group = {i.base: group[i.path.name] for i in items if i.variant == "base"}
    missed: dict[str, int] = {}
    for i in items:
        if i.variant != "base":
            lost = group[i.path.name] != base_group[i.base]
            missed[i.variant] = missed.get(i.variant, 0) + int(lost)
    return missed


def imagededup_dedup(folder: Path, threshold: int) -> set[Pair]:
    from imagededup.methods import PHash

    found = PHash(verbose=False).find_duplicates(
        image_dir=str(folder), max_distance_threshold=threshold
    )
    return {tuple(sorted((a, b))) for a, dups in found.items() for b in dups}


def cleanvision_run(folder: Path, issues: dict):
    from cleanvision import Imagelab

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab = Imagelab(data_path=str(folder))
        lab.find_issues(issues)
    return lab


def cleanvision_dedup(folder: Path) -> set[Pair]:
    lab = cleanvision_run(folder, {"exact_duplicates": {}, "near_duplicates": {}})
    sets = lab.info["exact_duplicates"]["sets"] + lab.info["near_duplicates"]["sets"]
    return pairs_of_groups([[Path(p).name for p in s] for s in sets])


DEFECT_OF = {"blurry": "blur", "underexposed": "dark", "overexposed": "overexposed"}
CLEANVISION_ISSUE = {"blurry": "blurry", "underexposed": "dark", "overexposed": "light"}


def detection_f1(flags: dict[str, bool], items: list[CorpusImage], defect: str) -> float:
    truth = {i.path.name for i in items if i.variant == defect}
    flagged = {name for name, f in flags.items() if f}
    return prf(flagged, truth)[2]


def ours_quality(items: list[CorpusImage], config: QualityConfig) -> dict[str, QualityRecord]:
    faces, iqa = FaceDetector(config.faces), IqaScorer(config.iqa)
    out = {}
    for item in items:
        image = load_analysis_image(item.path, config.analysis_long_edge)
        out[item.path.name] = with_gate(
            measure(image, item.path.name, faces=faces, iqa=iqa), config
        )
    return out


SEPARATION = {  # gate metric per defect, and whether the defect makes it low
    "blurry": ("blur", "focus", True),
    "underexposed": ("dark", "luminance_p99", True),
    "overexposed": ("overexposed", "highlight_clip", False),
}


def separation(records: dict[str, QualityRecord], items: list[CorpusImage]):
    """Per gate: (metric, worst value among defect images, worst among the others)."""
    variant = {i.path.name: i.variant for i in items}
    out = {}
    for code, (defect, metric, low) in SEPARATION.items():
        pos = [getattr(r, metric) for n, r in records.items() if variant[n] == defect]
        neg = [getattr(r, metric) for n, r in records.items() if variant[n] != defect]
        out[code] = (metric, max(pos), min(neg)) if low else (metric, min(pos), max(neg))
    return out


def cleanvision_quality(folder: Path) -> dict[str, dict[str, bool]]:
    lab = cleanvision_run(folder, {"blurry": {}, "dark": {}, "light": {}})
    issues = lab.issues
    names = [Path(p).name for p in issues.index]
    return {
        code: dict(zip(names, issues[f"is_{cv}_issue"].astype(bool), strict=True))
        for code, cv in CLEANVISION_ISSUE.items()
    }


def video_frames(items: list[CorpusImage], out: Path, count: int = 40) -> list[Path]:
    """1280x720 frames (sources resized) for a throughput figure at video resolution."""
    import cv2
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, item in enumerate(i for i in items if i.variant == "base"):
        if k == count:
            break
        rgb = np.asarray(Image.open(item.path).convert("RGB"))
        frame = cv2.resize(rgb, (1280, 720), interpolation=cv2.INTER_CUBIC)
        paths.append(out / f"frame{k:03d}.jpg")
        Image.fromarray(frame).save(paths[-1], quality=95)
    return paths


def index_scaling(sizes=(20_000, 60_000), radii=(8, 12)) -> list[tuple[int, int, float, float]]:
    """Self-join wall time of the multi-index vs a dense scan on random 64-bit codes."""
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        codes = rng.integers(0, 2**64 - 1, n, dtype=np.uint64)
        for r in radii:
            _, t_index = timed(hashing._indexed_pairs, codes, codes, r, True)
            _, t_dense = timed(hashing._brute_pairs, codes, codes, r, True)
            rows.append((n, r, t_index, t_dense))
    return rows


def run(out: Path) -> str:
    logging.disable(logging.WARNING)
    corpus, t_build = timed(build_corpus, out)
    dedup_items, quality_items = corpus
    dedup_dir, quality_dir = out / "dedup", out / "quality"
    n_dedup, n_quality = len(dedup_items), len(quality_items)
    n_bases = sum(i.variant == "base" for i in dedup_items)
    truth = truth_pairs(dedup_items)

    # Import everything and touch each code path once, outside the timings.
    import cleanvision  # noqa: F401
    import imagededup.methods  # noqa: F401

    hashing.hash_files([dedup_items[0].path])
    results = {}
    for name, fn in [
        ("ours (2 threads)", lambda: ours_dedup(dedup_items, workers=2)),
        ("ours (1 thread)", lambda: ours_dedup(dedup_items, workers=1)),
        ("imagededup PHash, threshold 10 (default)", lambda: imagededup_dedup(dedup_dir, 10)),
        ("imagededup PHash, threshold 12", lambda: imagededup_dedup(dedup_dir, 12)),
        ("cleanvision exact + near duplicates", lambda: cleanvision_dedup(dedup_dir)),
    ]:
        pairs, seconds = best_of(2, fn)
        results[name] = (*prf(pairs, truth), n_dedup / seconds)
        print(name, [round(x, 4) for x in results[name]], flush=True)

    missed = missed_variants(dedup_items)
    config = QualityConfig()
    records, t_ours_q = best_of(2, lambda: ours_quality(quality_items, config))
    cv_flags, t_cv_q = best_of(2, lambda: cleanvision_quality(quality_dir))
    reasons = {name: r.reasons for name, r in records.items()}
    detection = {}
    for code, defect in DEFECT_OF.items():
        ours_flags = {name: code in r for name, r in reasons.items()}
        detection[code] = (
            detection_f1(ours_flags, quality_items, defect),
            detection_f1(cv_flags[code], quality_items, defect),
        )
        print(code, detection[code], flush=True)
    noisy = detection_f1({n: "noisy" in r for n, r in reasons.items()}, quality_items, "noise")
    frames = video_frames(dedup_items, out / "frames")
    frame_items = [CorpusImage(p, p.stem, "base") for p in frames]
    _, t_frames = best_of(2, lambda: ours_quality(frame_items, config))
    scaling = index_scaling()
    faces, iqa = FaceDetector(config.faces), IqaScorer(config.iqa)
    return report(
        n_bases=n_bases,
        n_dedup=n_dedup,
        n_quality=n_quality,
        n_truth=len(truth),
        t_build=t_build,
        dedup=results,
        missed=missed,
        detection=detection,
        separation=separation(records, quality_items),
        noisy=noisy,
        ours_q=n_quality / t_ours_q,
        cv_q=n_quality / t_cv_q,
        frames_q=len(frames) / t_frames,
        scaling=scaling,
        faces=faces.backend,
        iqa=iqa.status,
        load=os.getloadavg()[1],
    )


def report(**r) -> str:
    cfg_d, cfg_q = DedupConfig(), QualityConfig()
    ours = r["dedup"]["ours (2 threads)"]
    imd = r["dedup"]["imagededup PHash, threshold 10 (default)"]
    lines = [
        HEADING,
        "",
        f"Run on {platform.machine()} / Python {platform.python_version()}, 2 CPU cores shared "
        f"with other jobs (5-minute load average {r['load']:.1f} at the end of the run, so "
        "absolute speeds are noisy; tools ran interleaved in one process, best of 2 runs), "
        "no GPU, by `.venv/bin/python benchmarks/bench_curation_quality.py` "
        "(bench extras imagededup, cleanvision, scikit-image installed in the project venv; "
        "no separate env was needed).",
        "",
        f"Corpus (benchmarks/curation_corpus.py): {r['n_bases']} distinct base images cut from "
        "15 photographs shipped in pip packages (scikit-image data, scikit-learn sample "
        "images, matplotlib sample data): each whole picture, its quadrants, its centre and "
        "edge-centre half crops, long edge <= 320 px, JPEG q95. Dedup set: bases + 5 "
        f"near-duplicates each (JPEG q40, half size, centred 90% crop, +15% brightness, "
        f"2-degree rotation) = {r['n_dedup']} images, {r['n_truth']} true pairs (every pair "
        "inside a family). Quality set: bases + 4 defects each (Gaussian blur sigma 2-4 px, "
        f"dark x0.2-0.3, overexposed x2-3 clipped, Gaussian noise 6-12%) = {r['n_quality']} "
        "images.",
        "",
        "### Near-duplicate pairs",
        "",
        "| tool | precision | recall | F1 | images/s |",
        "|---|---|---|---|---|",
    ]
    for name, (p, rec, f1, ips) in r["dedup"].items():
        lines.append(f"| {name} | {p:.4f} | {rec:.4f} | {f1:.4f} | {ips:.0f} |")
    lines += [
        "",
        f"Ours: pHash <= {cfg_d.phash_threshold}, or pHash <= "
        f"{cfg_d.phash_threshold + cfg_d.borderline} with dHash <= {cfg_d.dhash_threshold}, "
        "grouped transitively (union-find); images/s includes decoding, both hashes and "
        f"grouping. Goal F1 >= 0.95 at precision >= 0.99: **F1 {ours[2]:.4f}, precision "
        f"{ours[0]:.4f}** ({'met' if ours[2] >= 0.95 and ours[0] >= 0.99 else 'missed'}); "
        f"speed {ours[3] / imd[3]:.2f}x imagededup's default run "
        f"({'met' if ours[3] >= imd[3] else 'missed'}; imagededup encodes in 2 processes, "
        "ours decodes in 2 threads at reduced JPEG scale; best of 2 runs each). Copies "
        "not grouped with their base: "
        + ", ".join(f"{k} {v}/{r['n_bases']}" for k, v in r["missed"].items())
        + ". pHash moves with the framing, so most misses are 90% crops; the false pairs "
        "are half crops of the periodic brick texture, which do look alike. imagededup "
        "returns pairs within its threshold without transitive grouping, so copies close to "
        "a sibling but not to each other are lost; cleanvision's near duplicates are "
        "images with *identical* pHash, hence its precision 1 and low recall.",
        "",
        "### Defect detection (F1)",
        "",
        "| defect | ours | cleanvision |",
        "|---|---|---|",
    ]
    for code, (a, b) in r["detection"].items():
        lines.append(f"| {code} ({CLEANVISION_ISSUE[code]}) | {a:.4f} | {b:.4f} |")
    lines += [
        f"| noisy (no cleanvision check) | {r['noisy']:.4f} | - |",
        "",
        f"Goal >= 0.9 each: "
        f"{'met' if all(a >= 0.9 for a, _ in r['detection'].values()) else 'missed'}. "
        "The thresholds (QualityConfig defaults: "
        f"focus < {cfg_q.blur_focus_min:g}, p99 luminance < {cfg_q.dark_p99_max:g} or "
        f"mean < {cfg_q.dark_mean_max:g}, > {cfg_q.bright_clip_max:g} of pixels at 255 with "
        f"mean > {cfg_q.bright_clip_mean_min:g} or mean > {cfg_q.bright_mean_max:g}, noise "
        f"sigma > {cfg_q.noise_sigma_max:g}) were tuned on the tuning split of "
        "benchmarks/heldout_corpus.py plus this corpus's images of the same photographs, so "
        "these F1 values are partly in-sample (see the held-out section). Margins on this "
        "corpus (worst defect image vs worst clean/other image): "
        + "; ".join(
            f"{code} {metric} {a:.4g} vs {b:.4g}"
            for code, (metric, a, b) in r["separation"].items()
        )
        + ". The dusk crops of `rocket` are as dark as a -2 EV exposure (p99 0.32-0.42) and "
        "are labelled clean here, so the stricter dark threshold flags them. cleanvision's "
        "blurry and light "
        "checks use its own defaults, which flag many clean images here. Noise F1 is lower "
        "because fine texture (grass, gravel) raises the wavelet noise estimate.",
        "",
        "### Throughput",
        "",
        f"- Our quality metrics (decode, normalize to long edge {cfg_q.analysis_long_edge}, all "
        f"metrics + gate; faces: {r['faces']}; BRISQUE: {r['iqa']['brisque']}; CLIP-IQA: "
        f"{r['iqa']['clip_iqa']}): {r['ours_q']:.0f} images/s on the <= 320 px corpus, "
        f"{r['frames_q']:.0f} images/s on 1280x720 JPEG frames; cleanvision's "
        f"blurry/dark/light run: {r['cv_q']:.0f} images/s.",
        "- Hamming self-join on random 64-bit codes, multi-index (4 x 16-bit blocks) vs dense "
        "numpy scan:",
        "",
        "| codes | radius | multi-index s | dense s |",
        "|---|---|---|---|",
    ]
    for n, radius, t_index, t_dense in r["scaling"]:
        lines.append(f"| {n} | {radius} | {t_index:.2f} | {t_dense:.2f} |")
    lines += [
        "",
        "Up to radius 11 a block differs in at most 2 bits and the index is several times "
        "faster than the dense scan; at radius 12-15 (3 bits per block, where the dedup "
        "defaults sit: two searches, pHash <= 12 and dHash <= 12) about 4% of random pairs "
        "share a block neighbour, so the gain is small and the cost still grows roughly "
        "quadratically (a 64-bit code at radius 12 is a wide ball). `radius_pairs` scans "
        "densely for small inputs and radii >= 16. `DedupConfig.lookback_days` bounds the "
        "earlier-days index for long histories.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="corpus folder (default: a temp dir)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_curation_") as tmp:
        text = run(args.out or Path(tmp))
    print(text)
    if not args.no_write:
        write_section(HEADING, text, DOC)
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
