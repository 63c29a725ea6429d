"""Frame extraction with ffmpeg: scene / keyframes / interval modes, caps, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from style_pipeline.contracts.ingest import FrameSettings
from style_pipeline.demo.samples import make_bad_file, make_cut_video
from style_pipeline.media import frames as frames_mod
from style_pipeline.media.frames import (
    FrameExtractionError,
    _Mark,
    cap_marks,
    extract_video_frames,
    frame_id,
    parse_marks,
    thin_cuts,
)
from style_pipeline_tests.media.factories import make_audio_only, run_ffmpeg

FPS = 15
SHOTS = [1.0, 1.0, 1.0, 1.0]
TOL_S = 2 / FPS


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("frames") / "cuts.mp4"
    cuts = make_cut_video(path, width=320, height=180, fps=FPS, shot_seconds=SHOTS, seed=7)
    return path, cuts


@pytest.fixture(scope="module")
def gop_video(tmp_path_factory):
    """3 s at 10 fps with a key frame exactly every 10 frames (no scene-cut key frames)."""
    path = tmp_path_factory.mktemp("frames") / "gop.mp4"
    run_ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "3",
        "-c:v", "libx264", "-pix_fmt", "yuv420p",
        "-x264-params", "keyint=10:min-keyint=10:scenecut=0", str(path),
    )  # fmt: skip
    return path


def _scene(**kw) -> FrameSettings:
    return FrameSettings(mode="scene", **kw)


def _assert_matches(found: list[float], truth: list[float]) -> None:
    assert len(found) == len(truth), (found, truth)
    for f, t in zip(sorted(found), sorted(truth), strict=True):
        assert abs(f - t) <= TOL_S, (found, truth)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (("m", 1.0, "scene"), ("m", 1.0, "scene"), True),
        (("m", 1.0001, "scene"), ("m", 1.0004, "scene"), True),  # same millisecond
        (("m", 1.0, "scene"), ("m", 1.002, "scene"), False),
        (("m", 1.0, "scene"), ("m", 1.0, "interval"), False),
        (("m", 1.0, "scene"), ("n", 1.0, "scene"), False),
    ],
)
def test_frame_id(a, b, same):
    assert (frame_id(*a) == frame_id(*b)) is same
    assert len(frame_id(*a)) == 64
    int(frame_id(*a), 16)


def test_parse_marks():
    text = (
        "frame:0    pts:0       pts_time:0\nlavfi.scene_score=0.000000\n"
        "frame:1    pts:2000000 pts_time:2\nlavfi.scene_score=0.731000\n"
        "frame:2    pts:2500000 pts_time:2.5\nstyle_pipeline.frame=1\n"
    )
    assert parse_marks(text) == [_Mark(0, 0.0), _Mark(2_000_000, 0.731), _Mark(2_500_000, None)]


@pytest.mark.parametrize(
    ("cuts", "gap", "first", "kept"),
    [
        ([1.0, 2.0, 3.0], 0.5, 0.0, [1.0, 2.0, 3.0]),
        ([1.0, 2.0, 3.0], 1.5, 0.0, [2.0]),
        ([0.2, 1.0, 1.3, 2.0], 0.5, 0.0, [1.0, 2.0]),
        ([0.2, 1.0], 0.5, None, [0.2, 1.0]),
        ([3.0, 1.0], 0.0, None, [1.0, 3.0]),
    ],
)
def test_thin_cuts(cuts, gap, first, kept):
    marks = [_Mark(round(c * 1e6), 0.5) for c in cuts]
    first_us = None if first is None else round(first * 1e6)
    assert [m.pts_us / 1e6 for m in thin_cuts(marks, gap, first_us)] == kept


@pytest.mark.parametrize(
    ("scores", "cap", "by_score", "kept"),
    [
        ([None, 0.4, 0.9, 0.5], 2, True, [0, 2]),
        ([None, 0.4, 0.9, 0.5], 3, True, [0, 2, 3]),
        ([0.4, 0.9, 0.5], 1, True, [1]),
        ([None] * 9, 3, False, [0, 4, 8]),
        ([None] * 5, 1, False, [0]),
        ([None] * 3, 5, False, [0, 1, 2]),
    ],
)
def test_cap_marks(scores, cap, by_score, kept):
    marks = [_Mark(i * 1000, s) for i, s in enumerate(scores)]
    assert [m.pts_us // 1000 for m in cap_marks(marks, cap, by_score=by_score)] == kept


def test_scene_mode_finds_every_cut_and_nothing_else(tmp_path, cut_video):
    video, cuts = cut_video
    out = extract_video_frames(video, tmp_path / "out", _scene())
    assert out[0].timestamp_s == 0.0 and out[0].scene_score is None
    _assert_matches([f.timestamp_s for f in out[1:]], cuts)
    assert all(f.scene_score > FrameSettings().scene_threshold for f in out[1:])
    for f in out:
        assert f.path.parent == tmp_path / "out"
        assert f.path.name == f"frame_{round(f.timestamp_s * 1000):09d}.jpg"
        with Image.open(f.path) as img:
            assert img.format == "JPEG" and img.size == (320, 180) == (f.width, f.height)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f.path.name for f in out]


def test_scene_analysis_at_low_width_saves_full_resolution(tmp_path, cut_video):
    video, cuts = cut_video
    out = extract_video_frames(video, tmp_path, _scene(analysis_width=64))
    _assert_matches([f.timestamp_s for f in out[1:]], cuts)
    assert {(f.width, f.height) for f in out} == {(320, 180)}


def test_scene_without_first_frame(tmp_path, cut_video):
    video, cuts = cut_video
    out = extract_video_frames(video, tmp_path, _scene(include_first_frame=False))
    _assert_matches([f.timestamp_s for f in out], cuts)


def test_scene_min_gap_drops_close_cuts(tmp_path, cut_video):
    video, _ = cut_video
    out = extract_video_frames(video, tmp_path, _scene(min_scene_gap_s=1.5))
    assert [round(f.timestamp_s, 3) for f in out] == [0.0, 2.0]


def test_scene_cap_keeps_first_and_strongest_cuts(tmp_path, cut_video):
    video, _ = cut_video
    full = extract_video_frames(video, tmp_path / "all", _scene())
    capped = extract_video_frames(video, tmp_path / "cap", _scene(max_frames_per_video=2))
    strongest = max(full[1:], key=lambda f: f.scene_score)
    assert [f.timestamp_s for f in capped] == [0.0, strongest.timestamp_s]


def test_scene_fetch_pass_gives_the_same_frames(tmp_path, cut_video, monkeypatch):
    """Cuts without a full-resolution candidate are fetched by the second pass."""
    video, _ = cut_video
    normal = extract_video_frames(video, tmp_path / "a", _scene())
    monkeypatch.setattr(frames_mod, "CANDIDATE_RATIO", 3.4)  # no candidate but frame 0
    fetched = extract_video_frames(video, tmp_path / "b", _scene())
    assert [f.timestamp_s for f in fetched] == [f.timestamp_s for f in normal]
    assert [f.scene_score for f in fetched] == [f.scene_score for f in normal]
    for a, b in zip(normal, fetched, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()


def test_keyframes_mode(tmp_path, gop_video):
    out = extract_video_frames(gop_video, tmp_path, FrameSettings(mode="keyframes"))
    assert [f.timestamp_s for f in out] == [0.0, 1.0, 2.0]
    assert all(f.scene_score is None and (f.width, f.height) == (160, 120) for f in out)


@pytest.mark.parametrize(
    ("interval", "cap", "expected"),
    [
        (1.0, 120, [0.0, 1.0, 2.0]),
        (0.5, 120, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]),
        (0.5, 3, [0.0, 1.0, 2.5]),  # evenly spaced when over the cap
        (10.0, 120, [0.0]),
    ],
)
def test_interval_mode(tmp_path, gop_video, interval, cap, expected):
    settings = FrameSettings(mode="interval", interval_s=interval, max_frames_per_video=cap)
    out = extract_video_frames(gop_video, tmp_path, settings)
    assert [f.timestamp_s for f in out] == expected


@pytest.mark.parametrize("mode", ["scene", "keyframes", "interval"])
def test_corrupt_file_raises_with_ffmpeg_stderr(tmp_path, mode):
    bad = make_bad_file(tmp_path)
    with pytest.raises(FrameExtractionError, match="ffmpeg failed on corrupt_clip.mp4") as info:
        extract_video_frames(bad, tmp_path / "out", FrameSettings(mode=mode))
    assert "Invalid data" in str(info.value)
    assert list((tmp_path / "out").iterdir()) == []  # the work dir is cleaned up


def test_audio_only_and_missing_files_raise(tmp_path):
    audio = make_audio_only(tmp_path / "tone.m4a")
    with pytest.raises(FrameExtractionError):
        extract_video_frames(audio, tmp_path / "out", _scene())
    with pytest.raises(FrameExtractionError, match="no such video"):
        extract_video_frames(tmp_path / "missing.mp4", tmp_path / "out", _scene())


@pytest.mark.parametrize("matrix", ["bt709", "bt601"])
def test_jpeg_colours_follow_the_video_matrix(tmp_path, matrix):
    """A BT.709 (or BT.601) tagged video keeps its RGB colours in the saved JPEG."""
    video = tmp_path / f"{matrix}.mp4"
    tag = "bt709" if matrix == "bt709" else "smpte170m"
    run_ffmpeg(
        "-f", "lavfi", "-i", "color=c=0xC81E3C:size=64x48:rate=10", "-t", "1",
        "-vf", f"scale=out_color_matrix={matrix}:out_range=tv:flags=accurate_rnd,format=yuv420p",
        "-colorspace", tag, "-color_range", "tv", "-c:v", "libx264", "-qp", "0", str(video),
    )  # fmt: skip
    out = extract_video_frames(video, tmp_path / "out", FrameSettings(mode="keyframes"))
    with Image.open(out[0].path) as img:
        r, g, b = img.getpixel((32, 24))
    assert abs(r - 0xC8) <= 4 and abs(g - 0x1E) <= 4 and abs(b - 0x3C) <= 4, (r, g, b)


def test_awkward_output_directory_names(tmp_path, cut_video):
    video, cuts = cut_video
    out_dir = tmp_path / "we ird: [dir], 50%'s; x=y"
    out = extract_video_frames(video, out_dir, _scene())
    _assert_matches([f.timestamp_s for f in out[1:]], cuts)
    assert all(f.path.parent == out_dir and f.path.is_file() for f in out)


def test_relative_video_name_that_looks_like_a_protocol(tmp_path, cut_video, monkeypatch):
    video, cuts = cut_video
    monkeypatch.chdir(tmp_path)
    (tmp_path / "concat:clip.mp4").write_bytes(video.read_bytes())
    out = extract_video_frames(Path("concat:clip.mp4"), Path("out"), _scene())
    _assert_matches([f.timestamp_s for f in out[1:]], cuts)


@pytest.mark.parametrize(
    "shots",
    [[3.0], [0.4], [1.5, 1.5], [0.6] * 5, [0.6, 0.3]],
    ids=["single-shot", "under-a-second", "one-cut", "many-cuts", "short-with-cut"],
)
@pytest.mark.parametrize("first", [True, False])
def test_every_shot_gives_a_frame(tmp_path, shots, first):
    """0, 1 and many cuts, clips under a second: the first shot too (no more exit 234)."""
    video = tmp_path / "clip.mp4"
    cuts = make_cut_video(video, width=160, height=96, fps=FPS, shot_seconds=shots, seed=3)
    out = extract_video_frames(video, tmp_path / "out", _scene(include_first_frame=first))
    found = [f.timestamp_s for f in out]
    if first or not cuts:
        assert found[0] == 0.0 and out[0].scene_score is None
        found = found[1:]
    _assert_matches(found, cuts)


@pytest.mark.parametrize("mode", ["scene", "keyframes", "interval"])
@pytest.mark.parametrize("seconds", [3, 0.2])
def test_single_colour_clip_gives_its_first_frame(tmp_path, mode, seconds):
    """The issue's reproduction: a cut-free, single-colour H.264 clip."""
    video = tmp_path / "gray.mp4"
    run_ffmpeg(
        "-f", "lavfi", "-i", f"color=c=gray:s=640x360:d={seconds}:r=25",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video),
    )  # fmt: skip
    settings = FrameSettings(mode=mode, include_first_frame=False)
    out = extract_video_frames(video, tmp_path / "out", settings)
    expected = [0.0, 2.0] if (mode, seconds) == ("interval", 3) else [0.0]  # interval_s=2
    assert [f.timestamp_s for f in out] == expected
    assert (out[0].width, out[0].height) == (640, 360)
    with Image.open(out[0].path) as img:
        assert abs(img.convert("L").getpixel((320, 180)) - 128) <= 4
