"""Extract frames from a video with ffmpeg (graphs built with ffmpeg-python).

Three modes (``FrameSettings.mode``):

- ``scene``: one decode, one ffmpeg process. The decoded frames are split in two branches.
  The *analysis* branch is downscaled to ``analysis_width`` (luma only, area filter).
  With ``scene_detector: ffmpeg`` it runs ``select='gt(scene,T)'``, which prints the cut
  timestamps and scores. With ``combined`` (the default) every analysis frame goes
  through a named pipe to ``media.scene_cuts.CutDetector`` in a thread of this process,
  which also finds cuts that change the picture's structure but not its brightness,
  dissolves and fades (one boundary each, at the incoming shot's first clean frame).
  The *full* branch selects a superset of candidates with a lower threshold on its own
  (full resolution) scene score and writes them as JPEGs. The cuts then pick their
  frames among the candidates by exact timestamp; a cut without a candidate (rare for
  ffmpeg's cuts; the rule for the end of a dissolve or fade) is fetched by a second
  pass: runs that seek to the key frame before their frames and stop after the last.
  Frames are saved at full resolution whatever the analysis width.
- ``keyframes``: only key frames are decoded (``-skip_frame nokey``).
- ``interval``: the first frame at or after every multiple of ``interval_s``.

``include_first_frame`` and ``min_scene_gap_s`` apply to scene mode; the other modes start
with the first (key) frame anyway. Every mode gives at least one frame for a decodable
video: a clip without a cut gives its first frame even when ``include_first_frame`` is off.
``max_frames_per_video`` keeps the highest cut scores in scene mode (the first frame always
stays) and evenly spaced frames otherwise.

Every ffmpeg call of a video shares one time limit (``time_limit_s``: a floor plus seconds
per media second, from ``FrameSettings.ffmpeg_timeout_*``); past it ffmpeg is killed and
``FrameTimeoutError`` raised. ffmpeg runs tied to this process (``run_ffmpeg``).

Timestamps are taken in ffmpeg's microsecond time base (``settb=AVTB``), so both branches
name the same frame by the same integer.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import ffmpeg
from PIL import Image

from style_pipeline.contracts.ingest import FrameSettings
from style_pipeline.media.ffmpeg_bin import FfmpegTimeoutError, ffmpeg_exe, run_ffmpeg
from style_pipeline.media.workdirs import work_dir

if TYPE_CHECKING:  # scene_cuts imports cv2: loaded by the combined detector only
    from style_pipeline.media.scene_cuts import Boundary, CutDetector

JPEG_QSCALE = 2  # ffmpeg mjpeg -q:v: 2 is visually lossless (1 only adds bytes)
CANDIDATE_RATIO = 0.5  # full-branch candidate threshold = scene_threshold * this
MERGE_GAP_S = 2.0  # fetch runs closer than this decode as one (no extra seek)
SEEK_PAST_US = 1000  # a fetch seeks this far past its key frame (lands on it)
_STDERR_TAIL = 3000
_US = 1_000_000
_FRAME_LINE = re.compile(r"^frame:\s*(\d+)\s+pts:\s*(-?\d+)")
_SCORE_LINE = re.compile(r"^lavfi\.scene_score=([0-9.eE+-]+)")
_MARK = "style_pipeline.frame"


class FrameExtractionError(RuntimeError):
    """ffmpeg could not extract frames; the message ends with ffmpeg's stderr tail."""


class FrameTimeoutError(FrameExtractionError):
    """ffmpeg ran past the video's time limit (``ffmpeg_timeout_*``) and was killed."""


@dataclass(frozen=True)
class ExtractedFrame:
    """One saved JPEG: its time in the video, file, size and scene score (cuts only:
    ffmpeg's scene score, or for the combined detector's other boundaries the score of
    ``scene_cuts.Boundary``)."""

    timestamp_s: float
    path: Path
    width: int
    height: int
    scene_score: float | None = None


@dataclass(frozen=True)
class _Mark:
    """A frame as printed by ``metadata=print``: pts in microseconds, scene score if any."""

    pts_us: int
    score: float | None


def frame_id(media_id: str, timestamp_s: float, mode: str) -> str:
    """Content address of a frame: sha256 of media id, millisecond timestamp and mode."""
    ms = round(timestamp_s * 1000)
    return hashlib.sha256(f"{media_id}:{ms}:{mode}".encode()).hexdigest()


