import datetime as dt
import hashlib
import json
import logging
import os
from pathlib import Path

import pytest

from style_pipeline.contracts import RawMediaRecord
from style_pipeline.contracts.ingest import IngestSettings
from style_pipeline.contracts.media import MediaKind, MediaStatus, RejectReason
from style_pipeline.media import ingest as ingest_module
from style_pipeline.media.dropfolder import DropEntry, scan_drop
from style_pipeline.media.ingest import (
    ingest_entries,
    object_key,
    quarantine_key,
    sanitize_name,
)
from style_pipeline.media.ledger import ChecksumLedger
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import records_to_frame
from style_pipeline_tests.media.factories import (
    copy_to,
    make_audio_only,
    make_jpeg,
    make_png,
    make_png_bomb,
    make_video,
    truncated_copy,
)

DAY = dt.date(2026, 3, 2)
LIMITS = IngestSettings(max_image_pixels=1_000_000)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    return {
        "mp4": make_video(root / "clip.mp4"),
        "faststart": make_video(root / "fast.mp4", faststart=True),
        "m4a": make_audio_only(root / "sound.m4a"),
        "jpeg": make_jpeg(root / "big.jpg", size=(256, 192), quality=95),
        "bomb": make_png_bomb(root / "bomb.png", 20000, 20000),
    }


@pytest.fixture
def drop(tmp_path) -> Path:
    path = tmp_path / "drop"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(str(tmp_path / "storage"))


def run(drop: Path, store: Store, day=DAY, limits=LIMITS) -> list[RawMediaRecord]:
    return ingest_entries(scan_drop(drop), drop, day, store, limits)


