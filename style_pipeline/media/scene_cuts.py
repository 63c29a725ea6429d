"""Shot boundaries of one video from its luma at the analysis resolution (the combined
scene detector of ``media.frames``; numpy/OpenCV, no decoding of its own).

``CutDetector`` takes the decoded analysis frames in order (``push``: 2-D uint8 luma,
``analysis_width`` wide) and returns the boundaries (``finish``) as frame indices. Per
frame it computes:

- ffmpeg's scene score (``SceneScore``), reproduced exactly: ``min(mafd, |mafd - prev
  mafd|) / 100`` with ``mafd`` the mean absolute luma difference to the previous frame,
  as ``select='gt(scene,T)'`` computes it on the same frames;
- a thumbnail ``THUMB_WIDTH`` px wide (area filter) and, on it, the structural
  dissimilarity to the previous frame (``block_dissimilarity``): the median over the
  ``GRID`` blocks with texture of one minus their correlation; when that is high, again
  after aligning the frames by their global shift (up to ``MAX_SHIFT`` px: a fast pan),
  the lower value kept. It ignores brightness and contrast, so it sees a cut between
  two textured shots of the same mean brightness, which the scene score and colour
  histograms hardly do; subjects covering fewer than half of the blocks leave it low;
- a linear-blend test on the thumbnails at lags ``LAGS``: frame ``j`` is the average of
  frames ``j - k`` and ``j + k`` while those two differ clearly. That holds inside a
  dissolve or a fade (a blend of two pictures, or of one and black), not in motion,
  where the middle frame is a shifted picture, not an average.

Rules (what the detector reports):

- **hard cut** at frame ``i`` (the first frame of the new shot): the scene score is
  above ``scene_threshold`` (the old, ffmpeg-only rule, kept as is), or the structural
  dissimilarity is at least ``structure_threshold`` and ``SPIKE`` times its largest value
  on the ``SPIKE_SPAN`` frames either side (one frame changes the picture; a whip pan
  lasting frames does not);
- **dissolve**: one boundary, at the incoming shot's first clean frame (the end of the
  dissolve). Blend-test hits closer than ``GROUP_GAP`` frames form a run; windows with a
  hard cut or with black inside (not at one end) are no hits. A run is a transition
  unless its outer frames show the same picture: correlation above ``MAX_END_CORR``
  after aligning them by the frame-to-frame shifts summed over the run (a pan, or a
  lighting change), or shifts adding up to half the frame (a camera on the move). Each
  frame's blend weight is its projection on the line between the outer frames; the end
  is where a line fitted to the weights between 0.15 and 0.85 reaches 1 (fitted again
  between the frames next to the ramp);
- **fade-out / fade-in** through black: one boundary, at the end of the fade-in (the
  first frame at full brightness). A run that ends on black is a fade-out and gives
  none, and any boundary on a dark frame (mean luma at most ``DARK_MEAN``, little
  texture) is dropped: black starts no shot, so a cut to black and a fade or cut out of
  it give one boundary too;
- a hard cut inside a transition's run gives way to the transition.

A run longer than the thumbnail ring (``RING`` frames, ~8 s at 30 fps) is not reported.

``FifoAnalysis`` feeds a detector from a named pipe that ffmpeg writes as YUV4MPEG2 mono
(``-f yuv4mpegpipe``, gray) while the same ffmpeg process writes the full-resolution
candidates: one decode for both.
"""

from __future__ import annotations

import bisect
import fcntl
import io
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