def parse_marks(text: str) -> list[_Mark]:
    """Frames listed by ffmpeg's ``metadata=print`` (``frame:N pts:P ...`` + key lines)."""
    marks: list[_Mark] = []
    for line in text.splitlines():
        if m := _FRAME_LINE.match(line):
            marks.append(_Mark(int(m.group(2)), None))
        elif (m := _SCORE_LINE.match(line)) and marks:
            marks[-1] = _Mark(marks[-1].pts_us, float(m.group(1)))
    return marks


def thin_cuts(cuts: list[_Mark], min_gap_s: float, first_pts_us: int | None) -> list[_Mark]:
    """Drop cuts closer than ``min_gap_s`` to the previous kept frame (in time order)."""
    kept: list[_Mark] = []
    last = first_pts_us
    for cut in sorted(cuts, key=lambda c: c.pts_us):
        if last is None or cut.pts_us - last >= round(min_gap_s * _US):
            kept.append(cut)
            last = cut.pts_us
    return kept


def cap_marks(marks: list[_Mark], cap: int, *, by_score: bool) -> list[_Mark]:
    """At most ``cap`` marks in time order: highest scores (score-less marks first, e.g.
    the first frame) when ``by_score``, else evenly spaced over the list."""
    if len(marks) <= cap:
        return list(marks)
    if by_score:
        ranked = sorted(marks, key=lambda m: (m.score is not None, -(m.score or 0.0), m.pts_us))
        return sorted(ranked[:cap], key=lambda m: m.pts_us)
    if cap == 1:
        return [marks[0]]
    step = (len(marks) - 1) / (cap - 1)
    return [marks[round(i * step)] for i in range(cap)]


def time_limit_s(settings: FrameSettings, duration_s: float | None) -> float:
    """ffmpeg's time budget for one video: floor + per media second, at most the maximum
    (the maximum when the duration is unknown)."""
    if duration_s is None or duration_s <= 0:
        return settings.ffmpeg_timeout_max_s
    budget = settings.ffmpeg_timeout_floor_s + settings.ffmpeg_timeout_per_media_s * duration_s
    return min(budget, settings.ffmpeg_timeout_max_s)


def media_duration_s(video: Path) -> float | None:
    """The container's declared duration (header only, nothing decoded); None if unknown."""
    try:
        with av.open(str(video), metadata_errors="ignore", timeout=30) as container:
            if container.duration:
                return container.duration / av.time_base
    except av.FFmpegError:
        return None  # ffmpeg itself will say what is wrong with the file
    return None


@dataclass(frozen=True)
class _Deadline:
    """The time limit of one video (``limit_s``) and when it ends (``time.monotonic()``)."""

    limit_s: float
    end: float


def _run(stream, video: Path, deadline: _Deadline) -> None:
    """Run one ffmpeg graph; it must finish by the video's deadline."""
    args = stream.global_args("-hide_banner", "-nostdin", "-loglevel", "error").compile(
        cmd=ffmpeg_exe(), overwrite_output=True
    )
    try:
        proc = run_ffmpeg(args, deadline.end - time.monotonic())
    except FfmpegTimeoutError as exc:
        raise FrameTimeoutError(
            f"{video.name}: ffmpeg ran past the time limit of {deadline.limit_s:.4g} s for "
            "this video and was killed (FrameSettings.ffmpeg_timeout_*)"
        ) from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip()[-_STDERR_TAIL:]
        raise FrameExtractionError(
            f"ffmpeg failed on {video.name} (exit {proc.returncode}): {tail or 'no output'}"
        )


def _jpeg_output(stream, pattern: Path, **extra):
    """Numbered JPEGs of every frame of ``stream``, one per frame, in output order.

    JPEG (JFIF) means BT.601 full-range YCbCr: convert from the video's own matrix and
    range (read from its tags; BT.601 when untagged). ``accurate_rnd`` avoids the 1-3 level
    colour bias of swscale's fast path (about 30 ms per 1080p frame, selected frames only).
    """
    stream = stream.filter("scale", out_color_matrix="bt601", out_range="pc", flags="accurate_rnd")
    options = {"f": "image2", "start_number": 0, "fps_mode": "passthrough", "q:v": JPEG_QSCALE}
    target = str(pattern.parent).replace("%", "%%") + "/" + pattern.name  # literal % in dirs
    return ffmpeg.output(stream, target, **options, **extra)


