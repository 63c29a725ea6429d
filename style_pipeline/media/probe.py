"""Probe images (Pillow) and videos (PyAV): read metadata and prove the file decodes.

Every refusal raises ``MediaRejected`` with a stable reason code and a detail in words.
Images are fully decoded (``load()``) after their header-declared size passed the
pixel limit, so decompression bombs are refused before any pixel buffer is allocated.
Videos are not decoded whole: the first frame is, the packets of the last seconds are
demuxed (a file cut short, the usual failure of an interrupted copy, stops before its
declared duration) and a few frames of the last GOP are decoded, so the cost is
independent of length and GOP size. A probe past ``probe_timeout_s`` is refused ``timeout``.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from style_pipeline.contracts.ingest import IngestSettings
from style_pipeline.contracts.media import RejectReason
from style_pipeline.media.errors import MediaRejected
from style_pipeline.media.isobmff import check_top_level_atoms

# EXIF tag ids (TIFF/EXIF 2.3).
_MAKE, _MODEL, _DATETIME, _ORIENTATION = 0x010F, 0x0110, 0x0132, 0x0112
_EXIF_IFD, _GPS_IFD, _DATETIME_ORIGINAL = 0x8769, 0x8825, 0x9003
_NEEDS_PLUGIN = {"heic": "the pillow-heif plugin", "avif": "a Pillow built with libavif"}
_ISO_BMFF_VIDEO = {"mp4", "mov", "m4v", "3gp"}
# Demux from any packet before (end - window) to the end, widening until a keyframe shows.
_TAIL_WINDOWS_S = (2.0, 10.0, 60.0)
# At most this many packets of the last GOP are decoded (the keyframe and those after it).
_TAIL_FRAMES = 8


@dataclass(frozen=True, slots=True)
class ImageProbe:
    format: str  # Pillow's format name, e.g. "JPEG"
    width: int
    height: int
    mode: str
    exif_camera: str | None = None
    exif_datetime: str | None = None
    exif_orientation: int | None = None
    exif_has_gps: bool | None = None


@dataclass(frozen=True, slots=True)
class VideoProbe:
    container: str  # ffmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str
    width: int
    height: int
    fps: float | None
    duration_s: float | None
    frame_count: int | None
    has_audio: bool
    frames_decoded: int = 0  # how many frames the probe decoded (its work, bounded)


# ---------------------------------------------------------------- images


def _image_error(exc: BaseException, stage: str) -> MediaRejected:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "truncated" in text.lower():
        return MediaRejected(RejectReason.TRUNCATED, f"image data ends early ({stage}): {text}")
    return MediaRejected(RejectReason.CORRUPT, f"image cannot be {stage}: {text}")


def _clean(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).replace("\x00", "").strip() if value is not None else ""
    return text or None


def _exif_fields(im: Image.Image) -> dict:
    exif = im.getexif()
    make, model = _clean(exif.get(_MAKE)), _clean(exif.get(_MODEL))
    camera: str | None
    if make and model and model.lower().startswith(make.lower()):
        camera = model  # "Canon" + "Canon EOS R5" -> "Canon EOS R5"
    else:
        camera = " ".join(p for p in (make, model) if p) or None
    original = _clean(exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL))
    orientation = exif.get(_ORIENTATION)
    return {
        "exif_camera": camera,
        "exif_datetime": original or _clean(exif.get(_DATETIME)),
        "exif_orientation": orientation
        if isinstance(orientation, int) and 1 <= orientation <= 8
        else None,
        "exif_has_gps": bool(exif.get_ifd(_GPS_IFD)),
    }


@functools.cache
def _heif_plugin() -> bool:
    """Register pillow-heif's opener once if that optional plugin is installed."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


