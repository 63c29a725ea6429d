import struct

import pytest
from PIL import Image, ImageFile

from style_pipeline.contracts.ingest import IngestSettings
from style_pipeline.contracts.media import RejectReason
from style_pipeline.media import probe as probe_module
from style_pipeline.media.errors import MediaRejected
from style_pipeline.media.isobmff import check_top_level_atoms
from style_pipeline.media.probe import probe_image, probe_video
from style_pipeline_tests.media.factories import (
    make_audio_only,
    make_jpeg,
    make_png,
    make_png_bomb,
    make_video,
    run_ffmpeg,
    truncated_copy,
)

LIMITS = IngestSettings()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """One rendering of each container, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("videos")
    mp4 = make_video(root / "clip.mp4")
    out = {
        "mp4": mp4,
        "faststart": make_video(root / "fast.mp4", faststart=True),
        "mkv_audio": make_video(root / "clip.mkv", audio=True),
        "m4a": make_audio_only(root / "sound.m4a"),
        "avi": make_video(root / "clip.avi"),
    }
    for ext in ("ts", "mov"):
        run_ffmpeg("-i", str(mp4), "-c", "copy", str(root / f"clip.{ext}"))
        out[ext] = root / f"clip.{ext}"
    return out


@pytest.fixture(scope="module")
def bomb_20k(tmp_path_factory):
    """A 20000 x 20000 1-bit PNG (400 megapixels, ~50 kB on disk)."""
    return make_png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png", 20000, 20000)


def _rejected(call, *args) -> MediaRejected:
    with pytest.raises(MediaRejected) as caught:
        call(*args)
    return caught.value


# ---------------------------------------------------------------- images


def test_probe_jpeg_reads_exif(tmp_path):
    path = make_jpeg(
        tmp_path / "a.jpg",
        size=(80, 60),
        orientation=6,
        make="Canon",
        model="Canon EOS R5",
        datetime_original="2024:05:01 10:00:00",
        gps=True,
    )
    probe = probe_image(path, LIMITS)
    assert (probe.format, probe.width, probe.height, probe.mode) == ("JPEG", 80, 60, "RGB")
    assert probe.exif_camera == "Canon EOS R5"
    assert probe.exif_datetime == "2024:05:01 10:00:00"
    assert probe.exif_orientation == 6
    assert probe.exif_has_gps is True


@pytest.mark.parametrize(
    ("make", "model", "camera"),
    [("NIKON", "D750", "NIKON D750"), ("Apple", None, "Apple"), (None, None, None)],
)
def test_probe_camera_name(tmp_path, make, model, camera):
    probe = probe_image(make_jpeg(tmp_path / "a.jpg", make=make, model=model), LIMITS)
    assert probe.exif_camera == camera


def test_probe_png_without_exif(tmp_path):
    probe = probe_image(make_png(tmp_path / "a.png", size=(33, 17)), LIMITS)
    assert (probe.format, probe.width, probe.height) == ("PNG", 33, 17)
    assert probe.exif_orientation is None and probe.exif_datetime is None
    assert probe.exif_has_gps is False


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_jpeg_is_refused(tmp_path, fraction):
    path = make_jpeg(tmp_path / "a.jpg", size=(256, 192), quality=95)
    cut = truncated_copy(path, tmp_path / "cut.jpg", fraction)
    error = _rejected(probe_image, cut, LIMITS)
    assert error.reason is RejectReason.TRUNCATED
    assert "truncated" in error.detail


def test_truncated_png_is_refused(tmp_path):
    path = tmp_path / "noise.png"
    Image.effect_noise((128, 128), 50).save(path)
    error = _rejected(probe_image, truncated_copy(path, tmp_path / "cut.png", 0.5), LIMITS)
    assert error.reason in (RejectReason.TRUNCATED, RejectReason.CORRUPT)


def test_jpeg_header_with_garbage_body_is_corrupt(tmp_path):
    path = tmp_path / "bad.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x13\x37" * 200)
    error = _rejected(probe_image, path, LIMITS)
    assert error.reason in (RejectReason.CORRUPT, RejectReason.TRUNCATED)


@pytest.mark.parametrize(
    ("side", "fragment"),
    [
        (20000, "exceeds limit of"),  # Pillow's own guard trips while reading the header
        (6000, "6000x6000 = 36000000 pixels exceeds the limit of 1000000"),  # ours
    ],
)
def test_png_bomb_refused_from_header_without_decoding(
    tmp_path, bomb_20k, monkeypatch, side, fragment
):
    bomb = bomb_20k if side == 20000 else make_png_bomb(tmp_path / "bomb.png", side, side)
    assert bomb.stat().st_size < 200_000  # tiny on disk, huge decoded

    def no_decoding(self):
        raise AssertionError("the bomb must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    error = _rejected(probe_image, bomb, IngestSettings(max_image_pixels=1_000_000))
    assert error.reason is RejectReason.DECOMPRESSION_BOMB
    assert fragment in error.detail


def test_png_bomb_refused_by_pillow_guard_with_default_limits(bomb_20k):
    error = _rejected(probe_image, bomb_20k, LIMITS)  # 400 Mpx > 2 x Pillow's default limit
    assert error.reason is RejectReason.DECOMPRESSION_BOMB


def test_heic_without_plugin_is_unsupported(tmp_path):
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pillow-heif is installed: HEIC is decodable here")
    path = tmp_path / "a.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    error = _rejected(probe_image, path, LIMITS, "heic")
    assert error.reason is RejectReason.UNSUPPORTED_TYPE
    assert "pillow-heif" in error.detail


def test_pixel_limit_is_local_not_global(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    path = make_png(tmp_path / "a.png", size=(40, 30))
    error = _rejected(probe_image, path, IngestSettings(max_image_pixels=1000))
    assert error.reason is RejectReason.DECOMPRESSION_BOMB
    assert Image.MAX_IMAGE_PIXELS == before
    assert probe_image(path, IngestSettings(max_image_pixels=1200)).width == 40


# ---------------------------------------------------------------- videos


@pytest.mark.parametrize("name", ["mp4", "faststart", "mov", "ts", "avi"])
def test_probe_valid_videos(videos, name):
    probe = probe_video(videos[name], LIMITS, {"faststart": "mp4"}.get(name, name))
    assert (probe.codec, probe.width, probe.height) == ("h264", 160, 120)
    assert probe.fps == pytest.approx(10.0)
    assert probe.duration_s == pytest.approx(2.0, abs=0.15)
    assert probe.frame_count == 20
    assert probe.has_audio is False


def test_probe_video_with_audio(videos):
    probe = probe_video(videos["mkv_audio"], LIMITS, "matroska")
    assert probe.container.startswith("matroska")
    assert probe.has_audio is True
    assert probe.duration_s == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize(
    ("name", "sniffed", "fragment"),
    [
        ("mp4", "mp4", "moov atom not found"),
        ("faststart", "mp4", "file ends inside the 'mdat' atom"),
        ("mkv_audio", "matroska", "stream stops at 1."),
        ("avi", "avi", "stream stops at 0."),
    ],
)
def test_video_cut_in_half_is_truncated(videos, tmp_path, name, sniffed, fragment):
    source = videos[name]
    cut = truncated_copy(source, tmp_path / f"cut{source.suffix}", 0.5)
    error = _rejected(probe_video, cut, LIMITS, sniffed)
    assert error.reason is RejectReason.TRUNCATED
    assert fragment in error.detail


def test_truncated_mp4_without_sniffed_format_still_refused(videos, tmp_path):
    cut = truncated_copy(videos["mp4"], tmp_path / "cut.mp4", 0.5)
    error = _rejected(probe_video, cut, LIMITS)  # straight to ffmpeg
    assert error.reason is RejectReason.CORRUPT
    assert "Invalid data" in error.detail


@pytest.mark.parametrize(
    ("limits", "reason", "fragment"),
    [
        (IngestSettings(max_video_seconds=1), RejectReason.TOO_LONG, "2.00 s exceeds"),
        (IngestSettings(max_video_pixels=160 * 119), RejectReason.RESOLUTION_TOO_LARGE, "160x120"),
    ],
)
def test_video_limits(videos, limits, reason, fragment):
    error = _rejected(probe_video, videos["mp4"], limits, "mp4")
    assert error.reason is reason
    assert fragment in error.detail


def test_audio_only_file_has_no_video_stream(videos):
    error = _rejected(probe_video, videos["m4a"], LIMITS, "mp4")
    assert error.reason is RejectReason.NO_VIDEO_STREAM
    assert "audio" in error.detail


def test_text_file_is_not_a_video(tmp_path):
    path = tmp_path / "notes.mkv"
    path.write_text("this is not a video\n" * 20)
    assert _rejected(probe_video, path, LIMITS).reason is RejectReason.CORRUPT


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory):
    """Two minutes at 10 fps whose only keyframe is the first frame (1200 frames, ~1 s to
    make): the probe once decoded all of it to check the tail (issue 17, item 2)."""
    root = tmp_path_factory.mktemp("long_gop")
    return make_video(root / "long.mkv", seconds=120, size=(64, 48), gop=100_000)


def test_long_gop_probe_decodes_a_bounded_number_of_frames(long_gop):
    probe = probe_video(long_gop, LIMITS, "matroska")
    assert probe.duration_s == pytest.approx(120.0, abs=0.2)
    assert probe.frame_count == 1200
    # The first frame only: no keyframe lies in the last 60 s, so nothing there is decoded
    # (the packets up to the declared end are still demuxed). Before: 1200 frames.
    assert probe.frames_decoded == 1


def test_long_gop_file_cut_short_is_still_truncated(long_gop, tmp_path):
    cut = truncated_copy(long_gop, tmp_path / "cut.mkv", 0.6)
    error = _rejected(probe_video, cut, LIMITS, "matroska")
    assert error.reason is RejectReason.TRUNCATED
    assert "of the declared 120.00 s" in error.detail


def test_short_gop_probe_decodes_the_last_gop_head(tmp_path):
    path = make_video(tmp_path / "gop.mp4", seconds=30, size=(64, 48), gop=20)
    probe = probe_video(path, LIMITS, "mp4")
    # The first frame, then the keyframe at 28 s and 7 frames after it (of 300 in all).
    assert probe.frames_decoded == 1 + 8
    assert probe.frame_count == 300


def test_probe_past_its_time_limit_is_refused_timeout(videos):
    error = _rejected(probe_video, videos["mp4"], IngestSettings(probe_timeout_s=1e-9), "mp4")
    assert error.reason is RejectReason.TIMEOUT
    assert "longer than the limit of 1e-09 s" in error.detail


def test_probe_deadline_is_checked_between_packets(long_gop, monkeypatch):
    """The probe's own clock: the deadline is set on entry, every later reading is past it."""
    readings = iter([0.0])
    monkeypatch.setattr(probe_module.time, "monotonic", lambda: next(readings, 1e6))
    error = _rejected(probe_video, long_gop, IngestSettings(probe_timeout_s=60), "matroska")
    assert error.reason is RejectReason.TIMEOUT
    assert error.detail == "probing took longer than the limit of 60 s; stopped"