def _printed(stream, path: Path):
    """Mark every frame (so frames without metadata print too) and print it to ``path``."""
    return stream.filter("metadata", "add", key=_MARK, value=1).filter(
        "metadata", "print", file=str(path)
    )


def _written(work: Path, prefix: str, marks_file: Path) -> list[tuple[_Mark, Path]]:
    """Pair the printed marks with the JPEGs ffmpeg wrote, in output order."""
    marks = parse_marks(marks_file.read_text()) if marks_file.exists() else []
    files = sorted(work.glob(f"{prefix}*.jpg"))
    if len(marks) != len(files):
        raise FrameExtractionError(
            f"ffmpeg listed {len(marks)} frames but wrote {len(files)} files in {work}"
        )
    return list(zip(marks, files, strict=True))


def _scene_pass(
    video: Path, work: Path, s: FrameSettings, deadline: _Deadline
) -> tuple[list[tuple[_Mark, Path]], list[_Mark]]:
    """The single decode: candidates at full resolution, cuts from the analysis branch."""
    src = ffmpeg.input(str(video)).video.filter("settb", "AVTB").split()
    cuts_file, cand_file = work / "cuts.txt", work / "cand.txt"
    scaled = (
        src[0]
        .filter("scale", f"min(iw,{s.analysis_width})", -2, flags="area")
        .filter("format", "gray")
    )
    expr = f"eq(n,0)+gt(scene,{s.scene_threshold * CANDIDATE_RATIO})"
    full = _jpeg_output(_printed(src[1].filter("select", expr), cand_file), work / "c%06d.jpg")
    if s.scene_detector == "ffmpeg":
        # Both branches always pass the first frame (``eq(n,0)``): an output that receives
        # no frame at all makes ffmpeg exit 234 ("Nothing was written into output file"),
        # which is exactly what a video without a cut would do. The first frame is not a
        # cut, so it is taken off the analysis marks below.
        analysis = scaled.filter("select", f"eq(n,0)+gt(scene,{s.scene_threshold})").filter(
            "metadata", "print", file=str(cuts_file)
        )
        _run(ffmpeg.merge_outputs(ffmpeg.output(analysis, "-", f="null"), full), video, deadline)
        marks = parse_marks(cuts_file.read_text()) if cuts_file.exists() else []
        return _written(work, "c", cand_file), marks[1:]
    # combined: every analysis frame goes to the detector through a named pipe; the
    # printed marks give each one's timestamp.
    fifo = work / "analysis.y4m"
    analysis = ffmpeg.output(
        _printed(scaled, cuts_file), str(fifo), f="yuv4mpegpipe", fps_mode="passthrough"
    )
    from style_pipeline.media.scene_cuts import CutDetector

    detector = CutDetector(s.scene_threshold, s.structure_threshold, s.gradual_transitions)
    boundaries = _run_analysed(
        ffmpeg.merge_outputs(analysis, full), video, deadline, fifo, detector
    )
    frames = parse_marks(cuts_file.read_text()) if cuts_file.exists() else []
    if len(frames) != detector.frames:
        raise FrameExtractionError(
            f"{video.name}: ffmpeg listed {len(frames)} analysis frames, the detector read "
            f"{detector.frames}"
        )
    return _written(work, "c", cand_file), [
        _Mark(frames[b.index].pts_us, b.score) for b in boundaries
    ]


def _run_analysed(
    stream, video: Path, deadline: _Deadline, fifo: Path, detector: CutDetector
) -> list[Boundary]:
    """Run the graph while a thread feeds ``detector`` from ``fifo``; its boundaries."""
    from style_pipeline.media.scene_cuts import FifoAnalysis, TruncatedStreamError

    reader = FifoAnalysis(fifo, detector)
    reader.start()
    try:
        _run(stream, video, deadline)
    except BaseException as exc:
        try:
            reader.finish()  # never leave the thread waiting on the pipe
        except TruncatedStreamError:
            pass  # ffmpeg stopped mid-frame: its own error says why
        except Exception as analysis_error:
            if type(exc) is FrameExtractionError:  # ffmpeg failed writing to a closed pipe
                raise FrameExtractionError(
                    f"{video.name}: scene analysis failed: {analysis_error!r}"
                ) from analysis_error
        raise
    return reader.finish()


