"""Benchmarks of exact linear-region counting: `python -m pytest benchmarks/bench_regions.py`.

The SPEC's probe layer (k=3, s=1, d0=1, d1=7) on square and 2x3 output grids, against the
brute-force reference of tests/test_regions.py (every t in the box, every subset), which cannot
reach a 3x3 grid. Figures: docs/benchmarks.md.
"""

import os
import sys

import pytest

import pyddsar

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from test_regions import brute_force_regions  # noqa: E402

PROBE = dict(kernel=3, stride=1, filters=7)


def grid_input(rows, cols):
    return (rows + 2, cols + 2, 1)  # k=3, s=1: an input of side n+2 gives n output cells


@pytest.mark.parametrize("side", [2, 3, 4, 5])
def test_square_grid(benchmark, side):
    benchmark.group = "linear_regions k3 s1 d0=1 d1=7"
    rounds = 3 if side >= 5 else 20
    value = benchmark.pedantic(pyddsar.linear_regions, args=(grid_input(side, side),), kwargs=PROBE, rounds=rounds, iterations=1)
    assert value > 0


def test_log_of_3x3_grid(benchmark):
    benchmark.group = "linear_regions k3 s1 d0=1 d1=7"
    benchmark(pyddsar.log_linear_regions, grid_input(3, 3), **PROBE)


def test_grid_2x3_native(benchmark):
    benchmark.group = "2x3 grid: native vs brute force"
    assert benchmark(pyddsar.linear_regions, grid_input(2, 3), **PROBE) == brute_force_regions(4, 5, 1, 3, 3, 1, 7)


def test_grid_2x3_brute_force(benchmark):
    benchmark.group = "2x3 grid: native vs brute force"
    benchmark.pedantic(brute_force_regions, args=(4, 5, 1, 3, 3, 1, 7), rounds=3, iterations=1)


def test_one_dimensional_strip(benchmark):
    benchmark.group = "linear_regions 1-D"
    # 1 x 1000 input, k=3, s=1, d0=3, d1=64: 998 cells, a one-state DP
    benchmark(pyddsar.linear_regions, (1, 1000, 3), (1, 3), 1, 64)
