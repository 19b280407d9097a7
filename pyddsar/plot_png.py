"""Dependency-free PNG line plots (numpy + zlib only), used for `pyddsar search`'s history.png.

`write_line_plot` draws a white figure with a framed plot, 1-2-5 ticks on light grid lines, up to
six 2-px polylines, a legend, axis labels and a title. Text comes from a built-in 5x7 bitmap font
(one extra row for descenders) drawn at 2x, so a search on a bare server can still save its figure.
"""

from __future__ import annotations

import math
import os
import struct
import zlib

import numpy as np

from ._atomic import write_bytes

# Series colours in drawing order: blue, orange, green, red, purple, brown.
COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))
WHITE, INK, FRAME, GRID = (255, 255, 255), (30, 30, 30), (64, 64, 64), (225, 225, 225)

# One glyph per character: 8 rows of 5 pixels as hex bytes, bit 4 the leftmost pixel.
# Rows 0-6 stand on the baseline; row 7 holds descenders (g, j, p, q, y, comma, underscore).
_FONT = {
    "0": "0e11131519110e00", "1": "040c040404040e00", "2": "0e11010204081f00", "3": "1e01010e01011e00",
    "4": "02060a121f020200", "5": "1f101e0101110e00", "6": "0608101e11110e00", "7": "1f01020408080800",
    "8": "0e11110e11110e00", "9": "0e11110f01020c00", "A": "0e11111f11111100", "B": "1e11111e11111e00",
    "C": "0e11101010110e00", "D": "1e11111111111e00", "E": "1f10101e10101f00", "F": "1f10101e10101000",
    "G": "0e11101711110f00", "H": "1111111f11111100", "I": "0e04040404040e00", "J": "0702020202120c00",
    "K": "1112141814121100", "L": "1010101010101f00", "M": "111b151511111100", "N": "1111191513111100",
    "O": "0e11111111110e00", "P": "1e11111e10101000", "Q": "0e11111115120d00", "R": "1e11111e14121100",
    "S": "0f10100e01011e00", "T": "1f04040404040400", "U": "1111111111110e00", "V": "11111111110a0400",
    "W": "1111111515150a00", "X": "11110a040a111100", "Y": "11110a0404040400", "Z": "1f01020408101f00",
    "a": "00000e010f110f00", "b": "1010161911111e00", "c": "00000e1010110e00", "d": "01010d1311110f00",
    "e": "00000e111f100e00", "f": "0609081c08080800", "g": "00000f11110f010e", "h": "1010161911111100",
    "i": "04000c0404040e00", "j": "020006020202120c", "k": "1010121418141200", "l": "0c04040404040e00",
    "m": "00001a1515151500", "n": "0000161911111100", "o": "00000e1111110e00", "p": "00001e11111e1010",
    "q": "00000f11110f0101", "r": "0000161910101000", "s": "00000f100e011e00", "t": "08081c0808090600",
    "u": "0000111111130d00", "v": "00001111110a0400", "w": "0000111115150a00", "x": "0000110a040a1100",
    "y": "00001111110f010e", "z": "00001f0204081f00", ".": "00000000000c0c00", ",": "000000000c0c0408",
    "-": "0000001f00000000", "+": "0004041f04040000", "/": "0001020408100000", "(": "0204080808040200",
    ")": "0804020202040800", ":": "000c0c000c0c0000", "_": "000000000000001f", "%": "1819020408130300",
    "=": "00001f001f000000",
}
_GW, _GH = 5, 8


def _glyph(ch: str) -> np.ndarray:
    if ch == " ":
        return np.zeros((_GH, _GW), bool)
    if ch not in _FONT:  # an outlined box, so a missing glyph shows instead of vanishing
        box = np.zeros((_GH, _GW), bool)
        box[[0, 6], :] = box[:7, [0, 4]] = True
        return box
    rows = bytes.fromhex(_FONT[ch])
    return np.array([[row >> (_GW - 1 - c) & 1 for c in range(_GW)] for row in rows], bool)