def keyframes_us(video: Path, until_us: int) -> list[int]:
    """Times (us from the video's start) of the video key frames up to ``until_us``, from
    the packets (nothing decoded); empty when PyAV cannot read them."""
    try:
        with av.open(str(video), metadata_errors="ignore", timeout=30) as container:
            stream = container.streams.video[0]
            start = container.start_time or 0  # us, as ffmpeg's -ss counts
            found: list[int] = []
            for packet in container.demux(stream):
                if packet.pts is None or packet.time_base is None:
                    continue
                t_us = round(float(packet.pts * packet.time_base) * _US) - start
                if packet.is_keyframe:
                    found.append(t_us)
                if t_us > until_us + 10 * _US:  # past any reordering delay
                    break
            return sorted(found)
    except (av.FFmpegError, IndexError):
        return []


def fetch_plan(pts_us: list[int], keys_us: list[int]) -> list[tuple[int | None, list[int]]]:
    """How to decode the frames at these timestamps: ``(seek_us, frames)`` runs, each
    from the key frame at ``seek_us`` (None: from the start) to its last frame.

    Frames decode from their key frame (the last at or before them); runs closer than
    ``MERGE_GAP_S`` become one (decoding the gap is cheaper than another ffmpeg).
    """
    runs: list[tuple[int | None, list[int]]] = []
    for p in sorted(pts_us):
        i = bisect.bisect_right(keys_us, p) - 1
        key = keys_us[i] if i > 0 else None  # the first key frame: just start there
        if runs and (key is None or key - runs[-1][1][-1] <= MERGE_GAP_S * _US):
            runs[-1][1].append(p)
        else:
            runs.append((key, [p]))
    return runs


