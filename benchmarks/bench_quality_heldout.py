"""Quality gate on photographs it was not tuned on: tuning vs held-out split, before and after.

    .venv/bin/python benchmarks/bench_quality_heldout.py [--tune] [--write-docs]

Builds benchmarks/heldout_corpus.py (split by source photograph), measures every image with
curation.quality and reports blur / dark / overexposed F1 per split for the gate before
this change (its rule and thresholds, re-applied to the same records: the old metrics are
still columns) and after (QualityConfig defaults). ``--tune`` prints the thresholds the
tuning data alone selects (best F1, midpoint of the widest tied interval) on the tuning
split plus the tuning photographs' images of benchmarks/curation_corpus.py.
``--write-docs`` replaces the "Curation: quality gate on held-out photographs" section.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from curation_corpus import build_corpus  # noqa: E402
from docs_section import write_section  # noqa: E402
from heldout_corpus import HELDOUT, SPLITS, TUNING, available_photos, heldout_images  # noqa: E402

from style_pipeline.contracts.curation import QualityConfig, QualityRecord
from style_pipeline.curation.quality import analysis_image, load_analysis_image, measure, with_gate

HEADING = "## Curation: quality gate on held-out photographs"
CLASSES = {"blurry": "blur", "underexposed": "dark", "overexposed": "overexposed"}
Labelled = list[tuple[str, QualityRecord]]  # (variant, record)


def before(r: QualityRecord) -> set[str]:
    """The gate as it was (tuned on curation_corpus.py only)."""
    return {
        code
        for code, hit in {
            "blurry": r.sharpness < 200.0,
            "underexposed": r.luminance_p99 < 0.30 or r.mean_luminance < 0.08,
            "overexposed": r.highlight_clip > 0.005 or r.mean_luminance > 0.92,
        }.items()
        if hit
    }


def after(r: QualityRecord) -> set[str]:
    return set(r.reasons)


def f1(rows: Labelled, rule: Callable[[QualityRecord], set[str]], code: str) -> float:
    tp = fp = fn = 0
    for variant, record in rows:
        p, t = code in rule(record), variant == CLASSES[code]
        tp, fp, fn = tp + (p and t), fp + (p and not t), fn + (t and not p)
    return 2 * tp / max(2 * tp + fp + fn, 1)


def misses(rows: Labelled, code: str) -> list[str]:
    """Frame ids the gate gets wrong for ``code`` (FN: missed defect, FP: false alarm)."""
    out = []
    for variant, record in rows:
        p, t = code in record.reasons, variant == CLASSES[code]
        if p != t:
            out.append(f"{record.frame_id} ({'FP' if p else 'FN'})")
    return out


def heldout_records(split: str, config: QualityConfig) -> Labelled:
    out = []
    for item in heldout_images(split):
        image = analysis_image(Image.fromarray(item.image), config.analysis_long_edge)
        out.append((item.variant, with_gate(measure(image, item.name), config)))
    return out


def corpus_records(out: Path, config: QualityConfig, photos: tuple[str, ...]) -> Labelled:
    """curation_corpus.py's quality set, restricted to images cut from ``photos``."""
    _, items = build_corpus(out)
    rows = []
    for item in items:
        if item.base.split("-")[0] in photos:
            image = load_analysis_image(item.path, config.analysis_long_edge)
            variant = {"base": "clean", "noise": "noise"}.get(item.variant, item.variant)
            rows.append((variant, with_gate(measure(image, item.path.name), config)))
    return rows


def tuned_threshold(rows: Labelled, code: str, metric: str) -> tuple[float, float]:
    """(threshold, F1) of ``metric < threshold`` for ``code``: best F1 on ``rows``, the
    midpoint of the widest interval of thresholds that reach it."""
    values = np.array([getattr(r, metric) for _, r in rows])
    truth = np.array([v == CLASSES[code] for v, _ in rows])
    levels = np.unique(values)
    cuts = (levels[1:] + levels[:-1]) / 2
    scores = []
    for cut in cuts:
        p = values < cut
        tp, fp, fn = (p & truth).sum(), (p & ~truth).sum(), (~p & truth).sum()
        scores.append(2 * tp / max(2 * tp + fp + fn, 1))
    best = np.flatnonzero(np.array(scores) >= max(scores) - 1e-12)
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)
    run = max(runs, key=lambda r: levels[r[-1] + 1] - levels[r[0]])
    return float((levels[run[0]] + levels[run[-1] + 1]) / 2), float(max(scores))


def run(tune: bool) -> str:
    logging.disable(logging.WARNING)
    config = QualityConfig()
    splits = {split: heldout_records(split, config) for split in SPLITS}
    with tempfile.TemporaryDirectory(prefix="bench_heldout_") as tmp:
        if tune:
            rows = splits["tuning"] + corpus_records(Path(tmp), config, TUNING)
            for code, metric in (("blurry", "focus"), ("underexposed", "luminance_p99")):
                print(f"tuned {code}: {metric} <", tuned_threshold(rows, code, metric))
        corpus = corpus_records(Path(tmp) / "c", config, tuple(p for p in SPLITS["heldout"]))
    table = {
        (split, name): [f1(rows, rule, code) for code in CLASSES]
        for split, rows in [*splits.items(), ("corpus-heldout", corpus)]
        for name, rule in (("before", before), ("after", after))
    }
    for key, values in table.items():
        print(key, [round(v, 4) for v in values])
    return report(splits, table, config)


