"""The domain core of ``raw_media``: validate, hash, probe and file away one day of drops.

For each drop entry (in ``rel`` order) the checks run cheapest first: path confinement
(symlinks and hard links), file type, readability, size, sha256, magic bytes, probe,
duplicates. Accepted files are
copied to a content-addressed, immutable key and noted in the checksum ledger; rejected
files (bar duplicates and path escapes) are copied to quarantine with a reason file.
The drop folder is only ever read.

Chat logs (``<video stem>.chat.<ext>`` or ``<video stem>.live_chat.json`` beside the video,
or any file under a ``chat/`` folder; ``media.sniff.chat_video_stem``) are not probed: they
must be UTF-8 text in a chat format ``speech.chat_formats`` reads, are kept like any
original (kind ``chat``, their own extension) and carry the source name and media_id of
their video when it arrived in the same partition (``associate_chats``).

A bad file never raises: every refusal becomes a rejected record. Storage errors (the
destination failing) do raise, since retrying the partition is the right response.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import stat
import unicodedata
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from style_pipeline.contracts.ingest import IngestSettings
from style_pipeline.contracts.media import MediaKind, MediaStatus, RawMediaRecord, RejectReason
from style_pipeline.media.checksum import sha256_file
from style_pipeline.media.dropfolder import DropEntry, SkippedEntry, confine
from style_pipeline.media.errors import MediaRejected, without_content
from style_pipeline.media.ledger import ChecksumLedger
from style_pipeline.media.probe import probe_image, probe_video
from style_pipeline.media.sniff import (
    CANONICAL_EXTENSION,
    CHAT_SNIFF_BYTES,
    MEDIA_EXTENSIONS,
    SNIFF_BYTES,
    chat_video_stem,
    classify,
    describe_head,
    is_chat_folder_file,
    read_head,
    sniff_chat,
)
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

log = logging.getLogger(__name__)

MIB = 1024 * 1024
_NOT_QUARANTINED = {
    RejectReason.DUPLICATE_CONTENT,  # the original is kept already
    RejectReason.PATH_ESCAPE,  # bytes from outside the drop root are never copied
    RejectReason.NOT_A_FILE,  # nothing to copy
    RejectReason.UNREADABLE,
    RejectReason.HIDDEN,  # never read
}
_UNSAFE_CHARS = re.compile(r"[^\w.\-]+")
_MAX_NAME_BYTES = 160
_FILE_TYPES = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def object_key(sha256: str, extension: str, format_name: str) -> str:
    """Content-addressed key of an accepted file; unknown extensions get the format's own."""
    ext = extension if extension in MEDIA_EXTENSIONS else CANONICAL_EXTENSION.get(format_name, "")
    return layout.raw_object_key(sha256, ext)


def sanitize_name(source_name: str) -> str:
    """The basename of ``source_name`` made safe for a storage key.

    Runs of whitespace, control and punctuation characters (other than ``.``, ``-``,
    ``_``) become ``_``; letters of any script stay (NFC-normalized); leading dots are removed; the
    result is at most 160 UTF-8 bytes, keeping the extension.
    """
    base = unicodedata.normalize("NFC", source_name.rsplit("/", 1)[-1])
    safe = _UNSAFE_CHARS.sub("_", base).lstrip(".") or "file"
    suffix = PurePosixPath(safe).suffix if len(PurePosixPath(safe).suffix) <= 12 else ""
    stem = safe[: len(safe) - len(suffix)] if suffix else safe
    while len((stem + suffix).encode()) > _MAX_NAME_BYTES:
        stem = stem[:-1]
    return (stem + suffix) or "file"


def quarantine_key(day: dt.date, sha256: str, source_name: str) -> str:
    """Quarantine key of a rejected file (``unhashed`` when it was refused before hashing)."""
    prefix = sha256[:16] if sha256 else "unhashed"
    return layout.quarantine_key(day.isoformat(), f"{prefix}_{sanitize_name(source_name)}")


