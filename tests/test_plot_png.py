"""write_line_plot: its PNG read back by a plain decoder written here, then checked pixel by pixel."""

import math
import os
import struct
import zlib

import numpy as np
import pytest

from pyddsar import plot_png
from pyddsar.plot_png import COLORS, write_line_plot


# ---------------------------------------------------------------- an independent PNG reader
def decode_png(path):
    """(h, w, 3) uint8 pixels of an 8-bit RGB PNG; asserts the signature, every CRC, filter 0 rows."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    w, h, depth, color_type, compression, filter_method, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, color_type, compression, filter_method, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == h * (1 + 3 * w)
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + 3 * w)
    assert np.all(rows[:, 0] == 0), "every scanline should use filter type 0"
    return rows[:, 1:].reshape(h, w, 3)  # filter 0 stores the bytes as they are


def plot(tmp_path, x, series, name="plot.png", **kwargs):
    path = tmp_path / name
    write_line_plot(path, x, series, **kwargs)
    return decode_png(path)


def has_color(img, color):
    return np.all(img == np.array(color, np.uint8), axis=2)


def dark(img):
    return np.all(img < 128, axis=2)


def frame_box(img):
    """(top, bottom, left, right) of the plot frame: the long dark lines across the image."""
    d = dark(img)
    rows = np.flatnonzero(d.mean(axis=1) > 0.4)
    cols = np.flatnonzero(d.mean(axis=0) > 0.4)
    assert len(rows) >= 2 and len(cols) >= 2, "no plot frame found"
    return rows[0], rows[-1], cols[0], cols[-1]


def inside(img, mask):
    """mask restricted to the inside of the plot frame (the legend swatches lie outside it)."""
    top, bottom, left, right = frame_box(img)
    out = np.zeros_like(mask)
    out[top + 1 : bottom, left + 1 : right] = mask[top + 1 : bottom, left + 1 : right]
    return out


def end_rows(mask):
    """Mean row of a line's pixels in its leftmost and in its rightmost few columns."""
    rows, cols = np.nonzero(mask)
    return rows[cols <= cols.min() + 5].mean(), rows[cols >= cols.max() - 5].mean()


# ---------------------------------------------------------------- the file itself
@pytest.mark.parametrize("size", [(800, 480), (640, 360), (333, 257), (1200, 300)])
def test_valid_png_of_requested_size(tmp_path, size):
    width, height = size
    img = plot(tmp_path, [0, 1, 2, 3], {"best": [1, 3, 2, 4]}, width=width, height=height, title="t")
    assert img.shape == (height, width, 3)


def test_background_is_white_and_frame_is_drawn(tmp_path):
    img = plot(tmp_path, range(10), {"best": [v * v for v in range(10)]}, title="a title", xlabel="x", ylabel="y")
    for corner in (img[0, 0], img[0, -1], img[-1, 0], img[-1, -1]):
        assert tuple(corner) == (255, 255, 255)
    assert np.all(img == 255, axis=2).mean() > 0.7
    top, bottom, left, right = frame_box(img)
    assert 0 < top < bottom < img.shape[0] - 1 and 0 < left < right < img.shape[1] - 1


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "history.png"
    path.write_bytes(b"old")
    write_line_plot(str(path), [0, 1], {"best": [0, 1]}, width=300, height=200)
    assert decode_png(path).shape == (200, 300, 3)
    assert os.listdir(tmp_path) == ["history.png"]


# ---------------------------------------------------------------- lines where the data says
def test_palette_starts_blue_then_orange():
    (r0, g0, b0), (r1, g1, b1) = COLORS[0], COLORS[1]
    assert b0 > r0 + 50 and b0 > g0
    assert r1 > 200 and r1 > g1 > b1
    assert len(set(COLORS)) == len(COLORS) == 6


@pytest.mark.parametrize("slope", [1, -1])
def test_line_goes_where_the_data_goes(tmp_path, slope):
    x = list(range(50))
    img = plot(tmp_path, x, {"best": [slope * v for v in x]}, title="trend")
    blue = inside(img, has_color(img, COLORS[0]))
    rows, cols = np.nonzero(blue)
    assert len(cols) > 100
    left_rows, right_rows = end_rows(blue)
    if slope > 0:  # rising: the left end sits lower in the image (larger row) than the right end
        assert left_rows > right_rows + 100
    else:
        assert left_rows < right_rows - 100
    assert np.corrcoef(cols, rows)[0, 1] * slope < -0.99  # and it is straight
    top, bottom, left, right = frame_box(img)
    assert cols.max() - cols.min() > 0.9 * (right - left)  # spanning the plot's width


def test_two_series_get_both_colours(tmp_path):
    x = np.arange(30)
    img = plot(tmp_path, x, {"best": x * 2.0, "mean": x * 1.0})
    blue = inside(img, has_color(img, COLORS[0]))
    orange = inside(img, has_color(img, COLORS[1]))
    assert blue.sum() > 50 and orange.sum() > 50
    assert end_rows(blue)[1] < end_rows(orange)[1] - 50  # best ends above mean (a smaller row)
    assert not inside(img, has_color(img, COLORS[2])).any()


def test_legend_swatches_sit_above_the_plot(tmp_path):
    img = plot(tmp_path, [0, 1, 2], {"best": [0, 1, 2], "mean": [0, 0.5, 1]})
    top = frame_box(img)[0]
    for color in COLORS[:2]:
        assert has_color(img[:top], color).sum() >= 49  # at least a 7x7 square each


