"""Deterministic generated media for ``make demo``, tests and benchmarks.

``make_cut_video`` renders shots with numpy/OpenCV directly as I420 planes and pipes them
into ffmpeg (libx264, yuv420p). Every shot has its own texture, tint and motion (a pan
over a textured canvas, moving discs, film grain), so a detector has to tell in-shot
motion from a cut. Each cut also moves to another exposure band (dark / mid / bright),
so every cut is a clear hard cut. The function returns the exact cut times.

Shots and photos look like focused, well exposed photographs to the curation quality
gate: soft multi-octave value noise for light, hard-edged shapes, and sparse crisp detail
(foliage speckle, text-like glyphs, wires) sized in pixels of the gate's 512 px analysis
image, so they pass its sharpness, noise and exposure checks at any resolution. Texture
is built once per shot or photo; a video frame is a crop of its shot's canvas.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from style_pipeline.demo.faces import make_demo_character, make_face_photos
from style_pipeline.demo.speech import (
    ESPEAK_RATE_HZ,
    EXTRA_SCRIPTS,
    TalkPlan,
    add_speech,
    espeak_binary,
    talk_seconds,
    voices,
    write_chat_log,
)
from style_pipeline.demo.textures import expose as _expose
from style_pipeline.demo.textures import fractal as _fractal
from style_pipeline.demo.textures import ink as _ink
from style_pipeline.demo.textures import scene as _scene
from style_pipeline.demo.textures import shapes as _shapes
from style_pipeline.demo.textures import unit as _unit
from style_pipeline.media.ffmpeg_bin import ffmpeg_exe

EXIF_ORIENTATION = 0x0112
EXIF_MAKE = 0x010F
EXIF_MODEL = 0x0110
_GRAIN_FIELDS = 3
_MAX_SHOT_DRAWS = 50
# Mean absolute luma difference (8-bit levels) between the frames either side of a cut.
# ffmpeg's scene score is about this difference / 100, so cuts score >= ~0.4.
MIN_CUT_LUMA_DIFF = 50.0
_STDERR_TAIL = 2000


@dataclass(frozen=True)
class SampleSet:
    """What ``populate_drop`` wrote: one cut video, photos and one corrupt file; with
    ``face_photos``, photos of real faces, and the reference character it wrote; with
    speech, the video's spoken answers and its chat log (``demo.speech``)."""

    video: Path
    cut_times: list[float]
    photos: list[Path]
    bad: Path
    faces: list[Path] = field(default_factory=list)
    character: Path | None = None  # the demo's reference folder, when it was written
    chat_log: Path | None = None  # <video stem>.chat.log, when the video has speech
    talk: TalkPlan | None = None  # the chat messages and spoken answers, video clock
    speech_note: str | None = None  # why the video has no speech (espeak-ng missing)
    # the short extra speaking clips: (video, its chat log, its plan)
    talks: list[tuple[Path, Path, TalkPlan]] = field(default_factory=list)

    def speaking_videos(self) -> list[Path]:
        """Every video with speech and a chat log (the cut video first)."""
        first = [self.video] if self.chat_log is not None else []
        return first + [video for video, _, _ in self.talks]


_KR, _KB = 0.2126, 0.0722  # BT.709
_KG = 1.0 - _KR - _KB


def _rgb_to_yuv(r: float, g: float, b: float) -> tuple[float, float, float]:
    """BT.709 limited-range Y, Cb, Cr (0-255 scale) of an RGB colour in [0, 1]."""
    luma = _KR * r + _KG * g + _KB * b
    return (
        16 + 219 * luma,
        128 + 224 * (b - luma) / (2 * (1 - _KB)),
        128 + 224 * (r - luma) / (2 * (1 - _KR)),
    )


@dataclass(frozen=True)
class _Shot:
    planes: tuple[np.ndarray, np.ndarray, np.ndarray]  # Y, U, V canvases, with a margin
    velocity: tuple[float, float]  # pan in px/frame (x, y)
    margin: int  # even
    shapes: list[tuple[np.ndarray, np.ndarray, int, tuple[float, float, float]]]


