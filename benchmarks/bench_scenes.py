"""Scene-mode frame extraction against ffmpeg decode-only and PySceneDetect.

Generates a 30 s 1080p30 H.264 video with known hard cuts (``make_cut_video``: textured
shots with pans, moving discs and grain), then measures, round-robin, best of N wall time:

1. ``ffmpeg -i X -f null -``: decode only, the floor for any single-pass tool;
2. PySceneDetect ``detect(path, AdaptiveDetector())`` (OpenCV backend, default
   auto-downscale to ~256 px wide);
3. ``extract_video_frames`` in scene mode (default ``FrameSettings``), which also writes
   the full-resolution JPEGs of the first frame and every cut.

Cut recall / precision use a +-2 frame tolerance (one-to-one matching). CPU seconds
(user + system, all threads and children) are reported next to wall time because the
machine may be shared. Usage::

    .venv/bin/python benchmarks/bench_scenes.py [--seconds 30] [--repeats 3]
        [--write-docs docs/benchmarks.md | --no-docs]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import scenedetect
from scenedetect import AdaptiveDetector, detect
from scenedetect.scene_manager import compute_downscale_factor

from style_pipeline.contracts.ingest import FrameSettings
from style_pipeline.demo.samples import make_cut_video, shot_plan
from style_pipeline.media import frames as frames_mod
from style_pipeline.media.ffmpeg_bin import ffmpeg_exe
from style_pipeline.media.frames import extract_video_frames

SECTION = "## Frame extraction (scene mode)"
from docs_section import DOCS, write_section  # noqa: E402

TOLERANCE = 2  # frames
FPS = 30
SHOTS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)  # shot lengths (s) drawn for the 30 s video


@dataclass
class Result:
    name: str
    wall_s: list[float]
    cpu_s: list[float]
    cuts: list[int]  # detected cut frame indices

    @property
    def best(self) -> float:
        return min(self.wall_s)

    @property
    def cpu(self) -> float:
        return min(self.cpu_s)


def match(truth: list[int], found: list[int], tol: int = TOLERANCE) -> tuple[float, float]:
    """Recall and precision of ``found`` against ``truth`` (greedy one-to-one, +-tol)."""
    free = sorted(found)
    hits = 0
    for t in truth:
        best = min(free, key=lambda f: abs(f - t), default=None)
        if best is not None and abs(best - t) <= tol:
            free.remove(best)
            hits += 1
    recall = hits / len(truth) if truth else 1.0
    precision = hits / len(found) if found else 1.0
    return recall, precision


def _cpu() -> float:
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], list[int]]) -> tuple[float, float, list[int]]:
    cpu, start = _cpu(), time.perf_counter()
    cuts = fn()
    return time.perf_counter() - start, _cpu() - cpu, cuts


def run_decode(video: Path) -> list[int]:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(video)]
    subprocess.run([*cmd, "-f", "null", "-"], check=True)
    return []


def run_peer(video: Path) -> list[int]:
    scenes = detect(str(video), AdaptiveDetector())
    return [start.frame_num for start, _ in scenes[1:]]


FETCH_PASSES = [0]  # second-pass runs of extract_video_frames (cuts with no candidate JPEG)


def _counting(fetch):
    def wrapper(*args, **kwargs):
        FETCH_PASSES[0] += 1
        return fetch(*args, **kwargs)

    return wrapper


def run_ours(video: Path, out: Path) -> list[int]:
    frames = extract_video_frames(video, out, FrameSettings(mode="scene"))
    for f in frames:
        f.path.unlink()
    return [round(f.timestamp_s * FPS) for f in frames if f.scene_score is not None]


def ffmpeg_version() -> str:
    out = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout
    return out.split("\n", 1)[0].removeprefix("ffmpeg version ").split(" Copyright")[0]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def render(results: dict[str, Result], truth: list[int], meta: dict) -> str:
    decode, peer, ours = results["decode"], results["peer"], results["ours"]
    lines = [
        SECTION,
        "",
        f"Machine: {os.cpu_count()} CPU cores ({cpu_model()}), shared with other jobs "
        f"(load average at start {meta['load']:.1f}). Python {platform.python_version()}, "
        f"ffmpeg {ffmpeg_version()} (imageio-ffmpeg build unless a system ffmpeg is on PATH), "
        f"PySceneDetect {scenedetect.__version__}, OpenCV {cv2.__version__}. "
        "Command: `.venv/bin/python benchmarks/bench_scenes.py`.",
        "",
        f"Input: `make_cut_video`, {meta['seconds']:.0f} s, 1920x1080, {FPS} fps, H.264 "
        f"(x264 veryfast, crf 23), {len(truth)} hard cuts in {len(truth) + 1} shots with pans, "
        f"moving discs and grain (generated in {meta['gen_s']:.1f} s wall, "
        f"{meta['gen_cpu']:.1f} s CPU). Best of "
        f"{meta['repeats']} runs, round-robin; tolerance +-{TOLERANCE} frames.",
        "",
        "| tool | wall s (best) | CPU s (best) | cuts found | recall | precision |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (
        ("decode", "`ffmpeg -i X -f null -` (decode only)"),
        ("peer", "PySceneDetect `detect(path, AdaptiveDetector())`"),
        ("ours", "`extract_video_frames` scene mode (+ JPEGs)"),
    ):
        r = results[key]
        if key == "decode":
            scores = "| - | - | - |"
        else:
            rec, prec = match(truth, r.cuts)
            scores = f"| {len(r.cuts)} | {rec:.3f} | {prec:.3f} |"
        lines.append(f"| {label} | {r.best:.2f} | {r.cpu:.2f} {scores}")
    vs_decode, vs_peer = ours.best / decode.best, ours.best / peer.best
    rec_o, prec_o = match(truth, ours.cuts)
    rec_p, _ = match(truth, peer.cuts)
    goals = [
        ("ours / decode-only wall <= 1.5", vs_decode <= 1.5, f"{vs_decode:.2f}"),
        ("ours / PySceneDetect wall <= 1.0", vs_peer <= 1.0, f"{vs_peer:.2f}"),
        ("recall >= PySceneDetect's", rec_o >= rec_p, f"{rec_o:.3f} vs {rec_p:.3f}"),
        ("no false cuts", prec_o == 1.0, f"precision {prec_o:.3f}"),
    ]
    lines += [
        "",
        f"Ratios: ours / decode-only = **{vs_decode:.2f}x** wall "
        f"({ours.cpu / decode.cpu:.2f}x CPU); ours / PySceneDetect = **{vs_peer:.2f}x** wall "
        f"({ours.cpu / peer.cpu:.2f}x CPU).",
        "",
        "| goal | result | value |",
        "|---|---|---|",
        *(f"| {g} | {'met' if ok else '**missed**'} | {v} |" for g, ok, v in goals),
        "",
        "How scene mode runs: one ffmpeg process, one decode. `split` feeds (a) an analysis "
        "branch scaled to `analysis_width` (320 px, luma, area filter) with "
        "`select=gt(scene,T)` + `metadata=print` for the cut list, and (b) a full-resolution "
        "branch whose own scene score at `T/2` picks candidate frames, written as `-q:v 2` "
        "JPEGs (converted to BT.601 full range with accurate rounding). Cuts pick their JPEG by "
        "exact timestamp (microsecond time base); a cut without a candidate is fetched by a "
        f"second, early-stopping pass ({FETCH_PASSES[0]} such passes in this run). "
        f"PySceneDetect downscales 1920 px frames by {compute_downscale_factor(1920):g} "
        "(its default) before its HSV content analysis.",
        "",
        "Caveats: every cut in this video is a clear hard cut (each shot changes exposure "
        "band; ffmpeg scores >= ~0.53 at 320 px, in-shot motion <= ~0.06), so recall does not "
        "separate the tools here; dissolves and fades are not covered. Wall times on this "
        "shared 2-core machine vary by 10-30% between runs (the CPU column is steadier); "
        "the ours / decode-only ratio measured 1.07x-1.34x in repeated runs, 1.81x once "
        "under heavier load with an older, costlier colour conversion. Sample generation "
        "is dominated by x264 (`-preset veryfast`) CPU time.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-docs", type=Path, default=DOCS)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    meta = {"load": os.getloadavg()[0], "seconds": args.seconds, "repeats": args.repeats}
    with tempfile.TemporaryDirectory(prefix="bench_scenes_") as tmp:
        video, out = Path(tmp) / "cuts_1080p.mp4", Path(tmp) / "frames"
        start, cpu = time.perf_counter(), _cpu()
        cut_times = make_cut_video(
            video, shot_seconds=shot_plan(args.seconds, seed=args.seed, choices=SHOTS), fps=FPS
        )
        meta["gen_s"], meta["gen_cpu"] = time.perf_counter() - start, _cpu() - cpu
        truth = [round(t * FPS) for t in cut_times]
        print(f"generated {video.name} in {meta['gen_s']:.1f} s; cuts at frames {truth}")
        frames_mod._fetch_pass = _counting(frames_mod._fetch_pass)
        runners = {
            "decode": lambda: run_decode(video),
            "peer": lambda: run_peer(video),
            "ours": lambda: run_ours(video, out),
        }
        results = {k: Result(k, [], [], []) for k in runners}
        for _ in range(args.repeats):
            for key, fn in runners.items():
                wall, cpu, cuts = timed(fn)
                results[key].wall_s.append(wall)
                results[key].cpu_s.append(cpu)
                results[key].cuts = cuts
                print(f"{key:7s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  cuts {cuts}", flush=True)
    text = render(results, truth, meta)
    print(text)
    if not args.no_docs:
        write_section(SECTION, text, args.write_docs)
        print(f"wrote section to {args.write_docs}", file=sys.stderr)


if __name__ == "__main__":
    main()