def _resolve(entry: DropEntry, drop_root: Path) -> tuple[Path, int]:
    """The real path of ``entry`` (confined to the drop root, a regular file) and its size."""
    try:
        real = confine(drop_root, entry.path)
    except ValueError as exc:
        raise MediaRejected(RejectReason.PATH_ESCAPE, str(exc)) from exc
    try:
        st = os.stat(real)
    except FileNotFoundError as exc:
        what = "dangling symlink" if entry.is_symlink else "file vanished before it was read"
        raise MediaRejected(RejectReason.NOT_A_FILE, f"{what}: {real}") from exc
    except OSError as exc:
        raise MediaRejected(RejectReason.UNREADABLE, f"cannot stat: {exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        what = _FILE_TYPES.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise MediaRejected(RejectReason.NOT_A_FILE, f"{real} is {what}")
    if st.st_nlink > 1:
        # A hard link is the same inode under another name, which may lie anywhere on the
        # file system (``ln /etc/passwd drop/x.jpg``): its other names cannot be listed,
        # so the bytes cannot be shown to belong to the drop folder. Never read, never copied.
        raise MediaRejected(
            RejectReason.PATH_ESCAPE,
            f"the file has {st.st_nlink} hard links and may be a name of a file outside the "
            "drop folder; drop a copy instead",
        )
    return real, st.st_size


def _check_file(entry: DropEntry, drop_root: Path, limits: IngestSettings, fields: dict) -> Path:
    """Run every per-file check, filling ``fields`` as facts are learned; the real path."""
    real, size = _resolve(entry, drop_root)
    fields.update(real=real, size_bytes=size)
    if size == 0:
        raise MediaRejected(RejectReason.EMPTY_FILE, "the file is empty (0 bytes)")
    if size > limits.max_file_mb * MIB:
        raise MediaRejected(
            RejectReason.TOO_LARGE,
            f"{size} bytes exceeds the limit of {limits.max_file_mb:g} MiB",
        )
    try:
        fields["media_id"] = sha256_file(real)
        head = read_head(real)
    except OSError as exc:
        raise MediaRejected(RejectReason.UNREADABLE, f"cannot read: {exc}") from exc
    if chat_video_stem(entry.rel) is not None:
        return _check_chat(real, fields)
    sniffed = classify(head, fields["extension"])
    fields.update(kind=sniffed.kind, format_name=sniffed.format)
    if sniffed.kind is MediaKind.IMAGE:
        image = probe_image(real, limits, sniffed.format)
        fields.update(
            width=image.width,
            height=image.height,
            exif_camera=image.exif_camera,
            exif_datetime=image.exif_datetime,
            exif_orientation=image.exif_orientation,
            exif_has_gps=image.exif_has_gps,
        )
    else:
        video = probe_video(real, limits, sniffed.format)
        fields.update(
            codec=video.codec,
            width=video.width,
            height=video.height,
            fps=video.fps,
            duration_s=video.duration_s,
            frame_count=video.frame_count,
            has_audio=video.has_audio,
        )
    return real


def _check_chat(real: Path, fields: dict) -> Path:
    """A chat log (told by its name): UTF-8 text in a chat format we read, not probed."""
    try:
        head = read_head(real, CHAT_SNIFF_BYTES)
    except OSError as exc:
        raise MediaRejected(RejectReason.UNREADABLE, f"cannot read: {exc}") from exc
    chat_format = sniff_chat(head, fields["extension"])
    if chat_format is None:
        raise MediaRejected(
            RejectReason.UNSUPPORTED_TYPE,
            "named like a chat log, but the content is no chat format we read (Twitch IRC "
            "log, YouTube live-chat JSON lines, JSONL or CSV); content is "
            + describe_head(head[:SNIFF_BYTES]),
        )
    fields.update(kind=MediaKind.CHAT, format_name=chat_format)
    return real


def _video_of_chat(chat: RawMediaRecord, videos: list[RawMediaRecord]) -> RawMediaRecord | None:
    """The video a chat log belongs to: ``<stem>.<ext>`` beside it, or anywhere for ``chat/``."""
    stem = chat_video_stem(chat.source_name)
    here = PurePosixPath(chat.source_name).parent
    same_stem = [v for v in videos if PurePosixPath(v.source_name).stem == stem]
    beside = [v for v in same_stem if PurePosixPath(v.source_name).parent == here]
    if beside or not is_chat_folder_file(chat.source_name):
        return beside[0] if beside else None
    near = [v for v in same_stem if PurePosixPath(v.source_name).parent == here.parent]
    found = near or same_stem
    return found[0] if found else None


def associate_chats(records: list[RawMediaRecord]) -> list[RawMediaRecord]:
    """Chat logs with the source name and media_id of their video, when it arrived.

    A video counts when accepted or rejected as a duplicate (its media_id is the content's
    either way); a chat log whose video is not in the partition keeps empty fields
    (``chat_events`` lists it as ``video_missing``). Chat logs rejected as duplicates are
    associated too: a log dropped again with its video, after an earlier day found no
    video for it, is read on the day the video is accepted.
    """
    videos = sorted(
        (
            r
            for r in records
            if r.kind is MediaKind.VIDEO
            and r.media_id
            and (
                r.status is MediaStatus.ACCEPTED
                or r.reject_reason is RejectReason.DUPLICATE_CONTENT
            )
        ),
        key=lambda r: r.source_name,
    )
    out = []
    for record in records:
        if record.kind is MediaKind.CHAT and (
            record.status is MediaStatus.ACCEPTED
            or record.reject_reason is RejectReason.DUPLICATE_CONTENT
        ):
            video = _video_of_chat(record, videos)
            if video is not None:
                update = {"chat_video": video.source_name, "chat_video_media_id": video.media_id}
                record = record.model_copy(update=update)
        out.append(record)
    return out


def _record(fields: dict, **extra) -> RawMediaRecord:
    data = {k: v for k, v in fields.items() if k != "real"}
    return RawMediaRecord(**data, **extra)


def _rejected(fields: dict, reason: RejectReason, detail: str, **extra) -> RawMediaRecord:
    return _record(
        fields, status=MediaStatus.REJECTED, reject_reason=reason, reject_detail=detail, **extra
    )


def _quarantine(record: RawMediaRecord, real: Path, day: dt.date, store: Store) -> str:
    key = quarantine_key(day, record.media_id, record.source_name)
    if record.reject_reason is None:
        raise ValueError(f"cannot quarantine {record.source_name!r}: it has no reject reason")
    store.put_file(real, key)
    reason = {
        "source_name": record.source_name,
        "reason": record.reject_reason.value,
        "detail": record.reject_detail,
    }
    payload = json.dumps(reason, sort_keys=True, ensure_ascii=False, indent=1) + "\n"
    store.put_bytes(payload.encode(), layout.quarantine_reason_key(key))
    return key


def _ingest_one(
    entry: DropEntry,
    drop_root: Path,
    day: dt.date,
    store: Store,
    limits: IngestSettings,
    ledger: ChecksumLedger,
    accepted_here: dict[str, str],
) -> RawMediaRecord:
    fields: dict = {
        "media_id": "",
        "source_name": entry.rel,
        "kind": MediaKind.UNKNOWN,
        "size_bytes": 0 if entry.is_symlink else entry.size,
        "arrival_date": day,
        "extension": PurePosixPath(entry.rel).suffix.lower(),
    }
    try:
        real = _check_file(entry, drop_root, limits, fields)
    except MediaRejected as exc:
        record = _rejected(fields, exc.reason, exc.detail)
    except Exception as exc:  # a bad file must not fail the partition
        log.exception("unexpected error while checking %r", entry.rel)
        detail = without_content(f"{type(exc).__name__}: {exc}")
        record = _rejected(fields, RejectReason.CORRUPT, detail)
    else:
        sha = fields["media_id"]
        if sha in accepted_here:
            first = accepted_here[sha]
            detail = f"same content as {first!r} in this partition"
            return _rejected(fields, RejectReason.DUPLICATE_CONTENT, detail, duplicate_of=first)
        earlier = ledger.earliest(sha, before=day)
        if earlier is not None:
            on, name = earlier
            detail = f"same content was accepted on {on.isoformat()} as {name!r}"
            dup = f"{on.isoformat()}:{name}"
            return _rejected(fields, RejectReason.DUPLICATE_CONTENT, detail, duplicate_of=dup)
        if fields["kind"] is MediaKind.CHAT:  # keeps its own extension (.log, .json, ...)
            key = layout.raw_object_key(sha, fields["extension"])
        else:
            key = object_key(sha, fields["extension"], fields["format_name"])
        store.put_immutable(real, key)
        record = _record(fields, status=MediaStatus.ACCEPTED, object_path=key)
        ledger.record(
            sha, day, entry.rel, record.size_bytes, record.kind.value, record.extension, key
        )
        accepted_here[sha] = entry.rel
        return record
    log.info("rejected %r: %s (%s)", entry.rel, record.reject_reason, record.reject_detail)
    rejected_real: Path | None = fields.get("real")
    if (
        rejected_real is not None
        and record.reject_reason not in _NOT_QUARANTINED
        and record.size_bytes <= limits.quarantine_max_mb * MIB
    ):
        quarantined = _quarantine(record, rejected_real, day, store)
        record = record.model_copy(update={"object_path": quarantined})
    return record


def skipped_record(entry: SkippedEntry, day: dt.date) -> RawMediaRecord:
    """The rejected record of an entry the scan skipped (hidden, a folder, unreadable)."""
    log.info("skipped %r: %s (%s)", entry.rel, entry.reason.value, entry.detail)
    return RawMediaRecord(
        media_id="",
        source_name=entry.rel,
        kind=MediaKind.UNKNOWN,
        status=MediaStatus.REJECTED,
        reject_reason=entry.reason,
        reject_detail=entry.detail,
        arrival_date=day,
        extension=PurePosixPath(entry.rel).suffix.lower(),
    )


def ingest_entries(
    entries: list[DropEntry],
    drop_root: Path,
    day: dt.date,
    store: Store,
    limits: IngestSettings,
    skipped: Iterable[SkippedEntry] = (),
) -> list[RawMediaRecord]:
    """One ``RawMediaRecord`` per entry and per skipped entry, sorted by source name.

    Duplicates: a sha256 already accepted earlier in this partition, or by the ledger on
    an earlier date, is rejected ``DUPLICATE_CONTENT``; later dates never count, so a
    re-run of a date gives the same answer. Skipped entries (``scan_drop_all``) are
    recorded as rejected with their reason; nothing of them is read or copied.
    """
    drop_root = Path(drop_root)
    ledger = ChecksumLedger(store)
    accepted_here: dict[str, str] = {}
    records = [
        _ingest_one(entry, drop_root, day, store, limits, ledger, accepted_here)
        for entry in sorted(entries, key=lambda e: e.rel)
    ]
    records += [skipped_record(entry, day) for entry in skipped]
    return sorted(associate_chats(records), key=lambda r: r.source_name)
