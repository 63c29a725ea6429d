"""Generated sample media: cut videos with known cuts, photos with EXIF, a corrupt file."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from style_pipeline.contracts.curation import QualityConfig
from style_pipeline.contracts.ingest import FrameSettings
from style_pipeline.curation.hashing import hamming, hash_file
from style_pipeline.curation.quality import gate, load_analysis_image, measure
from style_pipeline.demo.samples import (
    EXIF_MAKE,
    EXIF_MODEL,
    EXIF_ORIENTATION,
    MIN_CUT_LUMA_DIFF,
    cut_frames,
    make_bad_file,
    make_cut_video,
    make_photos,
    populate_drop,
    shot_plan,
)
from style_pipeline.media.frames import extract_video_frames
from style_pipeline.media.sniff import UNKNOWN, sniff_file

MIN_GATE_PASS = 0.75  # share of generated images the default quality gate must accept
MIN_PHASH_DISTANCE = 17  # distinct photos / shots are no near-duplicates


@pytest.mark.parametrize(
    ("shots", "fps", "expected"),
    [
        ([1.0, 1.0, 1.0], 10, [10, 20]),
        ([0.5, 2.0], 30, [15]),
        ([2.0], 15, []),
        ([1 / 3, 1 / 3, 1 / 3], 30, [10, 20]),
    ],
)
def test_cut_frames(shots, fps, expected):
    assert cut_frames(shots, fps) == expected


@pytest.mark.parametrize("shots", [[], [1.0, 0.0], [1.0, -1.0], [0.01, 1.0]])
def test_cut_frames_rejects_bad_plans(shots):
    with pytest.raises(ValueError):
        cut_frames(shots, 10)


def _luma_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray").astype(np.int16) for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("samples") / "cuts.mp4"
    cuts = make_cut_video(path, width=160, height=96, fps=10, shot_seconds=[1.0, 1.5, 1.0])
    return path, cuts


def test_cut_video_has_known_cuts_and_motion(cut_video):
    path, cuts = cut_video
    assert cuts == [1.0, 2.5]
    frames = _luma_frames(path)
    assert len(frames) == 35
    assert frames[0].shape == (96, 160)
    diffs = [float(np.abs(b - a).mean()) for a, b in zip(frames, frames[1:], strict=False)]
    cut_diffs = [diffs[9], diffs[24]]  # frame 10 and frame 25 start new shots
    in_shot = [d for i, d in enumerate(diffs) if i not in (9, 24)]
    assert min(cut_diffs) >= MIN_CUT_LUMA_DIFF * 0.8  # encoder noise eats a little
    assert max(in_shot) < MIN_CUT_LUMA_DIFF / 2
    assert min(in_shot) > 0.3  # every shot moves: no frozen shots


def test_cut_video_is_deterministic(tmp_path, cut_video):
    path, _ = cut_video
    again = tmp_path / "again.mp4"
    make_cut_video(again, width=160, height=96, fps=10, shot_seconds=[1.0, 1.5, 1.0])
    assert again.read_bytes() == path.read_bytes()
    other = tmp_path / "other.mp4"
    make_cut_video(other, width=160, height=96, fps=10, shot_seconds=[1.0, 1.5, 1.0], seed=1)
    assert other.read_bytes() != path.read_bytes()


@pytest.mark.parametrize(("width", "height"), [(161, 96), (160, 95), (16, 16)])
def test_cut_video_rejects_odd_sizes(tmp_path, width, height):
    with pytest.raises(ValueError):
        make_cut_video(tmp_path / "x.mp4", width=width, height=height, shot_seconds=[1.0])


def test_make_photos(tmp_path):
    paths = make_photos(tmp_path, 4, size=(120, 90))
    assert [p.name for p in paths] == [
        "photo_00.jpg",
        "photo_01.jpg",
        "photo_02.jpg",
        "photo_03.png",
    ]
    orientations = []
    for path in paths[:3]:
        with Image.open(path) as im:
            exif = im.getexif()
            assert im.size == (120, 90)
            assert exif[EXIF_MAKE] == "StyleCam"
            assert exif[EXIF_MODEL].startswith("SC-")
            orientations.append(exif[EXIF_ORIENTATION])
    assert orientations == [1, 6, 1]
    with Image.open(paths[3]) as im:
        assert im.mode == "RGBA"
        assert im.getpixel((0, 89))[3] == 255
        assert im.getpixel((20, 15))[3] == 0  # centre of the transparent ellipse
    first = paths[0].read_bytes()
    assert make_photos(tmp_path / "again", 1, size=(120, 90))[0].read_bytes() == first


def test_make_bad_file_is_no_media(tmp_path):
    bad = make_bad_file(tmp_path)
    assert bad.name == "corrupt_clip.mp4"
    assert bad.stat().st_size > 0
    assert sniff_file(bad) == UNKNOWN
    with pytest.raises(av.error.InvalidDataError):
        av.open(str(bad))


def test_populate_drop(tmp_path):
    samples = populate_drop(tmp_path / "drop", video_seconds=3.0, width=128, height=72, n_photos=2)
    assert samples.video == tmp_path / "drop" / "demo_cuts.mp4"
    assert samples.video.stat().st_size > 0
    assert samples.cut_times and all(0 < t < 3.0 for t in samples.cut_times)
    assert samples.cut_times == sorted(samples.cut_times)
    assert [p.suffix for p in samples.photos] == [".jpg", ".png"]
    assert samples.bad.name == "corrupt_clip.mp4"
    names = sorted(p.name for p in (tmp_path / "drop").iterdir())
    chat = ["demo_cuts.chat.log"] if samples.chat_log is not None else []  # with espeak-ng
    talks = [f"demo_talk_{n}.{ext}" for n in (1, 2) for ext in ("chat.log", "mp4")] if chat else []
    assert names == ["corrupt_clip.mp4", *chat, "demo_cuts.mp4", *talks, "photo_00.jpg",
                     "photo_01.png"]  # fmt: skip


@pytest.mark.parametrize("seconds", [1.0, 3.0, 7.5, 30.0])
def test_shot_plan_sums_and_cuts(seconds):
    shots = shot_plan(seconds, seed=3)
    assert sum(shots) == pytest.approx(seconds)
    assert len(shots) >= 2
    assert min(shots) >= 0.5
    assert shot_plan(seconds, seed=3) == shots


def test_shot_plan_rejects_short_videos():
    with pytest.raises(ValueError):
        shot_plan(0.5)


def _gate_reasons(paths) -> list[list[str]]:
    """Reject reasons of the default quality gate for each image (metrics only: no faces,
    no IQA models)."""
    config = QualityConfig()
    return [
        gate(measure(load_analysis_image(p, config.analysis_long_edge), p.name), config)[1]
        for p in paths
    ]


def _min_phash_distance(paths) -> int:
    hashes = [hash_file(p).phash for p in paths]
    return min(hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :])


@pytest.mark.parametrize("seed", [0, 1])
def test_photos_pass_the_default_quality_gate_and_are_distinct(tmp_path, seed):
    paths = make_photos(tmp_path, 6, seed=seed, size=(640, 480))
    reasons = _gate_reasons(paths)
    assert sum(not r for r in reasons) >= MIN_GATE_PASS * len(paths), reasons
    assert _min_phash_distance(paths) >= MIN_PHASH_DISTANCE


def test_cut_video_frames_pass_the_default_quality_gate_and_shots_are_distinct(tmp_path):
    video = tmp_path / "clip.mp4"
    make_cut_video(video, width=640, height=360, fps=10, shot_seconds=[1.0] * 4, seed=2)
    settings = FrameSettings(mode="interval", interval_s=0.5)
    frames = extract_video_frames(video, tmp_path / "frames", settings)
    assert [f.timestamp_s for f in frames] == [i / 2 for i in range(8)]
    reasons = _gate_reasons([f.path for f in frames])
    assert sum(not r for r in reasons) >= MIN_GATE_PASS * len(frames), reasons
    assert _min_phash_distance([f.path for f in frames[::2]]) >= MIN_PHASH_DISTANCE  # shot starts


def test_small_photos_fail_only_on_resolution(tmp_path):
    paths = make_photos(tmp_path, 3, seed=4, size=(320, 240))
    assert _gate_reasons(paths) == [["low_resolution"]] * 3