# ---------------------------------------------------------------- ISO-BMFF atoms


def _atom(kind: bytes, payload: bytes = b"", size: int | None = None) -> bytes:
    return struct.pack(">I", 8 + len(payload) if size is None else size) + kind + payload


def test_atoms_of_a_complete_file(videos):
    kinds = [a.type for a in check_top_level_atoms(videos["faststart"])]
    assert kinds.index("moov") < kinds.index("mdat")
    kinds = [a.type for a in check_top_level_atoms(videos["mp4"])]
    assert kinds.index("mdat") < kinds.index("moov")


@pytest.mark.parametrize(
    ("data", "reason", "fragment"),
    [
        (_atom(b"ftyp", b"isom") + _atom(b"mdat", b"x" * 8), RejectReason.TRUNCATED, "moov"),
        (_atom(b"ftyp", b"isom") + _atom(b"moov", size=4), RejectReason.CORRUPT, "impossible"),
        (
            _atom(b"ftyp", b"isom") + _atom(b"moov", b"m") + _atom(b"mdat", b"1234", size=99),
            RejectReason.TRUNCATED,
            "only 12 present",
        ),
        (_atom(b"ftyp", b"isom") + b"\x00\x00\x00\x01mdat\x00", RejectReason.TRUNCATED, "header"),
        (b"\x00\x00\x00\x08nope", RejectReason.CORRUPT, "no MP4"),
    ],
)
def test_atom_walk_refusals(tmp_path, data, reason, fragment):
    path = tmp_path / "x.mp4"
    path.write_bytes(data)
    error = _rejected(check_top_level_atoms, path)
    assert error.reason is reason
    assert fragment in error.detail


@pytest.mark.parametrize(
    "tail",
    [
        _atom(b"mdat", b"abcd", size=0),  # size 0: to the end of the file
        b"\x00\x00\x00\x01mdat" + struct.pack(">Q", 20) + b"abcd",  # 64-bit size
        b"garbage trailer that is no atom",
    ],
)
def test_atom_walk_accepts(tmp_path, tail):
    path = tmp_path / "x.mp4"
    path.write_bytes(_atom(b"ftyp", b"isom") + _atom(b"moov", b"m") + tail)
    assert [a.type for a in check_top_level_atoms(path)][:2] == ["ftyp", "moov"]
