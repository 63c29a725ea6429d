"""Magic-byte format detection: what a file *is*, whatever its name says.

``sniff_bytes`` looks at the head of a file (``SNIFF_BYTES``; the signatures themselves
sit in the first 64 bytes, MPEG-TS needs a second 188-byte packet to be told apart from
text starting with ``G``). ``classify`` adds the file extension to tell a mislabelled
file (``EXTENSION_MISMATCH``) from a file type we do not take (``UNSUPPORTED_TYPE``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from style_pipeline.contracts.media import MediaKind, RejectReason
from style_pipeline.media.errors import MediaRejected

SNIFF_BYTES = 512

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp"}
    | {".heic", ".heif", ".avif"}
)
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".qt", ".3gp", ".3g2", ".mkv", ".webm", ".avi"}
    | {".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".mpe", ".vob"}
)
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS

CANONICAL_EXTENSION = {
    "jpeg": ".jpg",
    "png": ".png",
    "gif": ".gif",
    "webp": ".webp",
    "tiff": ".tif",
    "bmp": ".bmp",
    "heic": ".heic",
    "avif": ".avif",
    "mp4": ".mp4",
    "mov": ".mov",
    "m4v": ".m4v",
    "3gp": ".3gp",
    "matroska": ".mkv",
    "webm": ".webm",
    "avi": ".avi",
    "mpegts": ".ts",
    "mpegps": ".mpg",
}

_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_VIDEO_BRAND_PREFIXES = (b"iso", b"mp4", b"mp7", b"avc", b"3g", b"M4", b"qt", b"dash")
_VIDEO_BRANDS = {b"MSNV", b"f4v ", b"f4p ", b"mmp4", b"XAVC", b"NDAS", b"MQT ", b"hvc1"}
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}


@dataclass(frozen=True, slots=True)
class Sniffed:
    """The detected kind and short format name (``""`` when unknown)."""

    kind: MediaKind
    format: str

    @property
    def known(self) -> bool:
        return self.kind is not MediaKind.UNKNOWN


UNKNOWN = Sniffed(MediaKind.UNKNOWN, "")


def _image(fmt: str) -> Sniffed:
    return Sniffed(MediaKind.IMAGE, fmt)


def _video(fmt: str) -> Sniffed:
    return Sniffed(MediaKind.VIDEO, fmt)


def _iso_bmff(head: bytes) -> Sniffed:
    """Classify an ISO base media file (``ftyp`` box) by its major and compatible brands."""
    size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    end = min(size if size >= 16 else len(head), len(head))
    compatible = {head[i : i + 4] for i in range(16, end - 3, 4)}
    brands = {major} | compatible
    if major in _AVIF_BRANDS or (major in {b"mif1", b"msf1"} and brands & _AVIF_BRANDS):
        return _image("avif")
    if major in _HEIF_BRANDS:
        return _image("heic")
    if major == b"qt  ":
        return _video("mov")
    if major.startswith((b"3gp", b"3g2")):
        return _video("3gp")
    if major.startswith(b"M4V"):
        return _video("m4v")
    if any(b.startswith(_VIDEO_BRAND_PREFIXES) or b in _VIDEO_BRANDS for b in brands):
        return _video("mp4")
    return UNKNOWN  # e.g. Canon CR3 ("crx "), JPEG 2000 ("jp2 ")


def _is_mpegts(head: bytes) -> bool:
    """Two consecutive 188-byte TS packets (or 192-byte M2TS packets) start with 0x47."""
    for offset, stride in ((0, 188), (4, 192)):
        if len(head) > offset + stride and head[offset] == head[offset + stride] == 0x47:
            return True
    return False


def sniff_bytes(head: bytes) -> Sniffed:
    """Detect the media format from the first bytes of a file; ``UNKNOWN`` when none fits."""
    if head.startswith(b"\xff\xd8\xff"):
        return _image("jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _image("png")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return _image("gif")
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"WEBP": _image("webp"), b"AVI ": _video("avi")}.get(head[8:12], UNKNOWN)
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return _image("tiff")
    if (
        head.startswith(b"BM")
        and len(head) >= 18
        and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES
    ):
        return _image("bmp")
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _iso_bmff(head)
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        return _video("mov")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return _video("webm" if b"webm" in head[:64] else "matroska")
    if head.startswith(b"\x00\x00\x01\xba"):
        return _video("mpegps")
    if _is_mpegts(head):
        return _video("mpegts")
    return UNKNOWN


def read_head(path: str | os.PathLike, n: int = SNIFF_BYTES) -> bytes:
    """The first ``n`` bytes of a file (fewer when it is shorter)."""
    with open(path, "rb") as handle:
        return handle.read(n)


def sniff_file(path: str | os.PathLike) -> Sniffed:
    """``sniff_bytes`` of the head of the file at ``path``."""
    return sniff_bytes(read_head(path))


# Well-known non-media signatures, named (never shown) in reject details.
_OTHER_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office/EPUB file)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
)


def describe_head(head: bytes) -> str:
    """What unrecognised content is, in words, for reject details.

    Names a kind (text, HTML, a PDF, binary data); never echoes the bytes themselves: a
    dropped file may be a secret (a hard link to ``/etc/shadow``, a key file renamed
    ``.jpg``) and reject details end up in logs, tables and quarantine reason files.
    """
    for signature, name in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return name
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # a multi-byte character cut by the head's end is fine
            return "binary data with no known signature"
        text = head[: exc.start].decode("utf-8")
    if not text or not all(c.isprintable() or c in "\t\r\n" for c in text):
        return "binary data with no known signature"
    lead = text.lstrip("\ufeff \t\r\n").lower()
    if lead.startswith(("<!doctype html", "<html")):
        return "HTML text"
    if lead.startswith("<?xml") or lead.startswith("<svg"):
        return "XML text"
    return "plain text"


def classify(head: bytes, extension: str) -> Sniffed:
    """Sniff ``head``; refuse content that is no media format we take.

    Raises ``MediaRejected``: ``EXTENSION_MISMATCH`` when ``extension`` is a media
    extension but the content is something else, ``UNSUPPORTED_TYPE`` otherwise.
    A known format under another media extension (a PNG named ``.jpg``) is accepted:
    the content decides.
    """
    sniffed = sniff_bytes(head)
    if sniffed.known:
        return sniffed
    ext = extension.lower()
    if ext in MEDIA_EXTENSIONS:
        kind = "images" if ext in IMAGE_EXTENSIONS else "videos"
        raise MediaRejected(
            RejectReason.EXTENSION_MISMATCH,
            f"extension {ext} is for {kind}, but the content is {describe_head(head)}",
        )
    shown = ext or "no extension"
    raise MediaRejected(
        RejectReason.UNSUPPORTED_TYPE,
        f"not an image or video format we take ({shown}; content is {describe_head(head)})",
    )


# Chat logs ---------------------------------------------------------------------------------
# Text has no magic bytes: a chat log is told by its name (``<video stem>.chat.<ext>`` or
# yt-dlp's ``<video stem>.live_chat.json`` next to the video, or any file under a ``chat/``
# folder), then its head must be UTF-8 text in one of the formats ``speech.chat_formats``
# reads.

CHAT_EXTENSIONS = frozenset({".log", ".txt", ".irc", ".json", ".jsonl", ".ndjson", ".csv"})
CHAT_FOLDER = "chat"
CHAT_SNIFF_BYTES = 8192  # a YouTube replay line is 1-3 KB
_CHAT_MARKERS = (".chat", ".live_chat")
_YOUTUBE_KEYS = ('"replayChatItemAction"', '"addChatItemAction"', '"liveChatTextMessageRenderer"')
_BRACKETED_LOG = re.compile(r"^\[[0-9:\-+ TZUCa-z.]{4,40}\]\s+\S")
_RAW_IRC = re.compile(r"^(@\S+ )?:\S+ [A-Z0-9]+ ")


def chat_video_stem(rel: str) -> str | None:
    """The stem of the video a chat log at ``rel`` belongs to; None: not a chat log by name.

    ``a/show.chat.log`` and ``a/show.live_chat.json`` belong to ``a/show.<video ext>``;
    ``chat/show.jsonl`` (and ``chat/show.chat.jsonl``) to a video ``show.<ext>`` anywhere.
    """
    path = PurePosixPath(rel)
    if path.suffix.lower() not in CHAT_EXTENSIONS:
        return None
    stem = path.stem
    for marker in _CHAT_MARKERS:
        if stem.lower().endswith(marker) and len(stem) > len(marker):
            return stem[: -len(marker)]
    if len(path.parts) > 1 and path.parts[-2].lower() == CHAT_FOLDER:
        return stem
    return None


def is_chat_folder_file(rel: str) -> bool:
    """A chat log under a ``chat/`` folder (its video may sit anywhere in the drop)."""
    parts = PurePosixPath(rel).parts
    return len(parts) > 1 and parts[-2].lower() == CHAT_FOLDER


def chat_text(head: bytes) -> str | None:
    """``head`` as text (BOM dropped, a multi-byte character cut at the end tolerated)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return None
        text = head[: exc.start].decode("utf-8")
    text = text.lstrip("\ufeff")
    if "\x00" in text:
        return None
    return text


def sniff_chat(head: bytes, extension: str) -> str | None:
    """The ``ChatFormat`` value of a chat log's head; None: no chat format we read."""
    text = chat_text(head)
    if text is None:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()][:20]
    if not lines:
        return None
    if any(key in text for key in _YOUTUBE_KEYS):
        return "youtube_live_chat"
    if extension.lower() == ".csv":
        return "generic_csv"
    for line in lines:
        if line.startswith("# Start logging") or _BRACKETED_LOG.match(line):
            return "twitch_irc"
        if _RAW_IRC.match(line) and " PRIVMSG " in text:
            return "twitch_irc"
    if lines[0].startswith("{"):
        return "generic_jsonl"
    return None