def report(splits: dict[str, Labelled], table: dict, config: QualityConfig) -> str:
    counts = {s: (len(rows), len(available_photos(s))) for s, rows in splits.items()}
    lines = [
        HEADING,
        "",
        "By `.venv/bin/python benchmarks/bench_quality_heldout.py --write-docs` (CPU only). "
        "Corpus: benchmarks/heldout_corpus.py. Photographs shipped in pip packages "
        "(scikit-image data, scikit-learn sample images, matplotlib's grace_hopper) are split "
        "**by photograph**, fixed in the module: tuning = " + ", ".join(TUNING) + "; "
        "held-out = " + ", ".join(HELDOUT) + " (a test checks they never share a photograph). "
        "Each photograph gives 6 native-resolution crops (35-100% of each side, no resize), "
        "each crop a clean copy plus Gaussian / motion / defocus blur, -2..-4 EV and "
        "+1.5..+3 EV from the crop's metered exposure (linear light, shot + read noise, "
        "sensor clip, gamma), Gaussian or Poisson noise and JPEG q15-40, at random "
        "strengths; all but the JPEG defect saved as JPEG q95. Images: "
        + ", ".join(f"{s} {n} from {p} photographs" for s, (n, p) in counts.items())
        + ". Positives of a class are its defect; everything else (clean, other defects) "
        "is negative.",
        "",
        "How the thresholds were set: features and rules were compared, and thresholds "
        "chosen (best F1, midpoint of the widest tied interval: `--tune` prints them), on "
        "the tuning split plus the tuning photographs' images of the older corpus "
        "(benchmarks/curation_corpus.py) only; the held-out rows below were computed once "
        "the rule was fixed. The held-out photographs are also in the older corpus, whose "
        "thresholds (the *before* gate) were tuned on all 15 photographs, so *before* is "
        "not held out from them; *after* is.",
        "",
        "| split | gate | blurry F1 | underexposed F1 | overexposed F1 |",
        "|---|---|---|---|---|",
    ]
    for (split, name), (b, d, o) in table.items():
        lines.append(f"| {split} | {name} | {b:.4f} | {d:.4f} | {o:.4f} |")
    held = table[("heldout", "after")]
    lines += [
        "",
        "(corpus-heldout: the older corpus's images cut from the held-out photographs, "
        "320-px downscaled bases with its own defects.)",
        "",
        f"Goal F1 >= 0.9 on the held-out split for all three: "
        f"**{'met' if min(held) >= 0.9 else 'missed'}**. After = QualityConfig defaults: "
        f"blurry when focus < {config.blur_focus_min:g} (per 64-px tile and direction, RMS "
        "1-px over RMS 4-px luminance difference, the smallest direction, 75th percentile "
        "over textured tiles: 1/4 for a surface smooth at the pixel scale, about 1/2 in "
        "focus, independent of contrast, resolution and how much of the frame is textured); "
        f"underexposed when p99 luminance < {config.dark_p99_max:g} or mean < "
        f"{config.dark_mean_max:g}; overexposed when > {config.bright_clip_max:g} of pixels "
        f"sit at level 255 and the mean is > {config.bright_clip_mean_min:g}, or the mean is "
        f"> {config.bright_mean_max:g}. Before: Laplacian variance of the stretched "
        "luminance < 200 (falls with resolution and with smooth content, so native-"
        "resolution crops of soft scenes read as blurry and motion blur along one axis as "
        "sharp), p99 < 0.30 (misses -2 EV), any 0.5% at 255 (flags dark portraits with a "
        "white collar).",
        "",
        "Held-out errors after the change (frame ids are `<photo>-c<crop>~<defect>-<kind>`):",
        "",
    ]
    for code in CLASSES:
        wrong = misses(splits["heldout"], code)
        lines.append(f"- {code}: " + (", ".join(wrong) if wrong else "none"))
    lines += [
        "",
        "Motion blur on the noisy night-sky crops of `rocket` keeps enough 1-px difference "
        "across the motion to read as in focus; -2 EV on a high-contrast crop leaves its "
        "highlights above the dark threshold; grace_hopper's white collar sits at level 255 "
        "in a mid-toned frame; these are the limits of histogram and "
        "structure-function rules without a learned model.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", action="store_true", help="print tuning-split thresholds")
    parser.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md")
    args = parser.parse_args()
    text = run(args.tune)
    print(text)
    if args.write_docs:
        write_section(HEADING, text)
        print("wrote docs/benchmarks.md")


if __name__ == "__main__":
    main()
