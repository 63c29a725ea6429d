import struct

import pytest

from style_pipeline.contracts.media import MediaKind, RejectReason
from style_pipeline.media.errors import MediaRejected
from style_pipeline.media.sniff import (
    CANONICAL_EXTENSION,
    MEDIA_EXTENSIONS,
    UNKNOWN,
    Sniffed,
    classify,
    describe_head,
    sniff_bytes,
    sniff_file,
)
from style_pipeline_tests.media.factories import make_jpeg, make_png, make_video, run_ffmpeg

IMAGE, VIDEO = MediaKind.IMAGE, MediaKind.VIDEO


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00\x00\x00\x08free"


def ts_packets(stride: int = 188, prefix: int = 0) -> bytes:
    packet = b"\x00" * prefix + b"\x47" + b"\x1f\xff\x10" + b"\xff" * (stride - prefix - 4)
    return packet * 3


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", Sniffed(IMAGE, "jpeg")),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", Sniffed(IMAGE, "png")),
        (b"GIF87a\x01\x00", Sniffed(IMAGE, "gif")),
        (b"GIF89a\x01\x00", Sniffed(IMAGE, "gif")),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", Sniffed(IMAGE, "webp")),
        (b"II*\x00\x08\x00\x00\x00", Sniffed(IMAGE, "tiff")),
        (b"MM\x00*\x00\x00\x00\x08", Sniffed(IMAGE, "tiff")),
        (b"BM" + b"\x00" * 12 + struct.pack("<I", 40), Sniffed(IMAGE, "bmp")),
        (ftyp(b"heic", b"mif1", b"heic"), Sniffed(IMAGE, "heic")),
        (ftyp(b"mif1", b"mif1", b"heic"), Sniffed(IMAGE, "heic")),
        (ftyp(b"avif", b"mif1", b"avif"), Sniffed(IMAGE, "avif")),
        (ftyp(b"mif1", b"mif1", b"avif"), Sniffed(IMAGE, "avif")),
        (ftyp(b"isom", b"isom", b"avc1"), Sniffed(VIDEO, "mp4")),
        (ftyp(b"mp42", b"mp41"), Sniffed(VIDEO, "mp4")),
        (ftyp(b"M4A ", b"isom"), Sniffed(VIDEO, "mp4")),  # audio-only: probe says so
        (ftyp(b"qt  ", b"qt  "), Sniffed(VIDEO, "mov")),
        (ftyp(b"M4V ", b"M4V "), Sniffed(VIDEO, "m4v")),
        (ftyp(b"3gp4", b"isom"), Sniffed(VIDEO, "3gp")),
        (b"\x00\x00\x00\x08wide\x00\x00\x10\x00mdat", Sniffed(VIDEO, "mov")),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", Sniffed(VIDEO, "webm")),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", Sniffed(VIDEO, "matroska")),
        (b"RIFF\x00\x10\x00\x00AVI LIST", Sniffed(VIDEO, "avi")),
        (b"\x00\x00\x01\xba\x44\x00\x04\x00", Sniffed(VIDEO, "mpegps")),
        (ts_packets(), Sniffed(VIDEO, "mpegts")),
        (ts_packets(192, prefix=4), Sniffed(VIDEO, "mpegts")),
    ],
)
def test_sniff_known_signatures(head, expected):
    assert sniff_bytes(head) == expected
    assert expected.format in CANONICAL_EXTENSION


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff\xd8",  # too short for a JPEG SOI + marker
        b"<!DOCTYPE html><html><body>not a photo</body></html>",
        b"hello world, this is a text file",
        b"G" + b"x" * 400,  # one MPEG-TS sync byte is not enough
        b"RIFF\x24\x00\x00\x00WAVEfmt ",  # audio
        b"BMW is a car brand, not a bitmap",
        b"PK\x03\x04\x14\x00\x00\x00",  # zip
        b"%PDF-1.7\n",
        ftyp(b"crx ", b"crx "),  # Canon raw in an ISO-BMFF box
    ],
)
def test_sniff_unknown_content(head):
    assert sniff_bytes(head) == UNKNOWN
    assert not UNKNOWN.known


@pytest.mark.parametrize(
    ("head", "extension", "reason", "fragment"),
    [
        (b"just some text\n", ".mp4", RejectReason.EXTENSION_MISMATCH, "is for videos"),
        (b"<html><body>hi</body></html>", ".JPG", RejectReason.EXTENSION_MISMATCH, "HTML text"),
        (b"\x00\x01\x02\x03garbage", ".png", RejectReason.EXTENSION_MISMATCH, "binary data"),
        (b"plain notes", ".txt", RejectReason.UNSUPPORTED_TYPE, ".txt"),
        (b"PK\x03\x04\x14\x00", ".zip", RejectReason.UNSUPPORTED_TYPE, "a ZIP archive"),
        (b"plain notes", "", RejectReason.UNSUPPORTED_TYPE, "no extension"),
    ],
)
def test_classify_refuses_non_media(head, extension, reason, fragment):
    with pytest.raises(MediaRejected) as caught:
        classify(head, extension)
    assert caught.value.reason is reason
    assert fragment in caught.value.detail


@pytest.mark.parametrize("extension", [".jpg", ".png", ".dat", ""])
def test_classify_trusts_content_over_extension(extension):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    assert classify(png, extension) == Sniffed(IMAGE, "png")


def test_media_extensions_cover_every_canonical_extension():
    assert set(CANONICAL_EXTENSION.values()) <= MEDIA_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in MEDIA_EXTENSIONS)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"<!DOCTYPE html>", "HTML text"),
        (b"<?xml version='1.0'?><a/>", "XML text"),
        (b"\x00\x01\x02", "binary data with no known signature"),
        (b"caf\xc3\xa9", "plain text"),
        (b"caf\xc3", "plain text"),  # a character cut by the end of the head
        (b"root:x:0:0:root:/root:/bin/bash\n", "plain text"),
        (b"%PDF-1.7\n", "a PDF document"),
        (b"\x7fELF\x02\x01", "an ELF executable"),
        (b"", "binary data with no known signature"),
    ],
)
def test_describe_head(head, expected):
    """The kind of content in words, never the content itself (issue 17, item 8)."""
    described = describe_head(head)
    assert described == expected
    assert not head or head.decode("latin-1")[:4] not in described


def test_sniff_generated_files(tmp_path):
    jpeg = make_jpeg(tmp_path / "a.jpg")
    png = make_png(tmp_path / "b.png")
    mp4 = make_video(tmp_path / "c.mp4", seconds=0.5)
    run_ffmpeg("-i", str(mp4), "-c", "copy", str(tmp_path / "d.mkv"))
    run_ffmpeg("-i", str(mp4), "-c", "copy", str(tmp_path / "e.ts"))
    run_ffmpeg("-i", str(mp4), "-c", "copy", str(tmp_path / "f.mov"))
    assert sniff_file(jpeg) == Sniffed(IMAGE, "jpeg")
    assert sniff_file(png) == Sniffed(IMAGE, "png")
    assert sniff_file(mp4) == Sniffed(VIDEO, "mp4")
    assert sniff_file(tmp_path / "d.mkv") == Sniffed(VIDEO, "matroska")
    assert sniff_file(tmp_path / "e.ts") == Sniffed(VIDEO, "mpegts")
    assert sniff_file(tmp_path / "f.mov") == Sniffed(VIDEO, "mov")