def cut_frames(shot_seconds: Sequence[float], fps: float) -> list[int]:
    """Index of the first frame of every shot after the first (each shot >= 1 frame)."""
    if not shot_seconds:
        raise ValueError("shot_seconds must not be empty")
    if any(s <= 0 for s in shot_seconds):
        raise ValueError(f"every shot needs a positive duration, got {list(shot_seconds)}")
    bounds = [round(sum(shot_seconds[: i + 1]) * fps) for i in range(len(shot_seconds))]
    if len(set(bounds)) != len(bounds) or bounds[0] < 1:
        raise ValueError(f"shots shorter than one frame at {fps} fps: {list(shot_seconds)}")
    return bounds[:-1]


_BANDS = ((0.03, 0.42), (0.28, 0.68), (0.50, 0.88))  # dark, mid, bright luma levels


def _make_shot(rng: np.random.Generator, band: int, width: int, height: int) -> _Shot:
    margin = max(16, width // 16) // 2 * 2
    h, w = height + 2 * margin, width + 2 * margin
    lo, hi = _BANDS[band]
    luma = lo + (hi - lo) * _scene(rng, h, w, _unit(width, height))
    tint = rng.uniform(0.72, 1.0, size=3)
    tint /= tint.max()
    ty, tu, tv = _rgb_to_yuv(*tint)
    t_luma = (ty - 16) / 219
    # The colour level * tint stays in gamut (level <= 1); its luma is level * t_luma.
    level = np.minimum(luma / t_luma, 1.0)
    half = cv2.resize(level, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    planes = (
        (16.5 + (ty - 16) * level).astype(np.uint8),
        (128.5 + (tu - 128) * half).astype(np.uint8),
        (128.5 + (tv - 128) * half).astype(np.uint8),
    )
    scale = width / 1920
    speed = rng.uniform(2.0, 6.0) * scale
    heading = rng.uniform(0, 2 * math.pi)
    shapes = []
    for _ in range(int(rng.integers(2, 5))):
        pos = rng.uniform((0, 0), (width, height))
        vel = rng.uniform(-18, 18, size=2) * scale
        radius = max(2, int(rng.uniform(40, 120) * scale))
        base = 0.8 if band == 0 else 0.15
        colour = _rgb_to_yuv(*np.clip(base + rng.uniform(-0.14, 0.14, size=3), 0, 1))
        shapes.append((pos, vel, radius, colour))
    velocity = (speed * math.cos(heading), speed * math.sin(heading))
    return _Shot(planes, velocity, margin, shapes)


def _next_shot(
    rng: np.random.Generator, band: int, last_luma: np.ndarray | None, width: int, height: int
) -> tuple[_Shot, int]:
    """The next shot, redrawn until its first frame differs clearly from ``last_luma``."""
    if last_luma is None:
        return _make_shot(rng, band, width, height), band
    for _ in range(_MAX_SHOT_DRAWS):
        band = (band + int(rng.integers(1, len(_BANDS)))) % len(_BANDS)
        shot = _make_shot(rng, band, width, height)
        first = _render(shot, 0, width, height, np.zeros_like(last_luma))[0]
        diff = float(cv2.absdiff(first, last_luma).mean())
        if diff >= MIN_CUT_LUMA_DIFF:
            return shot, band
    raise RuntimeError(f"no distinct shot after {_MAX_SHOT_DRAWS} draws (seed exhausted)")


def _ping_pong(travel: float, margin: int) -> float:
    """A pan offset in [-margin, margin] that bounces back at the canvas edges."""
    phase = (travel + margin) % (4 * margin)
    return abs(phase - 2 * margin) - margin


def _render(shot: _Shot, i: int, width: int, height: int, grain: np.ndarray) -> list[np.ndarray]:
    """Frame ``i`` of a shot as I420 planes [Y, U, V]."""
    m = shot.margin
    x, y = (m + int(round(_ping_pong(v * i, m) / 2)) * 2 for v in shot.velocity)
    py, pu, pv = shot.planes
    out = [
        cv2.add(py[y : y + height, x : x + width], grain),
        pu[y // 2 : (y + height) // 2, x // 2 : (x + width) // 2].copy(),
        pv[y // 2 : (y + height) // 2, x // 2 : (x + width) // 2].copy(),
    ]
    for pos, vel, radius, colour in shot.shapes:
        cx, cy = (pos + vel * i) % (width, height)
        for plane, value, sub in zip(out, colour, (1, 2, 2), strict=True):
            centre = (int(cx) // sub, int(cy) // sub)
            cv2.circle(plane, centre, max(1, radius // sub), int(value), -1, cv2.LINE_AA)
    return out


def make_cut_video(
    path: str | Path,
    *,
    width: int = 1920,
    height: int = 1080,
    fps: int = 30,
    shot_seconds: Sequence[float],
    seed: int = 0,
    crf: int = 23,
) -> list[float]:
    """Write an H.264 (yuv420p, BT.709) MP4 of hard-cut shots; return the cut times (s).

    A cut time is the timestamp of the first frame of a new shot (``frame_index / fps``).
    Frames are rendered directly as I420 planes, so ffmpeg only encodes
    (``-preset veryfast``). The same arguments give the same file.
    """
    if width % 2 or height % 2 or width < 32 or height < 32:
        raise ValueError(f"width and height must be even and >= 32, got {width}x{height}")
    cuts = cut_frames(shot_seconds, fps)
    total = round(sum(shot_seconds) * fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    grains = [
        rng.normal(0, 4, size=(height, width)).clip(0, 12).astype(np.uint8)
        for _ in range(_GRAIN_FIELDS)
    ]  # additive film grain on luma, cycled
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-r", str(fps),
        "-i", "pipe:0",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-color_range", "tv", "-movflags", "+faststart", str(path),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    stdin, stderr_pipe = proc.stdin, proc.stderr
    if stdin is None or stderr_pipe is None:  # both are PIPE above
        raise RuntimeError("ffmpeg was started without its stdin/stderr pipes")
    starts = [0, *cuts, total]
    band, last_luma = int(rng.integers(0, len(_BANDS))), None
    try:
        for shot_index in range(len(starts) - 1):
            shot, band = _next_shot(rng, band, last_luma, width, height)
            for i in range(starts[shot_index + 1] - starts[shot_index]):
                grain = grains[(starts[shot_index] + i) % _GRAIN_FIELDS]
                planes = _render(shot, i, width, height, grain)
                for plane in planes:
                    stdin.write(plane.data)  # the plane's buffer, as memoryview(plane)
            last_luma = planes[0]
    except BrokenPipeError:
        pass  # ffmpeg died: its stderr is reported below
    finally:
        try:
            stdin.close()
        except BrokenPipeError:
            pass
    stderr = stderr_pipe.read().decode(errors="replace")
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed writing {path}: {stderr[-_STDERR_TAIL:]}")
    return [c / fps for c in cuts]


def _photo(rng: np.random.Generator, index: int, size: tuple[int, int]) -> Image.Image:
    """A landscape-like RGB photo: sky and ground under a ridge line, hard-edged shapes,
    surface texture and fine marks, exposed to a mid-range mean luminance."""
    w, h = size
    unit = _unit(w, h)
    rows = np.arange(h, dtype=np.float32)[:, None]
    ridge = h * rng.uniform(0.3, 0.65) + h * 0.15 * (_fractal(rng, 1, w, w / 3, 2 * unit) - 0.5)
    sky, ground = rows < ridge, np.clip((rows - ridge) / h, 0, 1)
    c = rng.uniform(0.1, 0.9, size=(4, 3)).astype(np.float32)  # sky top/horizon, ground
    t = (rows / h)[..., None]
    rgb = np.where(
        sky[..., None], c[0] + (c[1] - c[0]) * t, c[2] + (c[3] - c[2]) * ground[..., None] * 2
    ).astype(np.float32)
    rgb += (0.25 * (_fractal(rng, h, w, w / 2, 8 * unit) - 0.5))[..., None]  # clouds, fields
    _shapes(rng, rgb, unit, 6 + index % 5)
    rgb *= (0.7 + 0.6 * _fractal(rng, h, w, 24 * unit, unit))[..., None]
    rgb *= (1 - 0.65 * _ink(rng, h, w, unit))[..., None]
    img = Image.fromarray(_expose(rgb, float(rng.uniform(0.38, 0.55))), "RGB")
    # A marker in the top-left corner of the stored pixels makes rotations testable.
    ImageDraw.Draw(img).rectangle((0, 0, w // 10, h // 10), fill=(255, 0, 0))
    return img


def make_photos(
    out_dir: str | Path, n: int, *, seed: int = 0, size: tuple[int, int] = (1600, 1200)
) -> list[Path]:
    """Write ``n`` photos: JPEGs with camera Make/Model, every third one stored with
    EXIF Orientation=6 (displayed rotated), and the last one a PNG with alpha (when n > 1).
    Each has a red marker in the top-left corner of its stored pixels.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if min(size) < 16:
        raise ValueError(f"photos must be at least 16x16, got {size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths: list[Path] = []
    for i in range(n):
        img = _photo(rng, i, size)
        if n > 1 and i == n - 1:
            alpha = Image.new("L", size, 255)
            ImageDraw.Draw(alpha).ellipse((0, 0, size[0] // 3, size[1] // 3), fill=0)
            img.putalpha(alpha)
            path = out / f"photo_{i:02d}.png"
            img.save(path, format="PNG")
        else:
            exif = Image.Exif()
            exif[EXIF_MAKE] = "StyleCam"
            exif[EXIF_MODEL] = f"SC-{100 + i}"
            exif[EXIF_ORIENTATION] = 6 if i % 3 == 1 else 1
            path = out / f"photo_{i:02d}.jpg"
            img.save(path, format="JPEG", quality=90, exif=exif.tobytes())
        paths.append(path)
    return paths


def make_bad_file(out_dir: str | Path, name: str = "corrupt_clip.mp4") -> Path:
    """Write a file with a video extension whose bytes are no media at all."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_bytes(b"this is not a video, just text pretending to be one\n" * 64)
    return path


def shot_plan(
    seconds: float, *, seed: int = 0, choices: Sequence[float] = (1.5, 2.0, 2.5, 3.0, 4.0)
) -> list[float]:
    """Random shot durations summing to ``seconds`` (at least two shots when possible)."""
    if seconds < 1:
        raise ValueError(f"seconds must be >= 1, got {seconds}")
    rng = np.random.default_rng(seed)
    allowed = [c for c in choices if c <= seconds / 2] or [seconds / 2]
    shots: list[float] = []
    remaining = seconds
    while remaining > 1e-6:
        length = float(rng.choice(allowed))
        if remaining - length < min(0.75, min(allowed)):
            length = remaining  # the last shot absorbs the remainder
        shots.append(round(length, 3))
        remaining = round(remaining - length, 6)
    return shots


def populate_drop(
    drop_dir: str | Path,
    *,
    seed: int = 0,
    video_seconds: float = 30.0,
    width: int = 1920,
    height: int = 1080,
    n_photos: int = 4,
    face_photos: int = 0,
    characters_dir: str | Path | None = None,
    speech: bool = True,
    extra_talks: int = len(EXTRA_SCRIPTS),
) -> SampleSet:
    """Fill ``drop_dir`` with one cut video, ``n_photos`` photos and one corrupt file.

    ``face_photos``: that many augmented photos of each real person of ``demo.faces``
    (Grace Hopper; the astronaut too with scikit-image); ``characters_dir``: write the demo's
    reference character there (``grace``, trigger word ``grace_sps``) unless it exists.
    ``speech``: the video gets spoken answers (espeak-ng) to the questions of a chat log
    written beside it (``demo_cuts.chat.log``), and ``extra_talks`` short speaking clips
    (``demo_talk_<n>.mp4``, ``demo.speech.EXTRA_SCRIPTS``, at most 640x360) come with
    their chat logs; without espeak-ng, neither (the note says why).
    """
    if video_seconds < 1:
        raise ValueError(f"video_seconds must be >= 1, got {video_seconds}")
    drop = Path(drop_dir)
    drop.mkdir(parents=True, exist_ok=True)
    shots = shot_plan(video_seconds, seed=seed)
    video = drop / "demo_cuts.mp4"
    cuts = make_cut_video(video, width=width, height=height, fps=30, shot_seconds=shots, seed=seed)
    photos = make_photos(drop, n_photos, seed=seed) if n_photos else []
    faces = make_face_photos(drop, seed=seed, per_person=face_photos) if face_photos else []
    character = make_demo_character(characters_dir) if characters_dir is not None else None
    chat_log = talk = note = None
    talks: list[tuple[Path, Path, TalkPlan]] = []
    if speech:
        binary = espeak_binary()
        if binary is None:
            note = (
                "espeak-ng is not installed (apt-get install espeak-ng): the sample video "
                "has no speech and no chat log"
            )
        else:
            talk = add_speech(video, sum(shots), binary)
            chat_log = write_chat_log(video, talk)
            talks = [
                _speaking_clip(drop / f"demo_talk_{n + 1}.mp4", script, binary, seed=seed + 1 + n,
                               width=min(width, 640), height=min(height, 360))
                for n, script in enumerate(EXTRA_SCRIPTS[:extra_talks])
            ]  # fmt: skip
    return SampleSet(
        video, cuts, photos, make_bad_file(drop), faces, character, chat_log, talk, note,
        talks,
    )  # fmt: skip


def _speaking_clip(
    video: Path,
    script: tuple[tuple[str, str, str], ...],
    binary: str,
    *,
    seed: int,
    width: int,
    height: int,
) -> tuple[Path, Path, TalkPlan]:
    """A short cut video just long enough for the script's answers, speaking them, and
    its chat log."""
    spoken = voices(script, binary)
    seconds = talk_seconds([len(v) / ESPEAK_RATE_HZ for v in spoken])
    shots = shot_plan(seconds, seed=seed)
    make_cut_video(video, width=width, height=height, fps=30, shot_seconds=shots, seed=seed)
    plan = add_speech(video, sum(shots), binary, script, spoken)
    return video, write_chat_log(video, plan), plan


# Scene-detection clips beyond hard cuts (benchmarks/bench_scenes.py, tests): grayscale
# textured cuts of one mean brightness, dissolves, fades through black, and a single shot
# with fast pans and a large moving subject. They use their own random draws, so the
# generators above are unchanged.


@dataclass(frozen=True)
class Transition:
    """A gradual transition: frames ``start`` .. ``end - 1`` mix the outgoing shot (or
    black) into the incoming one; ``end`` is the incoming shot's first clean frame."""

    start: int
    end: int

    @property
    def middle(self) -> float:
        """The transition's middle in frames (``(start + end - 1) / 2``)."""
        return (self.start + self.end - 1) / 2


def _encode(path: Path, width: int, height: int, fps: int, crf: int, frames) -> None:
    """Pipe I420 frames (lists of [Y, U, V] planes) into libx264 (yuv420p, BT.709 tags)."""
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-r", str(fps),
        "-i", "pipe:0",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-color_range", "tv", "-movflags", "+faststart", str(path),
    ]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    stdin, stderr_pipe = proc.stdin, proc.stderr
    if stdin is None or stderr_pipe is None:  # both are PIPE above
        raise RuntimeError("ffmpeg was started without its stdin/stderr pipes")
    try:
        for planes in frames:
            for plane in planes:
                stdin.write(np.ascontiguousarray(plane).data)
    except BrokenPipeError:
        pass  # ffmpeg died: its stderr is reported below
    finally:
        try:
            stdin.close()
        except BrokenPipeError:
            pass
    stderr = stderr_pipe.read().decode(errors="replace")
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed writing {path}: {stderr[-_STDERR_TAIL:]}")


def _check_size(width: int, height: int) -> None:
    if width % 2 or height % 2 or width < 32 or height < 32:
        raise ValueError(f"width and height must be even and >= 32, got {width}x{height}")


def _grains(rng: np.random.Generator, width: int, height: int) -> list[np.ndarray]:
    return [
        rng.normal(0, 4, size=(height, width)).clip(0, 12).astype(np.uint8)
        for _ in range(_GRAIN_FIELDS)
    ]


def _make_gray_shot(
    rng: np.random.Generator, width: int, height: int, mean: float, spread: float, margin: int
) -> _Shot:
    """A grayscale textured shot (U = V = 128) whose luma has this mean and spread (std),
    as fractions of the 16..235 range, panning slowly, with grey discs of about the same
    mean brightness moving over it."""
    h, w = height + 2 * margin, width + 2 * margin
    tex = _scene(rng, h, w, _unit(width, height))
    level = mean + spread * (tex - tex.mean()) / max(float(tex.std()), 1e-6)
    level = np.clip(level, 0.0, 1.0)
    level += mean - float(level.mean())  # clipping moved the mean: put it back
    luma = (16.5 + 219 * np.clip(level, 0.0, 1.0)).astype(np.uint8)
    chroma = np.full((h // 2, w // 2), 128, np.uint8)
    scale = width / 1920
    speed, heading = rng.uniform(2.0, 6.0) * scale, rng.uniform(0, 2 * math.pi)
    shapes = []
    for _ in range(int(rng.integers(2, 5))):
        pos = rng.uniform((0, 0), (width, height))
        vel = rng.uniform(-18, 18, size=2) * scale
        radius = max(2, int(rng.uniform(40, 120) * scale))
        grey = 16 + 219 * float(np.clip(mean + rng.uniform(-2, 2) * spread, 0, 1))
        shapes.append((pos, vel, radius, (grey, 128.0, 128.0)))
    velocity = (speed * math.cos(heading), speed * math.sin(heading))
    return _Shot((luma, chroma, chroma), velocity, margin, shapes)


def make_gray_cut_video(
    path: str | Path,
    *,
    width: int = 1920,
    height: int = 1080,
    fps: int = 30,
    shot_seconds: Sequence[float],
    seed: int = 0,
    crf: int = 23,
    mean: float = 0.45,
    spread: float = 0.12,
) -> list[float]:
    """Hard cuts between grayscale textured shots of the same mean brightness and contrast;
    return the cut times (s), as ``make_cut_video``.

    Every shot is a different photo-like texture (``mean`` and ``spread``: luma mean and
    standard deviation, fractions of the video range) with a slow pan, moving grey discs
    and film grain, so a cut changes the picture's structure but hardly its mean or its
    histogram: the cut a plain frame-difference or colour-histogram detector misses.
    """
    _check_size(width, height)
    cuts = cut_frames(shot_seconds, fps)
    total = round(sum(shot_seconds) * fps)
    rng = np.random.default_rng(seed)
    grains = _grains(rng, width, height)
    margin = max(16, width // 16) // 2 * 2
    starts = [0, *cuts, total]

    def frames():
        for k in range(len(starts) - 1):
            shot = _make_gray_shot(rng, width, height, mean, spread, margin)
            for i in range(starts[k + 1] - starts[k]):
                yield _render(shot, i, width, height, grains[(starts[k] + i) % _GRAIN_FIELDS])

    _encode(Path(path), width, height, fps, crf, frames())
    return [c / fps for c in cuts]


def _mix(a: list[np.ndarray], b: list[np.ndarray], weight: float) -> list[np.ndarray]:
    """I420 planes ``(1 - weight) * a + weight * b`` (a dissolve frame)."""
    return [cv2.addWeighted(pa, 1.0 - weight, pb, weight, 0.0) for pa, pb in zip(a, b, strict=True)]


def _faded(planes: list[np.ndarray], gain: float) -> list[np.ndarray]:
    """I420 planes faded towards video black (Y 16, U = V 128) by ``gain`` in [0, 1]."""
    y, u, v = (p.astype(np.float32) for p in planes)
    return [
        (16.5 + gain * (y - 16)).astype(np.uint8),
        (128.5 + gain * (u - 128)).astype(np.uint8),
        (128.5 + gain * (v - 128)).astype(np.uint8),
    ]


def make_transition_video(
    path: str | Path,
    *,
    kind: str,
    transition_frames: Sequence[int],
    shot_seconds: Sequence[float],
    width: int = 1920,
    height: int = 1080,
    fps: int = 30,
    seed: int = 0,
    crf: int = 23,
    black_frames: int = 0,
) -> list[Transition]:
    """Shots (as ``make_cut_video``'s: texture, pan, discs, grain, a new exposure band each)
    joined by gradual transitions; return them in frames, in time order.

    ``kind="dissolve"``: transition ``k`` cross-fades shot ``k`` into shot ``k + 1`` over
    ``transition_frames[k]`` frames (both shots keep moving; weights ``j / (n + 1)``), its
    middle at the shots' nominal boundary. ``kind="fade"``: shot ``k`` fades out to black
    over ``transition_frames[k]`` frames, ``black_frames`` black frames follow, then shot
    ``k + 1`` fades in over the same number of frames; the pair is one transition. Its
    ``end`` is the incoming shot's first frame at full brightness.
    """
    if kind not in ("dissolve", "fade"):
        raise ValueError(f"kind must be 'dissolve' or 'fade', got {kind!r}")
    _check_size(width, height)
    bounds = cut_frames(shot_seconds, fps)
    if len(transition_frames) != len(bounds) or any(n < 1 for n in transition_frames):
        raise ValueError(f"need {len(bounds)} transition lengths >= 1, got {transition_frames}")
    total = round(sum(shot_seconds) * fps)
    rng = np.random.default_rng(seed)
    grains = _grains(rng, width, height)
    shots: list[_Shot] = []
    band, last = int(rng.integers(0, len(_BANDS))), None
    for _ in range(len(bounds) + 1):
        shot, band = _next_shot(rng, band, last, width, height)
        last = _render(shot, 0, width, height, np.zeros((height, width), np.uint8))[0]
        shots.append(shot)
    spans: list[Transition] = []
    for b, n in zip(bounds, transition_frames, strict=True):
        if kind == "dissolve":
            start = b - (n + 1) // 2
            spans.append(Transition(start, start + n))
        else:
            start = b - n - black_frames // 2
            spans.append(Transition(start, start + 2 * n + black_frames))
    edges = [0, *(t.start for t in spans), total]
    if any(a >= c for a, c in zip(edges, edges[1:], strict=False)) or any(
        t.end > nxt for t, nxt in zip(spans, [*edges[2:]], strict=False)
    ):
        raise ValueError("transitions overlap each other or the clip's ends: longer shots")
    # Shot k is on screen from its own start (the end of transition k-1, or 0) until the
    # end of transition k; its frame counter starts where it first appears.
    first_seen = [0, *(t.start if kind == "dissolve" else t.start + n + black_frames
                       for t, n in zip(spans, transition_frames, strict=True))]  # fmt: skip

    def shot_frame(k: int, f: int) -> list[np.ndarray]:
        grain = grains[f % _GRAIN_FIELDS]
        return _render(shots[k], f - first_seen[k], width, height, grain)

    def frames():
        k = 0
        for f in range(total):
            while k < len(spans) and f >= spans[k].end:
                k += 1
            t = spans[k] if k < len(spans) else None
            if t is None or f < t.start:
                yield shot_frame(k, f)
                continue
            n, j = transition_frames[k], f - t.start
            if kind == "dissolve":
                yield _mix(shot_frame(k, f), shot_frame(k + 1, f), (j + 1) / (n + 1))
            elif j < n:  # fade-out: the last one is black
                yield _faded(shot_frame(k, f), 1 - (j + 1) / n)
            elif j < n + black_frames:
                yield _faded(shot_frame(k + 1, f), 0.0)
            else:  # fade-in from black: gains 1 / (n + 1) .. n / (n + 1)
                yield _faded(shot_frame(k + 1, f), (j - n - black_frames + 1) / (n + 1))

    _encode(Path(path), width, height, fps, crf, frames())
    return spans


def make_motion_video(
    path: str | Path,
    *,
    seconds: float,
    width: int = 1920,
    height: int = 1080,
    fps: int = 30,
    seed: int = 0,
    crf: int = 23,
    max_pan_px: float = 24.0,
    subject_scale: float = 0.3,
) -> None:
    """One grayscale shot without a cut: the hard case for a cut detector's precision.

    A textured canvas of one mean brightness (as ``make_gray_cut_video``'s shots) swept by
    smooth pans up to ``max_pan_px`` px per frame (at 1920 px wide, scaled with
    ``width``) that speed up, slow down and turn; the small moving discs and grain; and a
    large disc (radius ``subject_scale * height``) crossing the frame back and forth in
    front of it.
    """
    _check_size(width, height)
    rng = np.random.default_rng(seed)
    grains = _grains(rng, width, height)
    margin = max(16, width // 4) // 2 * 2
    shot = _make_gray_shot(rng, width, height, 0.45, 0.12, margin)
    speed = max_pan_px * width / 1920
    periods = rng.uniform(0.8, 1.25, size=2) * 2 * math.pi * margin / speed  # frames
    phases = rng.uniform(0, 2 * math.pi, size=2)
    radius = max(2, int(subject_scale * height))
    subject_y = rng.uniform(0.3, 0.7) * height
    subject_grey = 16 + 219 * float(rng.uniform(0.2, 0.8))
    crossing = rng.uniform(1.5, 2.5) * fps  # frames to cross the frame once

    def frames():
        for f in range(round(seconds * fps)):
            x, y = (
                int(round(margin * (1 + math.sin(2 * math.pi * f / p + ph)) / 2)) * 2
                for p, ph in zip(periods, phases, strict=True)
            )
            x, y = min(x, 2 * margin), min(y, 2 * margin)
            out = _crop(shot, x, y, f, width, height, grains[f % _GRAIN_FIELDS])
            sweep = _ping_pong(f * (width + 2 * radius) / crossing, (width + 2 * radius) // 2)
            cx = width / 2 + sweep
            for plane, value, sub in zip(out, (subject_grey, 128, 128), (1, 2, 2), strict=True):
                centre = (int(cx) // sub, int(subject_y) // sub)
                cv2.circle(plane, centre, max(1, radius // sub), int(value), -1, cv2.LINE_AA)
            yield out

    _encode(Path(path), width, height, fps, crf, frames())


def _crop(
    shot: _Shot, x: int, y: int, i: int, width: int, height: int, grain: np.ndarray
) -> list[np.ndarray]:
    """Frame ``i`` of a shot seen through a window at canvas offset (x, y), both even."""
    py, pu, pv = shot.planes
    out = [
        cv2.add(py[y : y + height, x : x + width], grain),
        pu[y // 2 : (y + height) // 2, x // 2 : (x + width) // 2].copy(),
        pv[y // 2 : (y + height) // 2, x // 2 : (x + width) // 2].copy(),
    ]
    for pos, vel, radius, colour in shot.shapes:
        cx, cy = (pos + vel * i) % (width, height)
        for plane, value, sub in zip(out, colour, (1, 2, 2), strict=True):
            centre = (int(cx) // sub, int(cy) // sub)
            cv2.circle(plane, centre, max(1, radius // sub), int(value), -1, cv2.LINE_AA)
    return out