def _text(text: str, scale: int) -> np.ndarray:
    """Pixel mask of one line of text; letters are 1 font pixel apart, each font pixel scale x scale."""
    mask = np.zeros((_GH, max(len(text) * (_GW + 1) - 1, 0)), bool)
    for i, ch in enumerate(text):
        mask[:, i * (_GW + 1) : i * (_GW + 1) + _GW] = _glyph(ch)
    return mask.repeat(scale, axis=0).repeat(scale, axis=1)


def _fit(text: str, scale: int, room: int) -> np.ndarray:
    """The text's mask at `scale`, else at 1x, else cut to `room` pixels with a trailing '..'."""
    for s in (scale, 1):
        if _text(text, s).shape[1] <= room:
            return _text(text, s)
    keep = max((room + 1) // (_GW + 1) - 2, 0)
    return _text(text[:keep] + "..", 1)


def _paint(img: np.ndarray, mask: np.ndarray, top: int, left: int, color) -> None:
    """Colour img where mask is set, mask's corner at (top, left); whatever falls outside is clipped."""
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + mask.shape[0], img.shape[0]), min(left + mask.shape[1], img.shape[1])
    if t0 < t1 and l0 < l1:
        img[t0:t1, l0:l1][mask[t0 - top : t1 - top, l0 - left : l1 - left]] = color


def _nice_axis(lo: float, hi: float, pad: float):
    """Axis limits (the data range plus `pad` of it), a 1-2-5 tick step, and the ticks inside."""
    if hi - lo <= 1e-12 * max(abs(lo), abs(hi)):  # one value: give it room so it sits mid-axis
        room = abs(lo) * 0.1 or 1.0
        lo, hi = lo - room, hi + room
    else:
        lo, hi = lo - pad * (hi - lo), hi + pad * (hi - lo)
    mag = 10.0 ** math.floor(math.log10((hi - lo) / 5))
    step = min((m * mag for m in (1, 2, 5, 10)), key=lambda d: abs((hi - lo) / d - 5))  # ~5 intervals
    k0, k1 = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return lo, hi, step, [k * step for k in range(k0, k1 + 1)]


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _scientific(v: float, step: float) -> str:
    """v as 2.5e-4, with as many mantissa digits as the step needs."""
    exp = math.floor(math.log10(abs(v)))
    mant = f"{v / 10.0**exp:.{max(0, exp - math.floor(math.log10(step) + 1e-9))}f}"
    if abs(float(mant)) >= 10:  # 9.99e-4 rounded up to 10.0: write it as 1e-3 instead
        return _scientific(float(mant) * 10.0**exp, step)
    return f"{mant.rstrip('0').rstrip('.') if '.' in mant else mant}e{exp}"


