"""Benchmarks of the evolutionary search: `python -m pytest benchmarks/bench_search.py`.

- the native loop (mutation, budget, native score, population update) for the four budgets at the
  issue's acceptance size (96,000 iterations, population 256);
- the same loop with a Python score_fn (the slower path for custom proxies);
- a plain Python implementation of the same loop (mutation written here, FLOPs by the per-layer count
  of tests/test_arch.py, the paper score by the plain re-statement of tests/test_score.py), run for
  fewer iterations; iterations per second are compared in `extra_info` and docs/benchmarks.md.
"""

import os
import random
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import pyddsar  # noqa: E402
from pyddsar import Arch, Block  # noqa: E402
from pyddsar.search import SPACES  # noqa: E402
from test_arch import plain_cost  # noqa: E402
from test_score import ref_paper  # noqa: E402

FULL = dict(iterations=96000, population=256, seed=0)


@pytest.mark.parametrize("budget", ["0.5g", "2.5g", "10g", "34g"])
def test_native_search(benchmark, budget):
    benchmark.group = "search 96,000 iterations, population 256"
    result = benchmark.pedantic(pyddsar.search, args=(budget,), kwargs=FULL, rounds=5, iterations=1)
    benchmark.extra_info["iterations_per_s"] = 96000 / benchmark.stats.stats.mean
    assert result.flops <= result.budget_flops


def test_native_search_release_variant(benchmark):
    benchmark.group = "search 96,000 iterations, population 256"
    benchmark.pedantic(pyddsar.search, args=("0.5g",), kwargs=dict(FULL, variant="damofd-release"), rounds=5, iterations=1)
    benchmark.extra_info["iterations_per_s"] = 96000 / benchmark.stats.stats.mean


def test_native_loop_with_python_score_fn(benchmark):
    benchmark.group = "search loop, 3,000 iterations (per-iteration rates in extra_info)"
    benchmark.pedantic(
        pyddsar.search, args=("0.5g",), kwargs=dict(iterations=3000, population=256, seed=0, score_fn=pyddsar.score),
        rounds=3, iterations=1,
    )
    benchmark.extra_info["iterations_per_s"] = 3000 / benchmark.stats.stats.mean


# -- a plain Python Algorithm 1 ---------------------------------------------------------------------
def python_mutate(arch, space, rng):
    blocks = list(arch.blocks)
    i = rng.randint(0, 4)
    b = blocks[i]
    step = rng.randint(-space.max_layer_step, space.max_layer_step)

    def scale(c, lo, hi):
        return min(hi, max(lo, max(8, round(c * rng.choice(space.channel_factors) / 8) * 8)))

    if i == 0:
        b = Block("Conv", 3, 3, scale(b.out_channels, space.stem_min_channels, space.stem_max_channels), 2, 0,
                  min(space.stem_max_layers, max(1, b.layers + step)))
    else:
        kind = rng.choice(space.types)
        b = Block(kind, rng.choice(space.kernels), b.in_channels, scale(b.out_channels, space.min_channels, space.max_channels),
                  2, scale(b.bottleneck, space.min_bottleneck, space.max_bottleneck),
                  min(space.max_block_layers, max(1, b.layers + step)),
                  rng.choice(space.expansions) if kind == "MB" else 1)
    blocks[i] = b
    for j in range(1, 5):
        d = blocks[j].to_dict()
        blocks[j] = Block(d["type"], d["kernel"], blocks[j - 1].out_channels, d["out"], d["stride"], d["bottleneck"],
                          d["layers"], d["expansion"])
    return Arch(tuple(blocks))


def python_search(iterations, population=256, budget=403_000_000, seed=0):
    space, rng = SPACES["mb"], random.Random(seed)
    seed_arch = Arch.parse(space.seed)
    pop = [(seed_arch, ref_paper(seed_arch)[0])]
    while len(pop) < population:
        child = python_mutate(rng.choice(pop)[0], space, rng)
        if sum(b.layers for b in child) <= space.max_total_layers and plain_cost(child, 640, 480)[0] <= budget:
            pop.append((child, ref_paper(child)[0]))
    for _ in range(iterations):
        child = python_mutate(rng.choice(pop)[0], space, rng)
        if sum(b.layers for b in child) > space.max_total_layers or plain_cost(child, 640, 480)[0] > budget:
            continue
        pop.append((child, ref_paper(child)[0]))
        if len(pop) > population:
            pop.remove(min(pop, key=lambda m: m[1]))
    return max(pop, key=lambda m: m[1])


def test_plain_python_loop(benchmark):
    benchmark.group = "search loop, 3,000 iterations (per-iteration rates in extra_info)"
    benchmark.pedantic(python_search, args=(3000,), rounds=3, iterations=1)
    benchmark.extra_info["iterations_per_s"] = 3000 / benchmark.stats.stats.mean
