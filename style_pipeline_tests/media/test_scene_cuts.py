"""The combined scene detector: signals, rules on synthetic frames, the y4m pipe, seeking
fetches and extraction of generated grayscale cuts, pans, dissolves and fades."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest

from style_pipeline.contracts.ingest import FrameSettings
from style_pipeline.demo.samples import (
    make_cut_video,
    make_gray_cut_video,
    make_motion_video,
    make_transition_video,
)
from style_pipeline.media import frames as frames_mod
from style_pipeline.media import scene_cuts as sc
from style_pipeline.media.frames import FrameExtractionError, extract_video_frames, fetch_plan
from style_pipeline_tests.media.factories import run_ffmpeg

W, H = 320, 180


def _texture(seed: int, h: int = H, w: int = W, mean: float = 110, std: float = 25):
    """A smooth random texture (8-bit luma) with this mean and standard deviation."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((h // 12 + 2, w // 12 + 2)).astype(np.float32)
    import cv2

    tex = cv2.resize(coarse, (w + 24, h + 24), interpolation=cv2.INTER_CUBIC)[12:-12, 12:-12]
    tex = mean + std * (tex - tex.mean()) / tex.std()
    return np.clip(tex, 0, 255).astype(np.float32)


def _u8(frame: np.ndarray) -> np.ndarray:
    return np.clip(np.round(frame), 0, 255).astype(np.uint8)


def _detect(frames, **kw) -> list[sc.Boundary]:
    detector = sc.CutDetector(kw.pop("scene", 0.3), kw.pop("structure", 0.5), **kw)
    for f in frames:
        detector.push(_u8(f))
    return detector.finish()


def _pan(canvas: np.ndarray, n: int, step: int):
    return [canvas[i % 7 : i % 7 + H, i * step : i * step + W] for i in range(n)]


# -- signals ---------------------------------------------------------------------------


def test_scene_score_is_ffmpegs(tmp_path):
    """The reproduced score equals what ``select`` prints for the same analysis frames."""
    video = tmp_path / "cuts.mp4"
    make_cut_video(video, width=160, height=96, fps=15, shot_seconds=[1.0, 1.0], seed=2)
    marks, y4m = tmp_path / "marks.txt", tmp_path / "a.y4m"
    run_ffmpeg(
        "-i", str(video), "-vf",
        f"scale=min(iw\\,80):-2:flags=area,format=gray,select=gte(scene\\,0),"
        f"metadata=print:file={marks}",
        "-fps_mode", "passthrough", "-f", "yuv4mpegpipe", str(y4m),
    )  # fmt: skip
    printed = [float(x.split("=")[1]) for x in marks.read_text().split() if "scene_score" in x]
    score = sc.SceneScore()
    with y4m.open("rb") as stream:
        ours = [score(f.copy()) for f in sc.read_y4m(stream)]
    assert len(ours) == len(printed) == 30
    assert np.allclose(ours, printed, atol=1e-6)
    assert max(ours) > 0.3


def test_block_dissimilarity_ignores_brightness_and_small_shifts():
    a = _texture(1)
    thumb = lambda f: sc.cv2.resize(f, (40, 22), interpolation=sc.cv2.INTER_AREA)  # noqa: E731
    same = sc.block_dissimilarity(thumb(a), thumb(a * 0.6 + 40))
    shifted = sc.block_dissimilarity(thumb(a), thumb(np.roll(a, 4, axis=1)))
    other = sc.block_dissimilarity(thumb(a), thumb(_texture(2)))
    flat = sc.block_dissimilarity(thumb(a), np.full((22, 40), 120, np.float32))
    assert same < 0.01 and shifted < 0.15 and other > 0.6 and flat == 0.0


def test_global_shift_finds_a_pan():
    canvas = _texture(3, h=60, w=120)
    dx, dy = sc.global_shift(canvas[10:40, 10:90], canvas[10:40, 14:94])
    assert dx == pytest.approx(-4, abs=0.1) and dy == pytest.approx(0, abs=0.1)
    dx, dy = sc.global_shift(canvas[10:40, 10:90], canvas[9:39, 12:92])
    assert dx == pytest.approx(-2, abs=0.1) and dy == pytest.approx(1, abs=0.1)


# -- rules on synthetic frames ----------------------------------------------------------


def test_hard_cut_between_textures_of_one_brightness():
    """Same mean and contrast: ffmpeg's score stays low, the structure finds the cut."""
    a, b = _texture(4), _texture(5)
    frames = [a + (i % 3) for i in range(20)] + [b + (i % 3) for i in range(20)]
    assert _detect(frames, structure=None) == []  # the ffmpeg rule alone misses it
    found = _detect(frames)
    assert [(f.index, f.kind) for f in found] == [(20, "structure")]
    assert found[0].score >= 0.5