def _labels(ticks, step: float) -> list:
    """Compact tick labels (0.25, 1500, 96k, 2.5M, 1e-3), one style per axis, digits as the step needs."""
    big = max(abs(t) for t in ticks)
    # The largest unit the biggest tick reaches (96k, 2.5M, 40G), unless the step needs many decimals.
    unit, suffix = next(((u, x) for u, x in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")) if big >= u), (1, ""))
    if big >= 1e15 or step < 1e-3:
        text = [_scientific(t, step) if abs(t) >= step * 1e-6 else "0" for t in ticks]
    elif big >= 1e4 and step >= unit / 100:
        text = [f"{t / unit:.{_decimals(step / unit)}f}{suffix}" for t in ticks]
    else:
        text = [f"{t:.{_decimals(step)}f}" for t in ticks]
    return ["0" if abs(t) < step * 1e-6 else label for t, label in zip(ticks, text)]


def _check(x, series, width, height):
    """The inputs as float arrays, or ValueError naming what is wrong."""
    if int(width) != width or int(height) != height or width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive whole pixel counts, got {width} x {height}")
    if not isinstance(series, dict) or not 1 <= len(series) <= len(COLORS):
        raise ValueError(f"series must be a dict of 1 to {len(COLORS)} name -> y values, got {series!r:.80}")
    xs = np.asarray(x, dtype=float)
    if xs.ndim != 1 or xs.size == 0:
        raise ValueError("x must be a non-empty 1-D sequence of numbers")
    if not np.all(np.isfinite(xs)):
        raise ValueError("x must hold finite numbers only (NaN or inf found)")
    ys = []  # (name, y) pairs; a list, so names that print alike still get a line each
    for name, values in series.items():
        y = np.asarray(values, dtype=float)
        if y.shape != xs.shape:
            raise ValueError(f"series {name!r} has {y.size} values but x has {xs.size}; they must match")
        ys.append((str(name), np.where(np.isfinite(y), y, np.nan)))  # inf is skipped like NaN
    return int(width), int(height), xs, ys


def _draw_series(img, px, py, color, box) -> None:
    """2-px polyline through the points, broken at NaN; a point with no finite neighbour is a 5x5 dot."""
    top, bottom, left, right = box
    ok = ~np.isnan(py)
    runs = []
    for i in range(len(px)):
        if ok[i] and i + 1 < len(px) and ok[i + 1]:
            n = int(max(abs(px[i + 1] - px[i]), abs(py[i + 1] - py[i]))) + 1  # a sample per pixel step
            runs.append((np.linspace(px[i], px[i + 1], n + 1), np.linspace(py[i], py[i + 1], n + 1)))
        elif ok[i] and not (i > 0 and ok[i - 1]):
            cx, cy = int(round(px[i])), int(round(py[i]))
            img[max(cy - 2, top) : min(cy + 3, bottom + 1), max(cx - 2, left) : min(cx + 3, right + 1)] = color
    if not runs:
        return
    cols = np.rint(np.concatenate([r[0] for r in runs])).astype(int)
    rows = np.rint(np.concatenate([r[1] for r in runs])).astype(int)
    for dc in (0, 1):  # a 2x2 pen: stamp every sample at four offsets
        for dr in (0, 1):
            c, r = cols + dc, rows + dr
            keep = (left <= c) & (c <= right) & (top <= r) & (r <= bottom)
            img[r[keep], c[keep]] = color


def _label_stride(spacing: float, size: int) -> int:
    """Label every k-th tick, k the smallest that keeps labels of `size` pixels from touching."""
    k = 1
    while k * spacing < size and k < 1000:
        k += 1
    return k


def _legend(names, scale: int, left: int, right: int):
    """Legend entries as (row, column, colour, text mask), wrapped into rows that fit between left and right."""
    entries, row, col = [], 0, left
    for name, color in zip(names, COLORS):
        mask = _fit(name, scale, max(right - left - 10 * scale, 1))
        size = 10 * scale + mask.shape[1]  # swatch, gap, name
        if col > left and col + size > right:
            row, col = row + 1, left
        entries.append((row, col, color, mask))
        col += size + 12 * scale
    return entries, row + 1


def _render(xs, ys, title, xlabel, ylabel, width, height) -> np.ndarray:
    s = 2 if width >= 400 and height >= 240 else 1  # 2x text where it fits, plain 1x on small images
    pad, line = 5 * s, _GH * s
    finite = np.concatenate([y[~np.isnan(y)] for _, y in ys])
    # A little room around the data keeps lines and end dots off the frame.
    x0, x1, xstep, xticks = _nice_axis(float(xs.min()), float(xs.max()), 0.02)
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    y0, y1, ystep, yticks = _nice_axis(lo, hi, 0.04)
    xlabels = [_text(label, s) for label in _labels(xticks, xstep)]
    ylabels = [_text(label, s) for label in _labels(yticks, ystep)]
    ymask = np.rot90(_fit(ylabel, s, height - 2 * pad)) if ylabel else np.zeros((0, 0), bool)
    tmask = _fit(title, s, width - 2 * pad) if title else np.zeros((0, 0), bool)
    xmask = _fit(xlabel, s, width - 2 * pad) if xlabel else np.zeros((0, 0), bool)

    # Margins grow with what they hold: the y label and the widest y tick label on the left, half
    # the last x tick label on the right, title and legend rows on top, x ticks and label below.
    left = pad + (ymask.shape[1] + 4 * s if ylabel else 0) + max(m.shape[1] for m in ylabels) + 6 * s
    left = max(left, pad + xlabels[0].shape[1] // 2)
    right = width - 1 - max(pad, xlabels[-1].shape[1] // 2 + s)
    legend, legend_rows = _legend([name for name, _ in ys], s, left, right)
    legend_top = pad + (tmask.shape[0] + 6 * s if title else 0)
    top = legend_top + legend_rows * (line + 3 * s) + 4 * s
    bottom = height - 1 - pad - (line + 3 * s if xlabel else 0) - line - 6 * s
    if right - left < 16 or bottom - top < 16:
        raise ValueError(f"a {width} x {height} image leaves no room for the plot beside its labels; make it larger")

    img = np.full((height, width, 3), WHITE, np.uint8)

    def to_col(v):
        return left + (v - x0) / (x1 - x0) * (right - left)

    def to_row(v):
        return bottom - (v - y0) / (y1 - y0) * (bottom - top)

    every = _label_stride((right - left) / max(len(xticks) - 1, 1), max(m.shape[1] for m in xlabels) + 4 * s)
    for i, (t, mask) in enumerate(zip(xticks, xlabels)):
        c = int(round(to_col(t)))
        img[top:bottom, c] = GRID
        img[bottom : bottom + 3 * s, c] = FRAME
        if i % every == 0:
            _paint(img, mask, bottom + 5 * s, c - mask.shape[1] // 2, INK)
    every = _label_stride((bottom - top) / max(len(yticks) - 1, 1), line + s)
    for i, (t, mask) in enumerate(zip(yticks, ylabels)):
        r = int(round(to_row(t)))
        img[r, left:right] = GRID
        img[r, left - 3 * s : left] = FRAME
        if i % every == 0:
            _paint(img, mask, r - 7 * s // 2, left - 5 * s - mask.shape[1], INK)
    for (_, y), color in zip(ys, COLORS):
        _draw_series(img, to_col(xs), to_row(y), color, (top + 1, bottom - 1, left + 1, right - 1))
    img[[top, bottom], left : right + 1] = FRAME
    img[top : bottom + 1, [left, right]] = FRAME

    _paint(img, tmask, pad, (width - tmask.shape[1]) // 2, INK)
    for row, col, color, mask in legend:
        r = legend_top + row * (line + 3 * s)
        img[r : r + 7 * s, col : col + 7 * s] = color
        _paint(img, mask, r, col + 10 * s, INK)
    _paint(img, xmask, height - pad - line, (left + right - xmask.shape[1]) // 2, INK)
    _paint(img, ymask, (top + bottom - ymask.shape[0]) // 2, pad, INK)
    return img


def _chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data, and the CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(img: np.ndarray) -> bytes:
    h, w, _ = img.shape
    rows = np.zeros((h, 1 + 3 * w), np.uint8)  # each scanline starts with filter type 0 (none)
    rows[:, 1:] = img.reshape(h, 3 * w)
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, deflate, no interlace
    chunks = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def write_line_plot(path, x, series, *, title="", xlabel="", ylabel="", width=800, height=480) -> None:
    """Save a PNG line plot of each of `series` (dict name -> y values, at most 6) against `x`.

    x holds finite, increasing numbers; each series has one y per x, NaN (or inf) values are left
    out of its line. Raises ValueError for no points, too many series, mismatched lengths, or a
    width/height that is not positive (or too small to fit the labels).

    Example: write_line_plot("history.png", [0, 1, 2], {"best": [0.1, 0.5, 0.7]}, title="search").
    """
    width, height, xs, ys = _check(x, series, width, height)
    write_bytes(os.fspath(path), _png(_render(xs, ys, title, xlabel, ylabel, width, height)))