THUMB_WIDTH = 40  # px: thumbnails of both the structural signal and the blend test
GRID = (4, 3)  # blocks across, down
MIN_BLOCK_STD = 2.0  # 8-bit levels: blocks flatter than this carry no structure
SHIFT_TRIGGER = 0.25  # dissimilarity above which the frames are aligned first (pans)
MAX_SHIFT = 4  # px at THUMB_WIDTH (a tenth of it): the fastest pan aligned
SPIKE = 2.0  # a cut's dissimilarity vs its neighbours'
SPIKE_SPAN = 2  # frames either side
LAGS = (3, 6, 12, 24)  # frames: half-widths of the blend test
MIN_CHANGE = 6.0  # 8-bit levels: mean |frame j+k - frame j-k| of a blend-test hit
MAX_BLEND_RESIDUAL = 0.4  # |frame j - mean of j-k, j+k| over half their difference
MAX_END_CORR = 0.6  # correlation of a transition's outer frames (same picture above)
FLAT_STD = 2.0  # 8-bit levels: a thumbnail this flat has no structure to compare
DARK_MEAN = 24.0  # 8-bit luma: black in video range is 16
DARK_STD = 4.0
GROUP_GAP = 3  # frames: blend-test hits this close belong to one transition
RING = 256  # thumbnails kept for the gradual-transition analysis
PIPE_BYTES = 1 << 20  # named pipe capacity asked for (Linux's default maximum)


@dataclass(frozen=True)
class Boundary:
    """A shot boundary: the new shot's first (clean) frame and what found it.

    ``score``: ffmpeg's scene score for a ``scene`` cut; the structural dissimilarity
    (at most 1) for a ``structure`` cut; the mean luma difference of the transition's
    outer frames / 100 (what the scene score of a hard cut between them would be) for a
    ``dissolve`` or a ``fade`` (a transition from black).
    """

    index: int
    score: float
    kind: str


class SceneScore:
    """ffmpeg's ``scene`` value of ``select`` on 8-bit single-plane frames, frame by frame."""

    def __init__(self) -> None:
        self._prev: np.ndarray | None = None
        self._prev_mafd = 0.0

    def __call__(self, luma: np.ndarray) -> float:
        prev, self._prev = self._prev, luma
        if prev is None or prev.shape != luma.shape:
            return 0.0
        sad = cv2.norm(prev, luma, cv2.NORM_L1)  # an exact integer (< 2**53) as a float
        mafd = sad / (luma.shape[0] * luma.shape[1])
        diff = abs(mafd - self._prev_mafd)
        self._prev_mafd = mafd
        return min(max(min(mafd, diff) / 100.0, 0.0), 1.0)


@dataclass(frozen=True)
class _Blocks:
    """A thumbnail's ``GRID`` blocks, each flattened, centred and with its std."""

    centred: np.ndarray  # (blocks, pixels)
    std: np.ndarray  # (blocks,)


def _blocks(thumb: np.ndarray) -> _Blocks:
    h, w = thumb.shape
    bh, bw = h // GRID[1], w // GRID[0]
    cells = thumb[: bh * GRID[1], : bw * GRID[0]].reshape(GRID[1], bh, GRID[0], bw)
    flat = cells.transpose(0, 2, 1, 3).reshape(GRID[0] * GRID[1], bh * bw)
    centred = flat - flat.mean(axis=1, keepdims=True)
    return _Blocks(centred, np.sqrt((centred * centred).mean(axis=1)))


def _median_dissimilarity(a: _Blocks, b: _Blocks) -> float:
    textured = (a.std >= MIN_BLOCK_STD) & (b.std >= MIN_BLOCK_STD)
    if not textured.any():
        return 0.0
    cov = (a.centred[textured] * b.centred[textured]).mean(axis=1)
    return _median(1.0 - cov / (a.std[textured] * b.std[textured]))


def _median(values: np.ndarray) -> float:
    ordered = np.sort(values)
    mid = len(ordered) // 2
    return float(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2)