def test_pans_and_a_large_moving_subject_give_no_cut():
    canvas = _texture(6, h=H + 8, w=W * 4)
    frames = [f.copy() for f in _pan(canvas, 60, 4)]
    for i, f in enumerate(frames):  # a disc a third of the frame high crossing it
        yy, xx = np.ogrid[:H, :W]
        f[(yy - 90) ** 2 + (xx - 8 * i) ** 2 < 60**2] = 200
    assert _detect(frames) == []


def test_a_brightness_ramp_on_one_picture_is_no_boundary():
    a = _texture(7)
    frames = [a * (1 - 0.5 * min(i, 30) / 30) + (i % 2) for i in range(50)]
    assert _detect(frames) == []


@pytest.mark.parametrize("length", [6, 15, 40])
def test_a_dissolve_gives_one_boundary_at_its_end(length):
    a, b = _texture(8, mean=80), _texture(9, mean=150)
    start, frames = 30, []
    for i in range(30 + length + 40):
        w = min(max((i - start + 1) / (length + 1), 0.0), 1.0)
        frames.append((1 - w) * np.roll(a, i, axis=1) + w * np.roll(b, -i, axis=1))
    found = _detect(frames)
    assert len(found) == 1 and found[0].kind == "dissolve", found
    assert abs(found[0].index - (start + length)) <= max(2, length // 10)


def test_a_fade_out_fade_in_pair_is_one_boundary_at_the_end_of_the_fade_in():
    a, b = _texture(10), _texture(11, mean=140)
    frames = [a] * 30 + [a * (1 - (j + 1) / 10) for j in range(10)] + [np.zeros((H, W))] * 4
    frames += [b * (j + 1) / 13 for j in range(12)] + [b] * 30
    end = 30 + 10 + 4 + 12
    found = _detect(frames)
    assert len(found) == 1 and found[0].kind == "fade", found
    assert abs(found[0].index - end) <= 2


def test_a_cut_to_black_and_a_fade_out_at_the_end_give_nothing_after_black():
    a, b = _texture(12), _texture(13, mean=150)
    to_black = [a] * 20 + [np.zeros((H, W))] * 10 + [b] * 20  # cut in, cut out
    found = _detect(to_black)
    assert [f.index for f in found] == [30]
    fade_out = [b] * 20 + [b * (1 - (j + 1) / 12) for j in range(12)] + [np.zeros((H, W))] * 8
    assert _detect(fade_out) == []


def test_gradual_transitions_can_be_switched_off():
    a, b = _texture(14, mean=80), _texture(15, mean=150)
    frames = [a] * 30 + [(1 - w / 21) * a + w / 21 * b for w in range(1, 21)] + [b] * 30
    assert len(_detect(frames)) == 1
    assert _detect(frames, gradual=False) == []


# -- the y4m pipe -----------------------------------------------------------------------


def _y4m(frames: list[np.ndarray], colour: str = "mono") -> bytes:
    h, w = frames[0].shape
    out = f"YUV4MPEG2 W{w} H{h} F15:1 Ip A1:1 C{colour}\n".encode()
    return out + b"".join(b"FRAME\n" + f.tobytes() for f in frames)


def test_read_y4m():
    frames = [np.full((4, 6), i, np.uint8) for i in range(3)]
    got = [f.copy() for f in sc.read_y4m(io.BytesIO(_y4m(frames)))]
    assert [f.tolist() for f in got] == [f.tolist() for f in frames]
    assert list(sc.read_y4m(io.BytesIO(b""))) == []
    with pytest.raises(sc.TruncatedStreamError):
        list(sc.read_y4m(io.BytesIO(_y4m(frames)[:-5])))
    with pytest.raises(ValueError, match="mono"):
        list(sc.read_y4m(io.BytesIO(_y4m(frames, "420jpeg"))))


def test_fifo_analysis_without_a_writer_ends(tmp_path):
    """ffmpeg failed before opening the pipe: finish() unblocks the reader."""
    analysis = sc.FifoAnalysis(tmp_path / "a.y4m", sc.CutDetector(0.3, 0.5))
    analysis.start()
    assert analysis.finish() == [] and analysis.detector.frames == 0


def test_fifo_analysis_reads_a_writer(tmp_path):
    frames = [_u8(_texture(20))] * 3 + [_u8(_texture(21))] * 3
    analysis = sc.FifoAnalysis(tmp_path / "a.y4m", sc.CutDetector(0.3, 0.5, gradual=False))
    analysis.start()
    writer = threading.Thread(target=(tmp_path / "a.y4m").write_bytes, args=(_y4m(frames),))
    writer.start()
    writer.join()
    assert [b.index for b in analysis.finish()] == [3]


# -- fetch plan --------------------------------------------------------------------------


S = 1_000_000  # us


@pytest.mark.parametrize(
    ("pts", "keys", "plan"),
    [
        ([5, 9], [], [(None, [5, 9])]),
        ([5, 9], [0], [(None, [5, 9])]),
        ([5 * S, 30 * S], [0, 4 * S, 29 * S], [(4 * S, [5 * S]), (29 * S, [30 * S])]),
        ([5 * S, 7 * S], [0, 4 * S, 6 * S], [(4 * S, [5 * S, 7 * S])]),  # 6 s: < 2 s on
        ([1 * S, 30 * S], [0, 29 * S], [(None, [1 * S]), (29 * S, [30 * S])]),
    ],
)
def test_fetch_plan(pts, keys, plan):
    assert fetch_plan(pts, keys) == plan


# -- extraction of generated clips -------------------------------------------------------

FPS = 15


def _indices(out) -> list[int]:
    return [round(f.timestamp_s * FPS) for f in out if f.scene_score is not None]


def test_gray_cuts_found_by_the_combined_detector_only(tmp_path):
    video = tmp_path / "gray.mp4"
    shots = [1.0, 1.4, 1.0, 1.2, 1.0]
    cuts = [round(t * FPS) for t in make_gray_cut_video(
        video, width=W, height=H, fps=FPS, shot_seconds=shots, seed=1)]  # fmt: skip
    new = _indices(extract_video_frames(video, tmp_path / "new", FrameSettings()))
    old = extract_video_frames(video, tmp_path / "old", FrameSettings(scene_detector="ffmpeg"))
    assert new == cuts
    assert len(_indices(old)) < len(cuts)


def test_motion_clip_gives_only_its_first_frame(tmp_path):
    video = tmp_path / "motion.mp4"
    make_motion_video(video, seconds=4, width=W, height=H, fps=FPS, seed=2)
    out = extract_video_frames(video, tmp_path / "out", FrameSettings())
    assert [f.timestamp_s for f in out] == [0.0]


@pytest.mark.parametrize("kind", ["dissolve", "fade"])
def test_one_frame_per_gradual_transition(tmp_path, kind):
    video = tmp_path / f"{kind}.mp4"
    spans = make_transition_video(
        video, kind=kind, transition_frames=[5, 12], shot_seconds=[3.0, 3.0, 3.0],
        width=W, height=H, fps=FPS, seed=3, black_frames=2,
    )  # fmt: skip
    found = _indices(extract_video_frames(video, tmp_path / "out", FrameSettings()))
    assert len(found) == len(spans), (found, spans)
    assert all(abs(f - t.end) <= 2 for f, t in zip(found, spans, strict=True)), (found, spans)


@pytest.mark.parametrize("cpus", [2, 8])  # fetch runs one by one, side by side
def test_seeking_fetch_matches_the_scene_pass_with_a_start_offset(tmp_path, monkeypatch, cpus):
    """MPEG-TS starts at 1.4 s: seeking fetches name frames as the scene pass does."""
    mp4, ts = tmp_path / "gray.mp4", tmp_path / "gray.ts"
    make_gray_cut_video(mp4, width=W, height=H, fps=FPS, shot_seconds=[1.0, 3.0, 1.0], seed=4)
    run_ffmpeg("-i", str(mp4), "-c", "copy", str(ts))
    normal = extract_video_frames(ts, tmp_path / "a", FrameSettings())
    monkeypatch.setattr(frames_mod, "CANDIDATE_RATIO", 3.4)  # no candidate but frame 0
    monkeypatch.setattr(frames_mod.os, "cpu_count", lambda: cpus)
    runs = []
    monkeypatch.setattr(frames_mod, "fetch_plan", lambda *a: runs.extend(fetch_plan(*a)) or runs)
    fetched = extract_video_frames(ts, tmp_path / "b", FrameSettings())
    assert len(normal) == 3 and len(runs) == 2  # each cut has its key frame: two seeks
    assert [f.timestamp_s for f in fetched] == [f.timestamp_s for f in normal]
    for a, b in zip(normal, fetched, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()


def test_a_failing_analysis_fails_the_video_cleanly(tmp_path, monkeypatch):
    video = tmp_path / "gray.mp4"
    make_gray_cut_video(video, width=160, height=96, fps=FPS, shot_seconds=[1.0, 1.0], seed=5)

    def broken(self, luma):
        raise RuntimeError("detector bug")

    monkeypatch.setattr(sc.CutDetector, "push", broken)
    with pytest.raises(FrameExtractionError, match="scene analysis failed.*detector bug"):
        extract_video_frames(video, tmp_path / "out", FrameSettings())
    assert list((tmp_path / "out").iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "scene-cuts"]


def test_ffmpeg_detector_is_the_old_rule(tmp_path):
    """``scene_detector: ffmpeg`` never reports a structure cut or a transition."""
    video = tmp_path / "gray.mp4"
    make_gray_cut_video(video, width=W, height=H, fps=FPS, shot_seconds=[1.0] * 4, seed=6)
    old = extract_video_frames(video, tmp_path / "o", FrameSettings(scene_detector="ffmpeg"))
    assert all(f.scene_score > 0.3 for f in old if f.scene_score is not None)
    assert Path(old[0].path).name == "frame_000000000.jpg"