def _fetch_pass(video: Path, work: Path, pts_us: list[int], deadline: _Deadline) -> dict[int, Path]:
    """Decode the frames with these exact timestamps; each run seeks to the key frame
    before its first frame (when that is not the first) and stops after its last. Runs
    go side by side on machines with 4+ CPUs, up to half the CPUs at once (each ffmpeg
    threads its own decoding)."""
    plan = fetch_plan(pts_us, keyframes_us(video, max(pts_us)))
    workers = max(1, min(len(plan), (os.cpu_count() or 2) // 2))

    def run(n: int) -> dict[int, Path]:
        return _fetch_run(video, work, n, *plan[n], deadline)

    if workers == 1:  # in this thread: an interrupt kills the run at once
        runs = [run(n) for n in range(len(plan))]
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="frame-fetch") as pool:
            runs = list(pool.map(run, range(len(plan))))
    return {pts: path for found in runs for pts, path in found.items()}


def _fetch_run(
    video: Path, work: Path, n: int, seek_us: int | None, group: list[int], deadline: _Deadline
) -> dict[int, Path]:
    """Fetch run ``n`` of ``fetch_plan``: its frames, written as ``f<n>_*.jpg``."""
    expr = "+".join(f"eq(pts,{p})" for p in group)
    options = {}
    if seek_us is not None:
        # Just past the key frame, so the seek lands on it; -noaccurate_seek drops no
        # frame before that point (the key frame itself may be a wanted one).
        options = {"ss": f"{(seek_us + SEEK_PAST_US) / _US:.6f}", "noaccurate_seek": None}
    stream = ffmpeg.input(str(video), **options).video.filter("settb", "AVTB")
    marks_file = work / f"fetch{n}.txt"
    out = _jpeg_output(
        _printed(stream.filter("select", expr), marks_file),
        work / f"f{n}_%06d.jpg",
        vframes=len(group),
    )
    if seek_us is not None:
        # Timestamps as in the scene pass (start time taken off, the seek point not).
        out = out.global_args("-copyts", "-start_at_zero")
    _run(out, video, deadline)
    return {m.pts_us: path for m, path in _written(work, f"f{n}_", marks_file)}


def _scene_frames(
    video: Path, work: Path, s: FrameSettings, deadline: _Deadline
) -> list[tuple[_Mark, Path]]:
    candidates, cuts = _scene_pass(video, work, s, deadline)
    if not candidates:
        raise FrameExtractionError(f"no decodable video frame in {video.name}")
    by_pts = {mark.pts_us: path for mark, path in candidates}
    opening = _Mark(candidates[0][0].pts_us, None)  # eq(n,0): the first candidate
    kept = thin_cuts(cuts, s.min_scene_gap_s, opening.pts_us if s.include_first_frame else None)
    # The first shot has no cut: it is represented by the opening frame. Without
    # ``include_first_frame`` that frame is left out, unless no cut is left at all: a
    # video always gives at least one frame.
    first = opening if s.include_first_frame or not kept else None
    chosen = cap_marks(([first] if first else []) + kept, s.max_frames_per_video, by_score=True)
    missing = [m.pts_us for m in chosen if m.pts_us not in by_pts]
    if missing:
        by_pts.update(_fetch_pass(video, work, missing, deadline))
    lost = [m.pts_us for m in chosen if m.pts_us not in by_pts]
    if lost:
        raise FrameExtractionError(f"{video.name}: frames at pts {lost} (us) not found")
    return [(m, by_pts[m.pts_us]) for m in chosen]


def _plain_frames(
    video: Path, work: Path, s: FrameSettings, deadline: _Deadline
) -> list[tuple[_Mark, Path]]:
    """Keyframes or interval mode: every selected frame is written, then capped."""
    if s.mode == "keyframes":
        stream = ffmpeg.input(str(video), skip_frame="nokey").video.filter("settb", "AVTB")
    else:  # the first frame at or after each multiple of interval_s
        slot = f"floor(t/{s.interval_s}+1e-6)"
        expr = f"isnan(prev_selected_t)+gt({slot},{slot.replace('(t/', '(prev_selected_t/')})"
        stream = ffmpeg.input(str(video)).video.filter("settb", "AVTB").filter("select", expr)
    marks_file = work / "marks.txt"
    _run(_jpeg_output(_printed(stream, marks_file), work / "k%06d.jpg"), video, deadline)
    written = _written(work, "k", marks_file)
    kept = cap_marks([m for m, _ in written], s.max_frames_per_video, by_score=False)
    chosen = {m.pts_us for m in kept}
    return [(m, p) for m, p in written if m.pts_us in chosen]


def extract_video_frames(
    video: Path, out_dir: Path, settings: FrameSettings, duration_s: float | None = None
) -> list[ExtractedFrame]:
    """Extract frames of ``video`` into ``out_dir`` as full-resolution JPEGs.

    Files are named ``frame_<milliseconds>.jpg``; the result is in time order. Raises
    ``FrameExtractionError`` (with ffmpeg's stderr tail) when ffmpeg fails, and
    ``FrameTimeoutError`` when it runs past ``time_limit_s`` for ``duration_s`` (read
    from the container when not given). ffmpeg's scratch files live in a work folder
    under ``media.workdirs.work_root()``.
    """
    # Absolute, so a name such as ``concat:x.mp4`` is never read as an ffmpeg protocol.
    video, out_dir = Path(video).resolve(), Path(out_dir)
    if not video.is_file():
        raise FrameExtractionError(f"no such video file: {video}")
    if duration_s is None:
        duration_s = media_duration_s(video)
    limit_s = time_limit_s(settings, duration_s)
    deadline = _Deadline(limit_s, time.monotonic() + limit_s)
    out_dir.mkdir(parents=True, exist_ok=True)
    with work_dir("extract-") as work:
        if settings.mode == "scene":
            picked = _scene_frames(video, work, settings, deadline)
        else:
            picked = _plain_frames(video, work, settings, deadline)
        frames: list[ExtractedFrame] = []
        seen_ms: set[int] = set()
        for mark, path in sorted(picked, key=lambda mp: mp[0].pts_us):
            ms = round(mark.pts_us / 1000)
            if ms in seen_ms:
                continue  # two frames within one millisecond share a frame id: keep one
            seen_ms.add(ms)
            target = out_dir / f"frame_{ms:09d}.jpg"
            shutil.move(path, target)
            with Image.open(target) as img:
                width, height = img.size
            frames.append(ExtractedFrame(mark.pts_us / _US, target, width, height, mark.score))
        return frames