def by_name(records) -> dict[str, RawMediaRecord]:
    return {r.source_name: r for r in records}


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(root: Path) -> dict:
    """Everything observable about a tree: entries, modes, mtimes, bytes, link targets."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if path.is_symlink():
                content = os.readlink(path)
            elif path.is_file():
                content = path.read_bytes()
            else:
                content = None
            state[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, content)
    return state


def all_keys(store: Store, prefix: str) -> list[str]:
    """Every file key below ``prefix`` (recursive), sorted."""
    base = store.local_path(prefix)
    files = base.rglob("*") if base.exists() else []
    return sorted(f"{prefix}/{p.relative_to(base).as_posix()}" for p in files if p.is_file())


# ---------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("source_name", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("2026-03-02/sub dir/my photo.JPG", "my_photo.JPG"),
        ("bad name\n\u2615 \u00fc.mp4", "bad_name_\u00fc.mp4"),
        ("caf\u00e9 \u65e5\u672c.png", "caf\u00e9_\u65e5\u672c.png"),
        ("cafe\u0301.jpg", "caf\u00e9.jpg"),  # decomposed accent is kept, composed
        ("..hidden", "hidden"),
        ("...", "file"),
        ("a\tb\x00c.jpg", "a_b_c.jpg"),
        ("x" * 300 + ".jpeg", "x" * 155 + ".jpeg"),
    ],
)
def test_sanitize_name(source_name, expected):
    assert sanitize_name(source_name) == expected


def test_sanitize_name_limits_utf8_bytes():
    name = sanitize_name("\u00e9" * 200 + ".png")
    assert name.endswith(".png") and len(name.encode()) <= 160


@pytest.mark.parametrize(
    ("extension", "format_name", "suffix"),
    [
        (".jpg", "jpeg", ".jpg"),
        (".jpeg", "jpeg", ".jpeg"),
        (".dat", "png", ".png"),
        ("", "mp4", ".mp4"),
    ],
)
def test_object_key(extension, format_name, suffix):
    digest = "ab" * 32
    assert object_key(digest, extension, format_name) == f"raw_media/objects/ab/{digest}{suffix}"


def test_quarantine_key():
    digest = "0123456789abcdef" * 4
    assert quarantine_key(DAY, digest, "a/b c.mp4") == (
        "raw_media/quarantine/2026-03-02/0123456789abcdef_b_c.mp4"
    )
    assert (
        quarantine_key(DAY, "", "empty.jpg") == "raw_media/quarantine/2026-03-02/unhashed_empty.jpg"
    )


# ---------------------------------------------------------------- accepted files


def test_accepts_photo_and_video_content_addressed(drop, store, media):
    photo = make_jpeg(drop / "Photo.JPG", orientation=6, make="Canon", model="EOS R5", gps=True)
    clip = copy_to(media["mp4"], drop / "2026-03-02" / "clip.mp4")
    before = snapshot(drop)
    records = run(drop, store)
    assert [r.source_name for r in records] == ["2026-03-02/clip.mp4", "Photo.JPG"]
    video, image = records
    photo_sha, clip_sha = sha(photo), sha(clip)

    assert image.status is MediaStatus.ACCEPTED and image.kind is MediaKind.IMAGE
    assert image.object_path == f"raw_media/objects/{photo_sha[:2]}/{photo_sha}.jpg"
    assert (image.media_id, image.extension, image.format_name) == (photo_sha, ".jpg", "jpeg")
    assert (image.width, image.height, image.exif_orientation) == (64, 48, 6)
    assert (image.exif_camera, image.exif_has_gps) == ("Canon EOS R5", True)

    assert video.status is MediaStatus.ACCEPTED and video.kind is MediaKind.VIDEO
    assert video.object_path == f"raw_media/objects/{clip_sha[:2]}/{clip_sha}.mp4"
    assert (video.codec, video.width, video.height, video.frame_count) == ("h264", 160, 120, 20)
    assert video.duration_s == pytest.approx(2.0) and video.fps == pytest.approx(10.0)
    assert video.has_audio is False and video.size_bytes == clip.stat().st_size

    assert store.read_bytes(image.object_path) == photo.read_bytes()
    assert store.read_bytes(video.object_path) == clip.read_bytes()
    assert ChecksumLedger(store).earliest(photo_sha) == (DAY, "Photo.JPG")
    assert store.exists(f"raw_media/ledger/{clip_sha}/2026-03-02.json")
    assert all_keys(store, "raw_media/quarantine") == []
    assert snapshot(drop) == before


def test_rerun_of_same_date_is_identical(drop, store, media):
    make_jpeg(drop / "a.jpg")
    copy_to(media["mp4"], drop / "b.mp4")
    (drop / "c.txt").write_text("notes")
    first = run(drop, store)
    keys = all_keys(store, "raw_media")
    assert run(drop, store) == first
    assert all_keys(store, "raw_media") == keys


def test_records_make_a_typed_frame(drop, store, media):
    make_jpeg(drop / "a.jpg")
    (drop / "b.mp4").write_text("not a video")
    frame = records_to_frame(run(drop, store), RawMediaRecord)
    assert frame["status"].to_list() == ["accepted", "rejected"]
    assert frame["reject_reason"].to_list() == [None, "extension_mismatch"]
    assert str(frame.schema["arrival_date"]) == "Date"


# ---------------------------------------------------------------- rejected files


def _text(text: str):
    return lambda path, media: path.write_text(text)


def _truncated(key: str, fraction: float = 0.5):
    return lambda path, media: truncated_copy(media[key], path, fraction)


def _copy(key: str):
    return lambda path, media: copy_to(media[key], path)


@pytest.mark.parametrize(
    ("name", "write", "reason", "hashed"),
    [
        ("clip.mp4", _text("hello, I am text\n"), RejectReason.EXTENSION_MISMATCH, True),
        ("photo.jpg", _text("<!DOCTYPE html><html></html>"), RejectReason.EXTENSION_MISMATCH, True),
        ("notes.txt", _text("shopping list"), RejectReason.UNSUPPORTED_TYPE, True),
        ("empty.jpg", _text(""), RejectReason.EMPTY_FILE, False),
        ("cut.mp4", _truncated("mp4"), RejectReason.TRUNCATED, True),
        ("cut fast.mp4", _truncated("faststart"), RejectReason.TRUNCATED, True),
        ("cut.jpg", _truncated("jpeg", 0.6), RejectReason.TRUNCATED, True),
        ("bomb.png", _copy("bomb"), RejectReason.DECOMPRESSION_BOMB, True),
        ("README", _text("no extension, no magic"), RejectReason.UNSUPPORTED_TYPE, True),
        ("sound.mp4", _copy("m4a"), RejectReason.NO_VIDEO_STREAM, True),
    ],
)
def test_bad_input_is_rejected_and_quarantined(drop, store, media, name, write, reason, hashed):
    path = drop / name
    write(path, media)
    make_png(drop / "zz_good.png")
    before = snapshot(drop)
    records = by_name(run(drop, store))
    record = records[name]
    digest = sha(path) if hashed else ""
    expected_key = (
        f"raw_media/quarantine/2026-03-02/{digest[:16] or 'unhashed'}_{sanitize_name(name)}"
    )

    assert record.status is MediaStatus.REJECTED and record.reject_reason is reason
    assert record.reject_detail and record.media_id == digest
    assert record.object_path == expected_key
    assert store.read_bytes(expected_key) == path.read_bytes()
    assert json.loads(store.read_bytes(f"{expected_key}.reason.json")) == {
        "source_name": name,
        "reason": reason.value,
        "detail": record.reject_detail,
    }
    assert records["zz_good.png"].status is MediaStatus.ACCEPTED  # one bad file, rest go on
    assert len(all_keys(store, "raw_media/objects")) == 1  # only zz_good.png
    assert snapshot(drop) == before


@pytest.mark.parametrize(
    ("name", "content", "detail"),
    [
        ("clip.mp4", "hello there", "extension .mp4 is for videos, but the content is plain "
         "text"),
        ("Photo.JPG", "<!DOCTYPE html>", "extension .jpg is for images, but the content is "
         "HTML text"),
    ],
)  # fmt: skip
def test_mismatch_detail_is_readable(drop, store, name, content, detail):
    (drop / name).write_text(content)
    (record,) = run(drop, store)
    assert record.reject_detail == detail


def test_odd_file_names_are_kept_verbatim(drop, store):
    names = ["my photo.jpg", "caf\u00e9 \u2615.jpg", "line\nbreak.jpg"]
    for i, name in enumerate(names):
        make_jpeg(drop / name, color=(10 * i, 200, 30))
    (drop / "bad name\n\u2615 \u00fc.mp4").write_text("not a video")
    records = by_name(run(drop, store))
    assert all(records[n].status is MediaStatus.ACCEPTED for n in names)
    bad = records["bad name\n\u2615 \u00fc.mp4"]
    digest = sha(drop / "bad name\n\u2615 \u00fc.mp4")
    assert bad.object_path == f"raw_media/quarantine/2026-03-02/{digest[:16]}_bad_name_\u00fc.mp4"
    assert store.exists(bad.object_path)


@pytest.mark.parametrize(("quarantine_max_mb", "quarantined"), [(1.0, True), (0.001, False)])
def test_too_large_is_not_hashed(drop, store, media, quarantine_max_mb, quarantined):
    path = copy_to(media["jpeg"], drop / "big.jpg")
    assert path.stat().st_size > 2048
    limits = IngestSettings(max_file_mb=0.001, quarantine_max_mb=quarantine_max_mb)
    (record,) = run(drop, store, limits=limits)
    assert record.reject_reason is RejectReason.TOO_LARGE
    assert record.media_id == "" and record.size_bytes == path.stat().st_size
    assert "MiB" in record.reject_detail
    key = "raw_media/quarantine/2026-03-02/unhashed_big.jpg"
    assert record.object_path == (key if quarantined else None)
    assert store.exists(key) is quarantined


def test_too_long_video(drop, store, media):
    copy_to(media["mp4"], drop / "long.mp4")
    (record,) = run(drop, store, limits=IngestSettings(max_video_seconds=1.5))
    assert record.reject_reason is RejectReason.TOO_LONG
    assert "2.00 s exceeds the limit of 1.5 s" in record.reject_detail
    assert record.kind is MediaKind.VIDEO and record.format_name == "mp4"
    assert store.exists(record.object_path)


# ---------------------------------------------------------------- paths and links


def test_links_and_special_files(tmp_path, drop, store):
    outside = make_jpeg(tmp_path / "outside" / "secret.jpg")
    inside = make_jpeg(drop / "sub" / "photo.jpg", color=(1, 2, 3))
    (drop / "escape.jpg").symlink_to(outside)
    (drop / "relative_escape.jpg").symlink_to("../outside/secret.jpg")
    (drop / "zz_link.jpg").symlink_to("sub/photo.jpg")
    (drop / "dangling.jpg").symlink_to(drop / "missing.jpg")
    (drop / "dirlink").symlink_to(drop / "sub")
    os.mkfifo(drop / "pipe.mp4")
    before = snapshot(drop)
    records = by_name(run(drop, store))

    for name in ("escape.jpg", "relative_escape.jpg"):
        assert records[name].reject_reason is RejectReason.PATH_ESCAPE
        assert "outside" in records[name].reject_detail
        assert records[name].object_path is None and records[name].media_id == ""
    assert records["dangling.jpg"].reject_reason is RejectReason.NOT_A_FILE
    assert "dangling" in records["dangling.jpg"].reject_detail
    assert records["dirlink"].reject_reason is RejectReason.NOT_A_FILE
    assert "directory" in records["dirlink"].reject_detail
    assert records["pipe.mp4"].reject_reason is RejectReason.NOT_A_FILE
    assert "FIFO" in records["pipe.mp4"].reject_detail

    # A link to a file inside the root is that file: same bytes, so the later name is a dup.
    assert records["sub/photo.jpg"].status is MediaStatus.ACCEPTED
    link = records["zz_link.jpg"]
    assert link.media_id == sha(inside) and link.duplicate_of == "sub/photo.jpg"
    assert link.reject_reason is RejectReason.DUPLICATE_CONTENT
    assert all_keys(store, "raw_media/quarantine") == []  # none of these is copied
    assert snapshot(drop) == before


SECRET = "s3cr3t-Token-4242"


def _secret_text(path: Path) -> None:
    path.write_text(f"{SECRET}:x:0:0:root:/root:/bin/bash\n")


def test_hard_link_to_a_file_outside_the_drop_folder_is_refused(tmp_path, drop, store):
    """``ln /etc/passwd drop/D/x.jpg`` (issue 17, item 8): never read, copied or echoed."""
    outside = tmp_path / "outside" / "passwd"
    outside.parent.mkdir()
    _secret_text(outside)
    os.link(outside, drop / "x.jpg")
    photo = make_jpeg(tmp_path / "outside" / "photo.jpg")
    os.link(photo, drop / "photo.jpg")  # valid media: a hard link is refused all the same
    make_png(drop / "zz_good.png")
    records = by_name(run(drop, store))

    for name in ("x.jpg", "photo.jpg"):
        record = records[name]
        assert record.reject_reason is RejectReason.PATH_ESCAPE
        assert "2 hard links" in record.reject_detail
        assert record.media_id == "" and record.object_path is None
    assert records["zz_good.png"].status is MediaStatus.ACCEPTED
    assert all_keys(store, "raw_media/quarantine") == []
    table = records_to_frame(list(records.values()), RawMediaRecord)
    assert SECRET not in str(table.to_dicts())


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("x.jpg", RejectReason.EXTENSION_MISMATCH),
        ("clip.mp4", RejectReason.EXTENSION_MISMATCH),
        ("id_rsa", RejectReason.UNSUPPORTED_TYPE),
        ("notes.txt", RejectReason.UNSUPPORTED_TYPE),
    ],
)
def test_reject_details_never_echo_file_contents(drop, store, name, reason, caplog):
    """A secret in a rejected file reaches neither the table, the quarantine reason file
    nor the log (issue 17, item 8: the first characters used to be quoted)."""
    _secret_text(drop / name)
    with caplog.at_level(logging.INFO, logger="style_pipeline.media.ingest"):
        (record,) = run(drop, store)
    assert record.reject_reason is reason
    assert record.object_path is not None  # quarantined: the file itself is kept there
    reason_file = store.read_bytes(f"{record.object_path}.reason.json").decode()
    table = records_to_frame([record], RawMediaRecord)
    for text in (reason_file, str(table.to_dicts()), caplog.text):
        assert SECRET not in text and SECRET[:6] not in text and "root:x" not in text
    assert "plain text" in record.reject_detail


def test_bytes_quoted_by_a_library_are_scrubbed(drop, store, monkeypatch):
    make_jpeg(drop / "a.jpg")

    def quoting(*args, **kwargs):
        raise SyntaxError(f"broken PNG file (chunk {SECRET.encode()!r})")

    monkeypatch.setattr(ingest_module, "probe_image", quoting)
    (record,) = run(drop, store)
    assert record.reject_reason is RejectReason.CORRUPT
    assert record.reject_detail == "SyntaxError: broken PNG file (chunk <bytes>)"


def test_dotdot_path_is_confined(tmp_path, drop, store):
    secret = make_jpeg(tmp_path / "outside" / "secret.jpg")
    sneaky = drop / "sub" / ".." / ".." / "outside" / "secret.jpg"
    st = secret.stat()
    entry = DropEntry(
        rel="sub/../../outside/secret.jpg",
        path=sneaky,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        is_symlink=False,
        is_regular=True,
    )
    (record,) = ingest_entries([entry], drop, DAY, store, LIMITS)
    assert record.reject_reason is RejectReason.PATH_ESCAPE
    assert all_keys(store, "raw_media") == []


def test_link_inside_root_is_processed_as_its_target(drop, store):
    target = make_jpeg(drop / "zz_target" / "photo.jpg")
    (drop / "a_link.jpg").symlink_to(target)
    records = by_name(run(drop, store))
    link = records["a_link.jpg"]
    assert link.status is MediaStatus.ACCEPTED and link.size_bytes == target.stat().st_size
    assert store.read_bytes(link.object_path) == target.read_bytes()
    assert records["zz_target/photo.jpg"].duplicate_of == "a_link.jpg"


# ---------------------------------------------------------------- duplicates


def test_duplicate_content_in_one_partition(drop, store):
    first = make_jpeg(drop / "b.jpg")
    copy_to(first, drop / "a copy.jpg")
    records = by_name(run(drop, store))
    original, dup = records["a copy.jpg"], records["b.jpg"]
    assert original.status is MediaStatus.ACCEPTED
    assert dup.reject_reason is RejectReason.DUPLICATE_CONTENT
    assert dup.duplicate_of == "a copy.jpg" and dup.object_path is None
    assert dup.media_id == original.media_id and dup.width == 64
    assert all_keys(store, "raw_media/quarantine") == []
    assert ChecksumLedger(store).partitions(original.media_id) == [DAY]


def test_only_earlier_partitions_count_as_duplicates(tmp_path, store):
    day1, day2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    drop1, drop2 = tmp_path / "drop1", tmp_path / "drop2"
    photo = make_jpeg(drop2 / "second.jpg")
    copy_to(photo, drop1 / "first.jpg")
    digest = sha(photo)

    (later,) = run(drop2, store, day=day2)  # processed first, before the backfill
    assert later.status is MediaStatus.ACCEPTED
    (earlier,) = run(drop1, store, day=day1)  # a later date never makes a duplicate
    assert earlier.status is MediaStatus.ACCEPTED
    assert (
        earlier.object_path == later.object_path == f"raw_media/objects/{digest[:2]}/{digest}.jpg"
    )

    (rerun2,) = run(drop2, store, day=day2)
    assert rerun2.reject_reason is RejectReason.DUPLICATE_CONTENT
    assert rerun2.duplicate_of == "2026-03-01:first.jpg"
    assert "accepted on 2026-03-01" in rerun2.reject_detail
    assert run(drop1, store, day=day1) == [earlier]
    assert ChecksumLedger(store).partitions(digest) == [day1, day2]


# ---------------------------------------------------------------- unexpected failures


def test_unexpected_error_becomes_corrupt_and_is_logged(drop, store, media, monkeypatch, caplog):
    make_jpeg(drop / "a.jpg")
    copy_to(media["mp4"], drop / "b.mp4")

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ingest_module, "probe_image", boom)
    with caplog.at_level(logging.ERROR, logger="style_pipeline.media.ingest"):
        records = by_name(run(drop, store))
    assert records["a.jpg"].reject_reason is RejectReason.CORRUPT
    assert records["a.jpg"].reject_detail == "RuntimeError: boom"
    assert store.exists(records["a.jpg"].object_path)  # quarantined
    assert records["b.mp4"].status is MediaStatus.ACCEPTED
    assert "a.jpg" in caplog.text


def test_read_error_is_unreadable(drop, store, monkeypatch):
    make_jpeg(drop / "a.jpg")

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(ingest_module, "sha256_file", denied)
    (record,) = run(drop, store)
    assert record.reject_reason is RejectReason.UNREADABLE
    assert "Permission denied" in record.reject_detail
    assert record.object_path is None