def test_nan_values_break_the_line(tmp_path):
    x = list(range(11))
    y = [float(v) for v in x]
    y[5] = math.nan
    img = plot(tmp_path, x, {"best": y}, width=600, height=400)
    cols = np.unique(np.nonzero(inside(img, has_color(img, COLORS[0])))[1])
    gaps = np.diff(cols)
    assert gaps.max() > 40  # no line across the missing point (a tenth of the width is ~50 px)
    assert plot(tmp_path, x, {"best": [math.nan] * 11}).shape == (480, 800, 3)


# ---------------------------------------------------------------- text
def above_legend(img):
    """Rows above the topmost series-coloured pixel, i.e. above the legend row: the title's place."""
    first = np.flatnonzero(has_color(img, COLORS[0]).any(axis=1))[0]
    return img[:first]


def test_title_pixels_appear_only_with_a_title(tmp_path):
    x, series = [0, 1, 2], {"best": [1, 2, 3]}
    titled = plot(tmp_path, x, series, "a.png", title="DDSAR search, budget 500 MFLOPs")
    assert dark(above_legend(titled)).sum() > 100
    plain = plot(tmp_path, x, series, "b.png", title="")
    assert dark(above_legend(plain)).sum() == 0


def test_axis_labels_add_text(tmp_path):
    x, series = [0, 1, 2], {"best": [1, 2, 3]}
    bare = plot(tmp_path, x, series, "a.png")
    labelled = plot(tmp_path, x, series, "b.png", xlabel="iteration", ylabel="score")
    assert dark(labelled).sum() > dark(bare).sum() + 100


def test_long_titles_and_unknown_characters_still_draw(tmp_path):
    img = plot(tmp_path, [0, 1], {"weird {name} ~": [0, 1]}, title="x" * 500 + " [#]", width=320, height=240)
    assert img.shape == (240, 320, 3)
    assert dark(above_legend(img)).any()


def test_tick_labels_are_compact():
    assert plot_png._labels([0, 20000, 40000, 60000, 80000, 100000], 20000) == ["0", "20k", "40k", "60k", "80k", "100k"]
    assert plot_png._labels([0, 5e5, 1e6, 1.5e6, 2e6, 2.5e6], 5e5) == ["0", "0.5M", "1.0M", "1.5M", "2.0M", "2.5M"]
    assert plot_png._labels([0, 5e-4, 1e-3, 1.5e-3], 5e-4) == ["0", "5e-4", "1e-3", "1.5e-3"]
    assert plot_png._labels([0.2, 0.4, 0.6], 0.2) == ["0.2", "0.4", "0.6"]
    assert plot_png._labels([0, 500, 1000, 1500], 500) == ["0", "500", "1000", "1500"]
    assert plot_png._labels([-1e-17, 1], 0.5) == ["0", "1.0"]  # no "-0.0" from rounding noise


@pytest.mark.parametrize("lo, hi", [(0, 1), (0, 96000), (3e-7, 9e-7), (-5, 5), (1e6, 1e6 + 3), (42, 42)])
def test_about_five_ticks_in_1_2_5_steps(lo, hi):
    axis_lo, axis_hi, step, ticks = plot_png._nice_axis(lo, hi, 0.0)
    assert 3 <= len(ticks) <= 8
    mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
    assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-9
    assert axis_lo <= ticks[0] and ticks[-1] <= axis_hi and axis_lo <= lo and hi <= axis_hi


def test_big_numbers_plot(tmp_path):
    x = np.arange(0, 120000, 1000)
    img = plot(tmp_path, x, {"best": 3e6 * np.sin(x / 2e4)}, xlabel="step", ylabel="value")
    assert inside(img, has_color(img, COLORS[0])).sum() > 100


# ---------------------------------------------------------------- edge cases
def test_constant_series_is_a_flat_line_mid_plot(tmp_path):
    img = plot(tmp_path, range(20), {"best": [7.5] * 20})
    rows = np.nonzero(inside(img, has_color(img, COLORS[0])))[0]
    assert len(rows) > 100 and rows.max() - rows.min() <= 2
    top, bottom, _, _ = frame_box(img)
    assert abs(rows.mean() - (top + bottom) / 2) < 0.1 * (bottom - top)


def test_single_point_is_a_dot(tmp_path):
    img = plot(tmp_path, [5], {"best": [0.001]}, title="one point", width=300, height=200)
    assert img.shape == (200, 300, 3)
    rows, cols = np.nonzero(inside(img, has_color(img, COLORS[0])))
    assert len(rows) >= 9
    top, bottom, left, right = frame_box(img)
    assert abs(rows.mean() - (top + bottom) / 2) < 5 and abs(cols.mean() - (left + right) / 2) < 5


@pytest.mark.parametrize(
    "x, series, kwargs, message",
    [
        ([], {"best": []}, {}, "non-empty"),
        ([0, 1], {}, {}, "1 to 6"),
        ([0], {str(i): [i] for i in range(7)}, {}, "1 to 6"),
        ([0, 1, 2], {"best": [1, 2]}, {}, "'best' has 2 values but x has 3"),
        ([0, math.nan], {"best": [1, 2]}, {}, "finite"),
        ([0, 1], {"best": [1, 2]}, {"width": 0}, "positive"),
        ([0, 1], {"best": [1, 2]}, {"height": -5}, "positive"),
        ([0, 1], {"best": [1, 2]}, {"width": 40, "height": 30}, "no room"),
    ],
)
def test_bad_input_raises(tmp_path, x, series, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_line_plot(tmp_path / "bad.png", x, series, **kwargs)
    assert not os.listdir(tmp_path)
