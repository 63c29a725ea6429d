"""Still standardization: orientation, colour modes, size cap, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from style_pipeline.media.stills import standardize_still, target_size, to_rgb

EXIF_ORIENTATION = 0x0112
RED = (255, 0, 0)


@pytest.mark.parametrize(
    ("size", "max_edge", "expected"),
    [
        ((4000, 3000), 2048, (2048, 1536)),
        ((3000, 4000), 2048, (1536, 2048)),
        ((2048, 100), 2048, (2048, 100)),
        ((100, 50), 2048, (100, 50)),  # never upscaled
        ((5000, 1), 100, (100, 1)),  # a side never rounds to zero
        ((301, 201), 150, (150, 100)),
    ],
)
def test_target_size(size, max_edge, expected):
    assert target_size(size, max_edge) == expected


def test_target_size_rejects_zero_edge():
    with pytest.raises(ValueError):
        target_size((10, 10), 0)


def _marked(size=(80, 40)) -> Image.Image:
    """Blue image with a red block in the top-left corner of the stored pixels."""
    img = Image.new("RGB", size, (0, 0, 255))
    img.paste(RED, (0, 0, size[0] // 4, size[1] // 4))
    return img


def _is_red(px) -> bool:
    return px[0] > 200 and px[1] < 60 and px[2] < 60


def _std(src, tmp_path, max_edge=2048, quality=95):
    dst = tmp_path / "out.jpg"
    size = standardize_still(src, dst, max_edge=max_edge, jpeg_quality=quality)
    with Image.open(dst) as out:
        assert out.format == "JPEG"
        assert out.mode == "RGB"
        assert out.size == size
        return out.copy(), dst


def test_exif_orientation_6_rotates_and_swaps_size(tmp_path):
    src = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    _marked().save(src, "JPEG", quality=95, exif=exif.tobytes())
    out, dst = _std(src, tmp_path)
    assert out.size == (40, 80)
    # Orientation 6: the stored top-left corner is displayed at the top right.
    assert _is_red(out.getpixel((36, 3)))
    assert not _is_red(out.getpixel((3, 3)))
    assert not out.getexif()  # no EXIF (and so no GPS) in the standardized file
    assert dst.read_bytes()[:3] == b"\xff\xd8\xff"


def test_long_edge_capped_with_aspect_kept(tmp_path):
    src = tmp_path / "big.jpg"
    _marked((1200, 600)).save(src, "JPEG", quality=95)
    out, _ = _std(src, tmp_path, max_edge=300)
    assert out.size == (300, 150)
    assert _is_red(out.getpixel((10, 10)))
    assert out.getpixel((290, 140))[2] > 200  # still blue


def test_small_image_not_upscaled(tmp_path):
    src = tmp_path / "small.png"
    _marked((50, 30)).save(src)
    out, _ = _std(src, tmp_path, max_edge=2048)
    assert out.size == (50, 30)


def test_rgba_composited_on_white(tmp_path):
    src = tmp_path / "alpha.png"
    img = Image.new("RGBA", (64, 32), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (0, 0, 32, 32))
    img.save(src)
    out, _ = _std(src, tmp_path)
    assert _is_red(out.getpixel((8, 16)))
    assert min(out.getpixel((56, 16))) > 245  # transparent -> white, not black


def test_palette_with_transparency(tmp_path):
    src = tmp_path / "pal.png"
    img = Image.new("P", (40, 20), 0)
    img.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    img.paste(1, (20, 0, 40, 20))
    img.info["transparency"] = 0
    img.save(src, transparency=0)
    out, _ = _std(src, tmp_path)
    assert min(out.getpixel((5, 10))) > 245  # transparent index -> white
    g = out.getpixel((30, 10))
    assert g[1] > 170 and g[0] < 40 and g[2] < 40


def test_cmyk_jpeg_converted(tmp_path):
    src = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(src, "JPEG", quality=95)
    out, _ = _std(src, tmp_path)
    assert _is_red(out.getpixel((16, 16)))


def test_16bit_grayscale_png(tmp_path):
    src = tmp_path / "deep.png"
    arr = np.zeros((16, 32), dtype=np.uint16)
    arr[:, 16:] = 65535
    arr[:8, :16] = 32768
    Image.fromarray(arr).save(src)
    with Image.open(src) as check:
        assert check.mode.startswith("I")
    out, _ = _std(src, tmp_path, quality=100)
    assert out.getpixel((24, 8))[0] > 250
    assert out.getpixel((4, 12))[0] < 5
    assert 120 < out.getpixel((4, 3))[0] < 136


@pytest.mark.parametrize(
    ("mode", "value"),
    [("L", 128), ("1", 1), ("LA", (128, 255)), ("I;16", 65535), ("F", 1.0), ("RGB", RED)],
)
def test_to_rgb_modes(mode, value):
    out = to_rgb(Image.new(mode, (4, 4), value))
    assert out.mode == "RGB"
    assert out.size == (4, 4)


def test_same_input_same_bytes(tmp_path):
    src = tmp_path / "src.jpg"
    _marked((500, 300)).save(src, "JPEG", quality=90)
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    standardize_still(src, a, max_edge=200, jpeg_quality=95)
    standardize_still(src, b, max_edge=200, jpeg_quality=95)
    assert a.read_bytes() == b.read_bytes()


def test_unreadable_file_raises(tmp_path):
    src = tmp_path / "nope.jpg"
    src.write_bytes(b"not an image at all")
    with pytest.raises(OSError):
        standardize_still(src, tmp_path / "out.jpg", max_edge=100, jpeg_quality=90)
