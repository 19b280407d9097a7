"""Plots with matplotlib's Agg canvas (no GUI backend is touched): each ``*_figure`` function returns
a :class:`matplotlib.figure.Figure` (its data can be inspected), :func:`save_png` writes one
atomically through :mod:`pyddsar._atomic`."""

from __future__ import annotations

import io

import numpy as np

from ._atomic import write_bytes

MAX_SERIES = 10


def _figure(width: int, height: int, dpi: int = 100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if int(width) != width or int(height) != height or width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive whole pixel counts, got {width} x {height}")
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _series(x, series):
    """The inputs as float arrays, or ValueError naming what is wrong."""
    if not isinstance(series, dict) or not 1 <= len(series) <= MAX_SERIES:
        raise ValueError(f"series must be a dict of 1 to {MAX_SERIES} name -> y values, got {series!r:.80}")
    xs = np.asarray(x, dtype=float)
    if xs.ndim != 1 or xs.size == 0:
        raise ValueError("x must be a non-empty 1-D sequence of numbers")
    if not np.all(np.isfinite(xs)):
        raise ValueError("x must hold finite numbers only (NaN or inf found)")
    out = []
    for name, values in series.items():
        y = np.asarray(values, dtype=float)
        if y.shape != xs.shape:
            raise ValueError(f"series {name!r} has {y.size} values but x has {xs.size}; they must match")
        out.append((str(name), np.where(np.isfinite(y), y, np.nan)))  # inf is a gap like NaN
    return xs, out


def line_figure(x, series, *, title="", xlabel="", ylabel="", width=800, height=480):
    """One line per entry of `series` (dict name -> y values, each as long as `x`) against `x`."""
    xs, ys = _series(x, series)
    fig = _figure(width, height)
    ax = fig.add_subplot()
    for name, y in ys:
        ax.plot(xs, y, label=name, marker="." if xs.size == 1 else None)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def pr_figure(curves, *, title="WIDER Face precision-recall", width=640, height=480):
    """WIDER's official plot: precision (y) against recall (x), one line per subset, the legend
    giving each subset's AP. `curves`: dict subset -> (recall, precision, ap)."""
    if not isinstance(curves, dict) or not curves:
        raise ValueError("curves must be a non-empty dict of subset -> (recall, precision, ap)")
    fig = _figure(width, height)
    ax = fig.add_subplot()
    for name, (recall, precision, ap) in curves.items():
        r = np.asarray(recall, dtype=float)
        p = np.asarray(precision, dtype=float)
        if r.ndim != 1 or r.shape != p.shape:
            raise ValueError(f"subset {name!r}: recall and precision must be 1-D of one length, got "
                             f"{r.shape} and {p.shape}")
        ax.plot(r, p, label=f"{name} AP {float(ap):.4f}")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def bar_figure(names, values, *, title="", ylabel="", width=640, height=400):
    """One bar per name."""
    names = [str(n) for n in names]
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size != len(names) or not names:
        raise ValueError(f"bar chart needs as many values as names (non-empty), got {v.size} and {len(names)}")
    if not np.all(np.isfinite(v)):
        raise ValueError("bar values must be finite (NaN or inf found)")
    fig = _figure(width, height)
    ax = fig.add_subplot()
    ax.bar(names, v)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def points_figure(x, y, labels, *, title="", xlabel="", ylabel="", width=640, height=440):
    """Labelled points joined in order of `x` (e.g. score against latency, one point per budget)."""
    xs, ((_, ys),) = _series(x, {"y": y})
    if len(labels) != xs.size:
        raise ValueError(f"{len(labels)} labels for {xs.size} points")
    order = np.argsort(xs, kind="stable")
    fig = _figure(width, height)
    ax = fig.add_subplot()
    ax.plot(xs[order], ys[order], marker="o")
    for xi, yi, label in zip(xs, ys, labels):
        ax.annotate(str(label), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def save_png(fig, path: str) -> None:
    """Write `fig` as a PNG at its own pixel size, atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    write_bytes(path, buf.getvalue())


def write_line_plot(path, x, series, **kwargs) -> None:
    save_png(line_figure(x, series, **kwargs), path)
