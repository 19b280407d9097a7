"""Benchmarks of the evolutionary search: `python -m pytest benchmarks/bench_search.py`.

- the native loop (mutation, budget, native score, population update) for the four budgets at the
  issue's acceptance size (96,000 iterations, population 256);
- the same loop with a Python score_fn (the slower path for custom proxies);
- the release's loop written plainly in Python (the candidate lists and FLOPs of
  tests/test_search_release.py, the native damofd-release score), run for fewer iterations;
  iterations per second are compared in `extra_info` and docs/benchmarks.md (the release's own
  code, run by hand on this CPU, is in docs/benchmarks.md too).
"""

import os
import random
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import pyddsar  # noqa: E402
from pyddsar import Arch, Block  # noqa: E402
from pyddsar.search import BUDGET_PRESETS, SPACES, Constraints  # noqa: E402
from test_search_release import gen_search_space, release_flops  # noqa: E402

FULL = dict(iterations=96000, population=256, seed=0)


@pytest.mark.parametrize("budget", ["0.5g", "2.5g", "10g", "34g"])
def test_native_search(benchmark, budget):
    benchmark.group = "search 96,000 iterations, population 256"
    result = benchmark.pedantic(pyddsar.search, args=(budget,), kwargs=FULL, rounds=5, iterations=1)
    benchmark.extra_info["iterations_per_s"] = 96000 / benchmark.stats.stats.mean
    assert result.flops <= result.budget_flops


def test_native_search_as_the_release(benchmark):
    # the release's settings: its budget check, population 512, no width constraint
    benchmark.group = "search 96,000 iterations, population 256"
    kwargs = dict(FULL, population=512, budget_check="release", constraints=Constraints())
    benchmark.pedantic(pyddsar.search, args=("0.5g",), kwargs=kwargs, rounds=5, iterations=1)
    benchmark.extra_info["iterations_per_s"] = 96000 / benchmark.stats.stats.mean


def test_native_loop_with_python_score_fn(benchmark):
    benchmark.group = "search loop, 3,000 iterations (per-iteration rates in extra_info)"
    benchmark.pedantic(
        pyddsar.search, args=("0.5g",), kwargs=dict(iterations=3000, population=256, seed=0,
                                         score_fn=lambda a: pyddsar.score(a, variant="damofd-release")),
        rounds=3, iterations=1,
    )
    benchmark.extra_info["iterations_per_s"] = 3000 / benchmark.stats.stats.mean


# -- the release's loop, plainly in Python --------------------------------------------------------
def python_mutate(arch, space_name, rng, count):
    """evolution_search.get_new_random_structure_str with the candidate list of tests/test_search_release.py."""
    blocks, drawn = list(arch.blocks), set()
    for _ in range(count):
        i = rng.randint(1, 4)
        if i in drawn:
            continue
        drawn.add(i)
        (kind, k, e), out, layers, btl = rng.choice(gen_search_space(blocks[i], space_name))
        blocks[i] = Block(kind, k, blocks[i].in_channels, out, 2, btl, layers, e)
    chained = [blocks[0]]
    for b in blocks[1:]:
        chained.append(Block(b.type, b.kernel, chained[-1].out_channels, b.out_channels, b.stride, b.bottleneck, b.layers, b.expansion))
    return Arch(tuple(chained))


def python_search(iterations, population=256, budget="0.5g", seed=0):
    preset = BUDGET_PRESETS[budget]
    space, rng = SPACES[preset.space], random.Random(seed)
    seed_arch = Arch.parse(preset.seed)
    pop = []
    for _ in range(iterations):
        if len(pop) <= 10:
            child = python_mutate(seed_arch, preset.space, rng, 1)
        else:
            child = python_mutate(rng.choice(pop)[0], preset.space, rng, 2)
        if sum(b.layers for b in child) > space.max_total_layers or max(b.layers for b in child) > 5:
            continue
        if release_flops(child) > preset.release_flops_224:
            continue
        pop.append((child, pyddsar.score(child, variant="damofd-release")))
        if len(pop) > population:
            pop.remove(min(pop, key=lambda m: m[1]))
    return max(pop, key=lambda m: m[1])


def test_plain_python_loop(benchmark):
    benchmark.group = "search loop, 3,000 iterations (per-iteration rates in extra_info)"
    benchmark.pedantic(python_search, args=(3000,), rounds=3, iterations=1)
    benchmark.extra_info["iterations_per_s"] = 3000 / benchmark.stats.stats.mean
