"""Contact sheets, sample grids and loss curves: sizes, order, labels, encodings."""

import io
import math

import numpy as np
import pytest
from PIL import Image

from style_pipeline.media.pictures import (
    BACKGROUND,
    Tile,
    contact_sheet,
    jpeg_bytes,
    loss_curve_png,
    moving_average,
    sample_grid,
    side_by_side,
    thin_series,
)


def _solid(colour, size=(64, 48)) -> Image.Image:
    return Image.new("RGB", size, colour)


def test_contact_sheet_lays_tiles_in_rows_with_label_room():
    tiles = [Tile(_solid((200, 0, 0)), ("abc12345 · hero", "selected · q 0.91"))] * 5
    sheet = contact_sheet(tiles, edge=40, columns=3, pad=4)
    # 3 columns x 2 rows, each cell 40 + pad wide and 40 + pad + 2 label lines high
    assert sheet.size == (3 * 44 + 4, 2 * (44 + 2 * 15) + 4)
    pixels = np.asarray(sheet)
    # the first tile (64x48 fitted into 40x40 -> 40x30, centred) is red in its middle
    assert tuple(pixels[4 + 20, 4 + 20]) == pytest.approx((200, 0, 0), abs=12)
    # the sixth cell (row 2, column 3) is empty background
    assert tuple(pixels[4 + 44 + 74 + 20, 4 + 88 + 20]) == BACKGROUND
    # labels are drawn: the label band under the first tile is not plain background
    band = pixels[4 + 40 + 2 : 4 + 40 + 14, 4 : 4 + 40]
    assert (band != np.array(BACKGROUND)).any()


def test_contact_sheet_of_nothing_says_so():
    sheet = contact_sheet([], edge=64)
    assert sheet.width >= 64 and sheet.height < 64
    assert (np.asarray(sheet) != np.array(BACKGROUND)).any()  # the "no frames" text


def test_sample_grid_rows_are_prompts_and_columns_seeds():
    colours = [[(255, 0, 0), (0, 255, 0)], [(0, 0, 255), (255, 255, 0)]]
    cells = [[_solid(c, (32, 32)) for c in row] for row in colours]
    grid = sample_grid(cells, ["a red thing", "a blue thing"], ["seed 0", "seed 1"], 32, "v1")
    pixels = np.asarray(grid)
    # find each colour; its position orders rows and columns as given
    where = {
        c: np.argwhere((pixels == np.array(c)).all(axis=-1)).mean(axis=0)
        for row in colours
        for c in row
    }
    assert where[(255, 0, 0)][0] < where[(0, 0, 255)][0]  # prompt 1 above prompt 2
    assert where[(255, 0, 0)][1] < where[(0, 255, 0)][1]  # seed 0 left of seed 1
    with pytest.raises(ValueError, match="labels"):
        sample_grid(cells, ["only one"], ["seed 0", "seed 1"], 32)


def test_side_by_side_keeps_both_pictures():
    out = side_by_side(_solid((255, 0, 0), (20, 30)), _solid((0, 0, 255), (10, 10)), gap=5)
    assert out.size == (35, 30)
    assert out.getpixel((2, 2)) == (255, 0, 0) and out.getpixel((27, 2)) == (0, 0, 255)


def test_loss_curve_is_a_png_of_the_asked_size():
    losses = [1 / (1 + 0.05 * i) + 0.05 * math.sin(i) for i in range(120)] + [float("nan")]
    data = loss_curve_png(losses, "v1: 8 images", width_px=600, height_px=250)
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.size == (600, 250)
    colours = np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)
    assert len(colours) > 10  # a drawn plot, not a blank canvas


def test_moving_average_and_thinned_series():
    assert moving_average([1.0, 3.0, float("nan"), 5.0], 2) == [1.0, 2.0, 3.0, 5.0]
    assert thin_series([0.5, 0.4], 10) == [(1, 0.5), (2, 0.4)]
    series = thin_series([float(i) for i in range(1000)], 50)
    assert len(series) == 50 and series[0] == (1, 0.0) and series[-1] == (1000, 999.0)
    assert [s for s, _ in series] == sorted({s for s, _ in series})


def test_jpeg_bytes_round_trip():
    image = Image.open(io.BytesIO(jpeg_bytes(_solid((10, 200, 10)))))
    assert image.format == "JPEG" and image.size == (64, 48)
