"""Tiny media makers for tests: photos with EXIF, PNGs, PNG bombs, videos, cut copies.

Everything is generated (Pillow, zlib, the ffmpeg binary from ``ffmpeg_exe``); nothing
is downloaded. Keep sizes small: these run in every test session.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from PIL import Image

from style_pipeline.media.ffmpeg_bin import ffmpeg_exe

EXIF_MAKE, EXIF_MODEL, EXIF_ORIENTATION, EXIF_DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
EXIF_IFD, GPS_IFD, EXIF_DATETIME_ORIGINAL = 0x8769, 0x8825, 0x9003


def make_jpeg(
    path: Path,
    size: tuple[int, int] = (64, 48),
    *,
    color: tuple[int, int, int] = (200, 60, 30),
    orientation: int | None = None,
    make: str | None = None,
    model: str | None = None,
    datetime_original: str | None = None,
    gps: bool = False,
    quality: int = 90,
) -> Path:
    """A JPEG of a gradient over ``color`` with the given EXIF tags (all optional)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.linear_gradient("L").resize(size).convert("RGB")
    im = Image.blend(im, Image.new("RGB", size, color), 0.5)
    exif = Image.Exif()
    if orientation is not None:
        exif[EXIF_ORIENTATION] = orientation
    if make is not None:
        exif[EXIF_MAKE] = make
    if model is not None:
        exif[EXIF_MODEL] = model
    if datetime_original is not None:
        exif[EXIF_IFD] = {EXIF_DATETIME_ORIGINAL: datetime_original}
    if gps:
        exif[GPS_IFD] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    im.save(path, "JPEG", quality=quality, exif=exif)
    return path


def make_png(
    path: Path, size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (20, 120, 220)
) -> Path:
    """A plain RGB PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, "PNG")
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png_bomb(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid 1-bit PNG of ``width`` x ``height`` zeros: tiny on disk, huge decoded.

    Written row by row with zlib, so making it never holds the image in memory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * 256) for _ in range(height // 256)]
    parts.append(compressor.compress(row * (height % 256)))
    parts.append(compressor.flush())
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.write(_png_chunk(b"IHDR", ihdr))
        handle.write(_png_chunk(b"IDAT", b"".join(parts)))
        handle.write(_png_chunk(b"IEND", b""))
    return path


def run_ffmpeg(*args: str) -> None:
    """Run the ffmpeg binary quietly; raise with its stderr when it fails."""
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({result.returncode}): {result.stderr[-2000:]}")


def make_video(
    path: Path,
    *,
    seconds: float = 2.0,
    size: tuple[int, int] = (160, 120),
    fps: int = 10,
    codec: str = "libx264",
    audio: bool = False,
    faststart: bool = False,
    source: str = "testsrc2",
    gop: int | None = None,
) -> Path:
    """A synthetic video (lavfi ``source``); the container follows ``path``'s extension.

    ``gop``: a keyframe every ``gop`` frames exactly (no scene-cut keyframes), e.g. a huge
    value for a long-GOP file whose only keyframe is its first frame.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["-f", "lavfi", "-i", f"{source}=size={size[0]}x{size[1]}:rate={fps}"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000"]
    args += ["-t", str(seconds), "-c:v", codec, "-pix_fmt", "yuv420p"]
    if gop is not None:
        args += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
    args += ["-c:a", "aac", "-shortest"] if audio else []
    args += ["-movflags", "+faststart"] if faststart else []
    run_ffmpeg(*args, str(path))
    return path


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An AAC-in-MP4 file (``.m4a``/``.mp4``) with no video stream."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
        "-t", str(seconds), "-c:a", "aac", str(path),
    )  # fmt: skip
    return path


def truncated_copy(source: Path, target: Path, fraction: float = 0.5) -> Path:
    """The first ``fraction`` of ``source``'s bytes, as an interrupted copy leaves it."""
    data = Path(source).read_bytes()
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_bytes(data[: int(len(data) * fraction)])
    return Path(target)


def copy_to(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` (parents created), for reusing one rendered file."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return Path(target)