def probe_image(
    path: str | os.PathLike, limits: IngestSettings, sniffed_format: str = ""
) -> ImageProbe:
    """Identify, size-check and fully decode an image; read its EXIF.

    ``sniffed_format`` (from ``sniff``) tells a format this Pillow cannot decode (HEIC
    without the pillow-heif plugin: ``UNSUPPORTED_TYPE``) from a damaged file (``CORRUPT``).

    The pixel limit is ``limits.max_image_pixels`` and is checked on the header's size
    before ``load()``. Pillow's own process-wide guard (``DecompressionBombWarning`` when
    escalated to an error, ``DecompressionBombError``) is refused the same way.
    """
    bomb = (Image.DecompressionBombError, Image.DecompressionBombWarning)
    if sniffed_format == "heic":
        _heif_plugin()
    try:
        im = Image.open(path)
    except bomb as exc:
        raise MediaRejected(RejectReason.DECOMPRESSION_BOMB, str(exc)) from exc
    except UnidentifiedImageError as exc:
        if sniffed_format in _NEEDS_PLUGIN:
            raise MediaRejected(
                RejectReason.UNSUPPORTED_TYPE,
                f"{sniffed_format} needs {_NEEDS_PLUGIN[sniffed_format]}, not installed here",
            ) from exc
        raise MediaRejected(RejectReason.CORRUPT, f"Pillow cannot identify it: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _image_error(exc, "opened") from exc
    with im:
        width, height = im.size
        if width * height > limits.max_image_pixels:
            raise MediaRejected(
                RejectReason.DECOMPRESSION_BOMB,
                f"{width}x{height} = {width * height} pixels exceeds the limit of "
                f"{limits.max_image_pixels} pixels; not decoded",
            )
        try:
            im.load()
        except bomb as exc:
            raise MediaRejected(RejectReason.DECOMPRESSION_BOMB, str(exc)) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _image_error(exc, "decoded") from exc
        try:
            exif = _exif_fields(im)
        except (OSError, SyntaxError, ValueError, KeyError, TypeError):
            exif = {}  # unreadable EXIF is not a reason to refuse decodable pixels
        return ImageProbe(format=im.format or "", width=width, height=height, mode=im.mode, **exif)


# ---------------------------------------------------------------- videos


def _video_error(exc: BaseException, stage: str, limit_s: float) -> MediaRejected:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if isinstance(exc, av.ExitError):  # the read timeout of ``av.open`` interrupted a read
        return MediaRejected(
            RejectReason.TIMEOUT,
            f"a read took longer than the limit of {limit_s:g} s while {stage}",
        )
    if isinstance(exc, EOFError):
        return MediaRejected(RejectReason.TRUNCATED, f"video ends early while {stage}: {text}")
    return MediaRejected(RejectReason.CORRUPT, f"video fails while {stage}: {text}")


def _parse_hms(text: str | None) -> float | None:
    """'00:01:02.500000000' (Matroska DURATION tag) -> 62.5 seconds."""
    try:
        h, m, s = (text or "").split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        return None


def _duration_s(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tagged = _parse_hms(stream.metadata.get("DURATION"))
    if tagged:
        return tagged
    if container.duration:
        return container.duration / av.time_base
    return None


class _Deadline:
    """The probe's wall-clock budget (``IngestSettings.probe_timeout_s``), checked between
    packets and frames; a probe past it is refused ``TIMEOUT``."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise MediaRejected(
                RejectReason.TIMEOUT,
                f"probing took longer than the limit of {self.seconds:g} s; stopped",
            )


@dataclass
class _TailScan:
    """Packets demuxed from a seek near the end: how far they reach, and the last GOP's head."""

    packets: int = 0
    reached_pts: int | None = None  # largest pts + duration among them
    last_gop: list = field(default_factory=list)  # last keyframe packet + up to N-1 after it


def _scan_packets(container, stream, target: int | None, deadline: _Deadline) -> _TailScan:
    """Seek to any packet at or before ``target`` (None: the start) and demux to the end.

    Demuxing reads packets without decoding them, so its cost is I/O of the window only.
    Keeps the packets of the last keyframe seen (at most ``_TAIL_FRAMES``) for decoding.
    """
    if target is None:
        container.seek(0, backward=True, any_frame=False)  # container time, before any pts
    else:
        container.seek(target, stream=stream, backward=True, any_frame=True)
    scan = _TailScan()
    for packet in container.demux(stream):
        deadline.check()
        if packet.size == 0:
            continue  # the demuxer's end-of-stream marker
        scan.packets += 1
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is not None:
            end = stamp + (packet.duration or 0)
            scan.reached_pts = end if scan.reached_pts is None else max(scan.reached_pts, end)
        if packet.is_keyframe:
            scan.last_gop = [packet]
        elif scan.last_gop and len(scan.last_gop) < _TAIL_FRAMES:
            scan.last_gop.append(packet)
    return scan


def _decode_packets(stream, packets: list, deadline: _Deadline) -> int:
    """Decode ``packets`` (a keyframe first) and flush; the number of frames they gave."""
    codec = stream.codec_context
    codec.flush_buffers()
    count = 0
    for packet in [*packets, None]:  # None flushes the frames the decoder still holds
        deadline.check()
        count += len(codec.decode(packet))
    return count


def _first_frame(container, stream, deadline: _Deadline) -> bool:
    """Decode until the first frame comes out; False when the stream gives none.

    The deadline is checked per packet: a stream of undecodable packets is demuxed to its
    end looking for a frame, which must not outlast the probe's limit.
    """
    codec = stream.codec_context
    for packet in container.demux(stream):
        deadline.check()
        if codec.decode(packet if packet.size else None):
            return True
    return False


def _check_tail(container, stream, duration: float, fps: float | None, deadline: _Deadline) -> int:
    """Require packets up to ``duration`` and decode the head of the last GOP near the end.

    Packets are demuxed from a seek to *any* packet shortly before the end, so the cost is
    set by the window, not by the GOP length: a long-GOP file whose only keyframe is its
    first frame is not decoded from the start. The window widens (2, 10, 60 s) until it
    holds a keyframe; of that GOP at most ``_TAIL_FRAMES`` packets are decoded. A GOP
    longer than the widest window is not decoded at the end (the first frame was). Short
    files, and demuxers whose seek lands past the data (Matroska cut before its cues), are
    demuxed from the start. Returns the number of frames decoded.
    """
    tb = stream.time_base
    start = stream.start_time or 0
    scan = _TailScan()
    for back in _TAIL_WINDOWS_S:
        if back >= duration:
            break
        scan = _scan_packets(
            container, stream, start + int(Fraction(duration - back) / tb), deadline
        )
        if scan.last_gop:
            break
    if not scan.packets or (not scan.last_gop and duration <= _TAIL_WINDOWS_S[-1]):
        scan = _scan_packets(container, stream, None, deadline)
    decoded = _decode_packets(stream, scan.last_gop, deadline) if scan.last_gop else 0
    if scan.last_gop and not decoded:
        raise MediaRejected(
            RejectReason.CORRUPT, "the last keyframe before the end decodes to nothing"
        )
    if scan.reached_pts is None:
        if not scan.packets:
            raise MediaRejected(RejectReason.TRUNCATED, "no video packet could be read")
        return decoded  # packets without timestamps: the end cannot be placed in time
    frame_s = 1.0 / fps if fps else 0.0
    reached = float((scan.reached_pts - start) * tb)
    if reached < duration - max(0.5, 3 * frame_s):
        raise MediaRejected(
            RejectReason.TRUNCATED,
            f"the video stream stops at {reached:.2f} s of the declared {duration:.2f} s",
        )
    return decoded


def probe_video(
    path: str | os.PathLike, limits: IngestSettings, sniffed_format: str = ""
) -> VideoProbe:
    """Read container/stream metadata, enforce limits, decode the first frame and last GOP.

    ``sniffed_format`` (from ``sniff``) enables a structural check of ISO-BMFF files
    (mp4/mov) first, which names the missing ``moov`` atom of a file cut short.
    """
    path = Path(path)
    deadline = _Deadline(limits.probe_timeout_s)
    if sniffed_format in _ISO_BMFF_VIDEO:
        check_top_level_atoms(path)
    try:
        # ``timeout`` interrupts a single read that blocks (a stalled network mount).
        container = av.open(str(path), metadata_errors="ignore", timeout=limits.probe_timeout_s)
    except av.FFmpegError as exc:
        raise _video_error(exc, "opening the container", limits.probe_timeout_s) from exc
    with container:
        if not container.streams.video:
            kinds: list[str] = sorted({s.type for s in container.streams}) or ["none"]
            raise MediaRejected(
                RejectReason.NO_VIDEO_STREAM, f"container has no video stream (streams: {kinds})"
            )
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        duration = _duration_s(container, stream)
        if stream.frames and fps:
            duration = max(duration or 0.0, stream.frames / fps)
        frames = stream.frames or (round(duration * fps) if duration and fps else None)
        if width * height > limits.max_video_pixels:
            raise MediaRejected(
                RejectReason.RESOLUTION_TOO_LARGE,
                f"{width}x{height} exceeds the limit of {limits.max_video_pixels} pixels",
            )
        if duration is not None and duration > limits.max_video_seconds:
            raise MediaRejected(
                RejectReason.TOO_LONG,
                f"{duration:.2f} s exceeds the limit of {limits.max_video_seconds:g} s",
            )
        stream.thread_type = "AUTO"  # frame and slice threads: a 4K/8K keyframe decodes faster
        try:
            if not _first_frame(container, stream, deadline):
                raise MediaRejected(RejectReason.CORRUPT, "no video frame could be decoded")
            decoded = 1
            deadline.check()
            if duration:
                decoded += _check_tail(container, stream, duration, fps, deadline)
        except av.FFmpegError as exc:
            raise _video_error(exc, "decoding", limits.probe_timeout_s) from exc
        return VideoProbe(
            container=container.format.name,
            codec=stream.codec_context.name,
            width=width,
            height=height,
            fps=fps,
            duration_s=duration,
            frame_count=frames,
            has_audio=bool(container.streams.audio),
            frames_decoded=decoded,
        )
