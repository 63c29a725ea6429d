"""Probe images (Pillow) and videos (PyAV): read metadata and prove the file decodes.

Every refusal raises ``MediaRejected`` with a stable reason code and a detail in words.
Images are fully decoded (``load()``) after their header-declared size passed the
pixel limit, so decompression bombs are refused before any pixel buffer is allocated.
Videos are not decoded whole: the first frame and the last GOP are, which catches files
cut short (the usual failure of an interrupted copy) at a cost independent of length.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
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
# Decode from the keyframe before (end - window) to the end; None = from the start.
_TAIL_WINDOWS_S = (1.0, 10.0, 60.0, None)


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


def _video_error(exc: BaseException, stage: str) -> MediaRejected:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
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


def _decode_to_end(container, stream, target: int | None) -> tuple[int, int | None]:
    """Seek to the keyframe at or before ``target`` (None: the very start), decode to the end.

    Returns the number of frames decoded and the largest pts among them (None if none had one).
    """
    if target is None:
        container.seek(0, backward=True, any_frame=False)  # container time, before any pts
    else:
        container.seek(target, stream=stream, backward=True, any_frame=False)
    count, last = 0, None
    for frame in container.decode(stream):
        count += 1
        if frame.pts is not None:
            last = frame.pts if last is None else max(last, frame.pts)
    return count, last


def _check_tail(container, stream, duration: float, fps: float | None) -> None:
    """Decode the last GOP and require frames up to ``duration``.

    Some demuxers (MPEG-TS, AVI without index) seek to a non-keyframe, which decodes to
    nothing; then the window widens (10 s, 60 s before the end) and finally the stream
    is decoded from its start.
    """
    tb = stream.time_base
    start = stream.start_time or 0
    count, last = 0, None
    for back in _TAIL_WINDOWS_S:
        whole = back is None or back >= duration
        target = None if back is None or whole else start + int(Fraction(duration - back) / tb)
        count, last = _decode_to_end(container, stream, target)
        if count or whole:
            break
    if count and last is None:
        return  # frames without timestamps: the end cannot be placed in time
    frame_s = 1.0 / fps if fps else 0.0
    reached = float((last - start) * tb) + frame_s if last is not None else 0.0
    if reached < duration - max(0.5, 3 * frame_s):
        raise MediaRejected(
            RejectReason.TRUNCATED,
            f"decoding stops at {reached:.2f} s of the declared {duration:.2f} s",
        )


def probe_video(
    path: str | os.PathLike, limits: IngestSettings, sniffed_format: str = ""
) -> VideoProbe:
    """Read container/stream metadata, enforce limits, decode the first frame and last GOP.

    ``sniffed_format`` (from ``sniff``) enables a structural check of ISO-BMFF files
    (mp4/mov) first, which names the missing ``moov`` atom of a file cut short.
    """
    path = Path(path)
    if sniffed_format in _ISO_BMFF_VIDEO:
        check_top_level_atoms(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise _video_error(exc, "opening the container") from exc
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
        try:
            first = next(iter(container.decode(stream)), None)
            if first is None:
                raise MediaRejected(RejectReason.CORRUPT, "no video frame could be decoded")
            if duration:
                _check_tail(container, stream, duration, fps)
        except av.FFmpegError as exc:
            raise _video_error(exc, "decoding") from exc
        return VideoProbe(
            container=container.format.name,
            codec=stream.codec_context.name,
            width=width,
            height=height,
            fps=fps,
            duration_s=duration,
            frame_count=frames,
            has_audio=bool(container.streams.audio),
        )
