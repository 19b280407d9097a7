"""pyddsar.plots: the Figures hold the data given, the PNGs are valid images of the asked size,
bad input is refused naming what is wrong."""

import numpy as np
import pytest
from matplotlib.image import imread

from pyddsar import plots


def test_line_figure_data_and_png(tmp_path):
    x = [0, 1, 2, 3]
    series = {"best": [1.0, 2.0, 2.5, 3.0], "mean": [0.5, float("nan"), 1.5, float("inf")]}
    fig = plots.line_figure(x, series, title="t", xlabel="iteration", ylabel="score", width=320, height=200)
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["best", "mean"]
    np.testing.assert_array_equal(lines[0].get_xdata(), x)
    np.testing.assert_array_equal(lines[0].get_ydata(), series["best"])
    np.testing.assert_array_equal(lines[1].get_ydata(), [0.5, np.nan, 1.5, np.nan])  # inf is a gap
    assert fig.axes[0].get_xlabel() == "iteration"
    path = tmp_path / "p.png"
    plots.save_png(fig, str(path))
    img = imread(str(path))
    assert img.shape[:2] == (200, 320)
    assert img.std() > 0  # something drawn
    assert not list(tmp_path.glob("*.tmp-*"))


def test_write_line_plot_one_point(tmp_path):
    path = tmp_path / "one.png"
    plots.write_line_plot(str(path), [5], {"loss": [0.25]}, width=200, height=150)
    assert imread(str(path)).shape[:2] == (150, 200)


def test_pr_figure_legend_has_the_three_aps(tmp_path):
    r = np.linspace(0, 0.9, 10)
    curves = {"easy": (r, 1 - r / 2, 0.9012), "medium": (r, 1 - r, 0.8123), "hard": (r / 2, 1 - r, 0.5034)}
    fig = plots.pr_figure(curves)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["easy AP 0.9012", "medium AP 0.8123", "hard AP 0.5034"]
    np.testing.assert_array_equal(ax.get_lines()[2].get_xdata(), r / 2)  # recall on x
    np.testing.assert_array_equal(ax.get_lines()[2].get_ydata(), 1 - r)  # precision on y
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("recall", "precision")
    plots.save_png(fig, str(tmp_path / "pr.png"))
    assert imread(str(tmp_path / "pr.png")).shape[:2] == (480, 640)


def test_write_pr_plot_from_result(tmp_path):
    from pyddsar.evaluation.widerface import SUBSETS, WiderEvalResult, write_pr_plot

    r = np.linspace(0.1, 0.8, 5)
    p = np.array([1.0, 0.9, np.nan, 0.7, 0.6])
    result = WiderEvalResult({s: 0.5 for s in SUBSETS}, {s: p for s in SUBSETS}, {s: r for s in SUBSETS},
                             np.linspace(1, 0, 5), {s: 10 for s in SUBSETS}, 3, [])
    write_pr_plot(str(tmp_path / "pr.png"), result)
    assert imread(str(tmp_path / "pr.png")).ndim == 3


def test_score_report_bar_chart(tmp_path):
    from pyddsar import presets, score_report

    report = score_report(presets["ddsar-0.5g"])
    fig = report.figure()
    bars = fig.axes[0].patches
    assert len(bars) == len(report.stages)
    np.testing.assert_allclose([b.get_height() for b in bars], [s.weighted for s in report.stages])
    report.write_png(str(tmp_path / "s.png"))
    assert imread(str(tmp_path / "s.png")).shape[:2] == (400, 640)


@pytest.mark.parametrize("call, words", [
    (lambda: plots.line_figure([], {"a": []}), "x must be a non-empty"),
    (lambda: plots.line_figure([0, np.nan], {"a": [1, 2]}), "x must hold finite"),
    (lambda: plots.line_figure([0, 1], {"a": [1]}), "series 'a' has 1 values but x has 2"),
    (lambda: plots.line_figure([0, 1], {}), "series must be a dict"),
    (lambda: plots.line_figure([0, 1], {"a": [1, 2]}, width=0), "width and height"),
    (lambda: plots.pr_figure({"easy": ([0, 1], [1], 0.5)}), "subset 'easy'"),
    (lambda: plots.pr_figure({}), "curves must be"),
    (lambda: plots.bar_figure(["a", "b"], [1.0]), "as many values as names"),
    (lambda: plots.bar_figure(["a"], [np.inf]), "finite"),
])
def test_refusals(call, words):
    with pytest.raises(ValueError, match=words):
        call()