def thumbnail(luma: np.ndarray) -> np.ndarray:
    """``luma`` reduced by a whole factor to about ``THUMB_WIDTH`` px wide (area filter,
    the last rows and columns that do not fill a cell dropped), float32."""
    h, w = luma.shape
    f = max(1, w // THUMB_WIDTH)
    tw, th = w // f, max(1, h // f)
    cells = luma[: th * f, : tw * f]
    return cv2.resize(cells, (tw, th), interpolation=cv2.INTER_AREA).astype(np.float32)


def global_shift(prev: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Shift (dx, dy) of ``cur`` against ``prev`` in px, at most ``MAX_SHIFT`` each way:
    where ``cur``'s centre best matches ``prev`` (normalised correlation), refined to a
    fraction of a pixel by a parabola through the peak and its neighbours. (Phase
    correlation is cheaper but unreliable on smooth thumbnails.)"""
    r = MAX_SHIFT
    h, w = cur.shape
    if h <= 2 * r + 2 or w <= 2 * r + 2:
        return 0.0, 0.0
    result = cv2.matchTemplate(prev, cur[r : h - r, r : w - r], cv2.TM_CCOEFF_NORMED)
    _, _, _, (mx, my) = cv2.minMaxLoc(result)

    def vertex(a: float, b: float, c: float) -> float:
        curve = a - 2 * b + c
        return 0.0 if curve >= 0 else float(0.5 * (a - c) / curve)

    fx = vertex(*result[my, mx - 1 : mx + 2]) if 0 < mx < 2 * r else 0.0
    fy = vertex(*result[my - 1 : my + 2, mx]) if 0 < my < 2 * r else 0.0
    return float(r - mx - fx), float(r - my - fy)


def _overlap(prev: np.ndarray, cur: np.ndarray, dx: int, dy: int):
    """The parts of ``prev`` and ``cur`` that show the same scene when ``cur`` is
    ``prev`` moved by (dx, dy) whole pixels."""
    h, w = cur.shape
    ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    yp, xp = slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    return prev[yp, xp], cur[ys, xs]


def block_dissimilarity(
    prev: np.ndarray, cur: np.ndarray, blocks: tuple[_Blocks, _Blocks] | None = None
) -> float:
    """Median over the blocks with texture in both thumbnails (float32, same size) of
    1 - their correlation; 0 when no block has texture. Above ``SHIFT_TRIGGER`` the
    frames are aligned by their global shift first (a fast pan) and the lower value wins.
    ``blocks``: ``_blocks`` of prev and cur, when the caller has them."""
    a, b = blocks if blocks is not None else (_blocks(prev), _blocks(cur))
    value = _median_dissimilarity(a, b)
    if value < SHIFT_TRIGGER:
        return value
    sx, sy = global_shift(prev, cur)
    dx, dy = int(round(sx)), int(round(sy))
    if (dx, dy) == (0, 0):
        return value
    shifted = _median_dissimilarity(*(_blocks(f) for f in _overlap(prev, cur, dx, dy)))
    return min(value, shifted)


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    sa, sb = float(a.std()), float(b.std())
    if sa < FLAT_STD or sb < FLAT_STD:
        return None
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


@dataclass
class _Hit:
    """A blend-test hit: frame ``centre`` is the average of ``centre -+ lag``."""

    centre: int
    lag: int
    change: float  # mean |frame centre+lag - frame centre-lag|


@dataclass
class _State:
    scores: list[float] = field(default_factory=list)
    structure: list[float] = field(default_factory=list)
    dark: list[bool] = field(default_factory=list)
    cuts: list[Boundary] = field(default_factory=list)
    gradual: list[tuple[Boundary, int, int]] = field(default_factory=list)  # + span
    hits: list[_Hit] = field(default_factory=list)


class CutDetector:
    """Push a video's analysis frames in order; ``finish`` gives its shot boundaries.

    ``scene_threshold``: the ffmpeg rule's threshold; ``structure_threshold``: the
    structural rule's (None: off, the ffmpeg rule alone); ``gradual``: report dissolves
    and fades too.
    """

    def __init__(
        self, scene_threshold: float, structure_threshold: float | None, gradual: bool = True
    ) -> None:
        self.scene_threshold = scene_threshold
        self.structure_threshold = structure_threshold
        self.gradual = gradual
        self._score = SceneScore()
        self._s = _State()
        self._prev: tuple[np.ndarray, _Blocks] | None = None
        self._ring: np.ndarray | None = None
        self._n = 0

    @property
    def frames(self) -> int:
        return self._n

    def push(self, luma: np.ndarray) -> None:
        """Add the next frame (2-D uint8 luma)."""
        i, s = self._n, self._s
        self._n += 1
        s.scores.append(self._score(luma))
        thumb = thumbnail(luma)
        mean, std = cv2.meanStdDev(thumb)
        s.dark.append(float(mean[0, 0]) <= DARK_MEAN and float(std[0, 0]) <= DARK_STD)
        if self.structure_threshold is None:
            if s.scores[i] > self.scene_threshold and i > 0:
                s.cuts.append(Boundary(i, s.scores[i], "scene"))
        else:
            blocks = _blocks(thumb)
            prev, self._prev = self._prev, (thumb, blocks)
            value = 0.0
            if prev is not None and prev[0].shape == thumb.shape:
                value = block_dissimilarity(prev[0], thumb, (prev[1], blocks))
            s.structure.append(value)
            self._decide_cut(i - SPIKE_SPAN)
        if self.gradual:
            if self._ring is None or self._ring.shape[1:] != thumb.shape:
                self._ring = np.zeros((RING, *thumb.shape), np.float32)
            self._ring[i % RING] = thumb
            self._blend_tests(i)
            # Later hits centre at i - max(LAGS) or later; cuts are known up to i - SPIKE_SPAN.
            if s.hits and max(h.centre for h in s.hits) + max(LAGS) + GROUP_GAP + SPIKE_SPAN < i:
                self._close_group()

    def finish(self) -> list[Boundary]:
        """The boundaries in time order (the first frame is never one)."""
        s = self._s
        if self.structure_threshold is not None:
            for j in range(max(0, self._n - SPIKE_SPAN), self._n):
                self._decide_cut(j)
        if self.gradual and s.hits:
            self._close_group()
        spans = [(lo, hi) for _, lo, hi in s.gradual]
        found = [b for b, _, _ in s.gradual]
        found += [c for c in s.cuts if not any(lo <= c.index <= hi for lo, hi in spans)]
        kept = [b for b in found if 0 < b.index < self._n and not s.dark[b.index]]
        return sorted(kept, key=lambda b: b.index)

    # -- hard cuts --------------------------------------------------------------------

    def _decide_cut(self, j: int) -> None:
        s = self._s
        if j < 1:
            return
        if s.scores[j] > self.scene_threshold:
            s.cuts.append(Boundary(j, s.scores[j], "scene"))
            return
        value = s.structure[j]
        if self.structure_threshold is None or value < self.structure_threshold:
            return
        around = s.structure[max(1, j - SPIKE_SPAN) : j] + s.structure[j + 1 : j + 1 + SPIKE_SPAN]
        if value >= SPIKE * max(around, default=0.0):
            s.cuts.append(Boundary(j, min(value, 1.0), "structure"))

    # -- gradual transitions ----------------------------------------------------------

    def _thumb(self, j: int) -> np.ndarray:
        assert self._ring is not None
        return self._ring[j % RING]

    def _blend_tests(self, i: int) -> None:
        """Blend tests whose window ends at frame ``i`` (centre ``i - k`` for every lag)."""
        lags = [k for k in LAGS if i - 2 * k >= 0]
        if not lags:
            return
        idx = np.array(lags)
        assert self._ring is not None
        first = self._ring[(i - 2 * idx) % RING]
        middle = self._ring[(i - idx) % RING]
        last = self._ring[i % RING][None]
        change = np.abs(last - first).mean(axis=(1, 2))
        residual = np.abs(middle - (first + last) / 2).mean(axis=(1, 2))
        for k, d, r in zip(lags, change.tolist(), residual.tolist(), strict=True):
            if (
                d >= MIN_CHANGE
                and 2 * r <= MAX_BLEND_RESIDUAL * d
                and self._one_blend(i - 2 * k, i)
            ):
                self._s.hits.append(_Hit(i - k, k, d))

    def _one_blend(self, first: int, last: int) -> bool:
        """Frames ``first..last`` can be one blend: black, if any, only at one end (a fade
        out to black followed by a fade in is two blends that can pass the test as one)."""
        dark = self._s.dark[first : last + 1]
        if not any(dark):
            return True
        inner = dark.index(True), len(dark) - 1 - dark[::-1].index(True)
        run = all(dark[inner[0] : inner[1] + 1])
        return run and (inner[0] == 0 or inner[1] == len(dark) - 1)

    def _close_group(self) -> None:
        """Turn the pending blend-test hits into transitions (hard cuts are known here)."""
        s = self._s
        cut_at = [c.index for c in s.cuts]  # in time order: decided frame by frame

        def spans_a_cut(h: _Hit) -> bool:  # a cut at centre - lag + 1 .. centre + lag
            k = bisect.bisect_right(cut_at, h.centre - h.lag)
            return k < len(cut_at) and cut_at[k] <= h.centre + h.lag

        hits = [h for h in sorted(s.hits, key=lambda h: h.centre) if not spans_a_cut(h)]
        s.hits = []
        group: list[_Hit] = []
        for h in hits:
            if group and h.centre - group[-1].centre > GROUP_GAP:
                self._transition(group)
                group = []
            group.append(h)
        if group:
            self._transition(group)

    def _transition(self, group: list[_Hit]) -> None:
        lo = max(0, min(h.centre - h.lag for h in group))
        hi = min(self._n - 1, max(h.centre + h.lag for h in group))
        if self._n - lo > RING:
            return  # longer than the ring: not a transition we can place
        if self._s.dark[hi]:
            return  # a fade-out: the boundary is where the picture comes back
        if self._moved_picture(lo, hi):
            return  # the same picture, moved or relit: a pan, not a new shot
        fit = self._ramp(lo, hi)
        if fit is None:
            return
        start, end = fit
        # Again between frames next to the ramp: in-shot motion far from it bends the fit.
        near = self._ramp(max(lo, int(np.floor(start))), min(hi, int(np.ceil(end))))
        if near is not None:
            start, end = near
        index = min(max(int(round(end)), lo + 1), hi)
        first, last = self._thumb(lo), self._thumb(hi)
        score = min(1.0, float(np.abs(last - first).mean()) / 100.0)
        kind = "fade" if any(self._s.dark[lo : hi + 1]) else "dissolve"
        self._s.gradual.append((Boundary(index, score, kind), lo, hi))

    def _moved_picture(self, lo: int, hi: int) -> bool:
        """Whether frame ``hi`` shows frame ``lo``'s picture, moved (the frame-to-frame
        shifts summed) and maybe relit; also when the shifts add up to more than half
        the frame (too far to tell). False when either end is flat (a fade)."""
        first, last = self._thumb(lo), self._thumb(hi)
        if self._s.dark[lo] or min(float(first.std()), float(last.std())) < FLAT_STD:
            return False
        h, w = first.shape
        sx = sy = 0.0
        for j in range(lo + 1, hi + 1):
            a, b = self._thumb(j - 1), self._thumb(j)
            if min(float(a.std()), float(b.std())) >= FLAT_STD:  # flat frames do not move
                step = global_shift(a, b)
                sx, sy = sx + step[0], sy + step[1]
        dx, dy = int(round(sx)), int(round(sy))
        if abs(dx) > w // 2 or abs(dy) > h // 2:
            return True
        corr = _correlation(*_overlap(first, last, dx, dy))
        return corr is not None and corr > MAX_END_CORR

    def _ramp(self, lo: int, hi: int) -> tuple[float, float] | None:
        """Where the blend from frame ``lo`` to frame ``hi`` starts and ends (fractional
        frames: weight 0 and 1 of a line fitted to the weights between 0.15 and 0.85);
        a frame's weight is its projection on the line from ``lo`` to ``hi``."""
        if hi - lo < 2:
            return None
        first, last = self._thumb(lo), self._thumb(hi)
        axis = (last - first).ravel()
        norm = float(axis @ axis)
        if norm <= 0:
            return None
        frames = np.arange(lo, hi + 1)
        stack = np.stack([self._thumb(int(j)) for j in frames]).reshape(len(frames), -1)
        weight = (stack - first.ravel()) @ axis / norm
        ramp = (weight >= 0.15) & (weight <= 0.85)
        if ramp.sum() < 2:  # a blend of one frame or none: half way
            middle = float(frames[np.argmax(weight >= 0.5)])
            return middle - 1.0, middle + 1.0
        slope, offset = np.polyfit(frames[ramp], weight[ramp], 1)
        if slope <= 0:
            return None
        return -offset / slope, (1.0 - offset) / slope


class TruncatedStreamError(ValueError):
    """The YUV4MPEG2 stream ended inside a frame (its writer was killed or failed)."""


def read_y4m(stream: io.BufferedIOBase) -> Iterator[np.ndarray]:
    """The frames of a YUV4MPEG2 stream of 8-bit mono (``Cmono``) as 2-D uint8 arrays
    (each array is reused for the next frame: copy what you keep)."""
    header = stream.readline()
    if not header:
        return  # nothing written (ffmpeg failed before its first frame)
    fields = header.split()
    if not fields or fields[0] != b"YUV4MPEG2":
        raise ValueError(f"not a YUV4MPEG2 stream: {header[:60]!r}")
    params = {f[:1]: f[1:] for f in fields[1:]}
    if params.get(b"C", b"mono") != b"mono":
        raise ValueError(f"expected mono (gray) frames, got C{params[b'C'].decode()}")
    width, height = int(params[b"W"]), int(params[b"H"])
    frame = np.empty((height, width), np.uint8)
    view = frame.data.cast("B")
    while True:
        tag = stream.readline()
        if not tag:
            return
        if not tag.startswith(b"FRAME"):
            raise ValueError(f"bad YUV4MPEG2 frame header {tag[:60]!r}")
        got = stream.readinto(view)
        if got != frame.nbytes:
            raise TruncatedStreamError(f"YUV4MPEG2 frame cut short: {got} of {frame.nbytes} bytes")
        yield frame


def _widen_pipe(fd: int) -> None:
    """Let the pipe hold ``PIPE_BYTES`` (Linux; 64 KiB by default, about one 320x180
    frame), so ffmpeg runs on while the reader is busy instead of waiting frame by frame."""
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if setsize is None:
        return
    try:
        fcntl.fcntl(fd, setsize, PIPE_BYTES)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size for this user: keep the default


class FifoAnalysis:
    """A ``CutDetector`` fed in a thread from the named pipe ``path`` (created here).

    ``start()`` before ffmpeg starts writing to ``path``; ``finish()`` after ffmpeg has
    exited, whatever its outcome: it unblocks a reader still waiting for a writer, joins
    the thread and re-raises what the reader raised. On an error the reader closes the
    pipe, so ffmpeg fails on its next write instead of blocking.
    """

    def __init__(self, path: Path, detector: CutDetector) -> None:
        self.path = path
        self.detector = detector
        self._opened = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="scene-cuts", daemon=True)

    def start(self) -> None:
        os.mkfifo(self.path)
        self._thread.start()

    def _read(self) -> None:
        try:
            with open(self.path, "rb", buffering=0) as raw:  # waits for a writer
                self._opened.set()
                _widen_pipe(raw.fileno())
                stream = io.BufferedReader(raw, buffer_size=1 << 20)
                for frame in read_y4m(stream):
                    self.detector.push(frame)
        except BaseException as exc:  # re-raised in finish(), in the caller's thread
            self._error = exc

    def finish(self) -> list[Boundary]:
        """Wait for the reader; the boundaries (raises the reader's error, if any)."""
        while self._thread.is_alive() and not self._opened.is_set():
            try:  # the writer never came: connect one, so the blocked open() returns
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: the reader is not in open() yet
                time.sleep(0.005)
                continue
            os.close(fd)
            break
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.detector.finish()
