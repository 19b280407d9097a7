"""Benchmarks of the DDSAR-Score (pytest-benchmark): `python -m pytest benchmarks/bench_score.py`.

Cases, for both variants: the native scorer alone (a loop in C++ over one preset, what the native
search sees), one `pyddsar.score` call from Python, `pyddsar.score_batch` over 2,000 architectures of
the 0.5G (MB) space, and the plain Python paper score of tests/test_score.py (FS values cached) as the
reference. `python benchmarks/bench_score.py` prints scores per second and the ratios directly.
Figures: docs/score.md.
"""

import os
import random
import sys
import time

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests"))
if __name__ == "__main__":
    sys.path.insert(0, ROOT)  # run as a script from a source checkout

import pyddsar  # noqa: E402
from pyddsar import Arch, Block, presets, score, score_batch  # noqa: E402
from test_score import ref_paper  # noqa: E402

from pyddsar.score import _scorer  # noqa: E402

VARIANTS = ("paper", "damofd-release")
NATIVE_REPEATS = 100_000
BATCH = 2000


def mb_space_arch(rng):
    """A random member of the 0.5G search space: the release's stem, four MB blocks."""
    blocks, c = [Block("Conv", 3, 3, 32, 2, 0, 1)], 32
    for _ in range(4):
        out = rng.choice(range(8, 161, 8))
        blocks.append(Block("MB", rng.choice([3, 5, 7]), c, out, 2, rng.choice(range(8, 129, 8)), rng.randint(1, 3),
                            rng.choice([1, 2, 4, 6])))
        c = out
    return Arch(tuple(blocks))


MB_ARCHS = [mb_space_arch(random.Random(i)) for i in range(BATCH)]


def native_scorer(variant):
    return _scorer(variant, None, None, (224, 224), None)[0]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("preset", sorted(presets))
def test_native_loop(benchmark, variant, preset):
    """NATIVE_REPEATS scores of one preset in a C++ loop; scores/s = NATIVE_REPEATS / time."""
    scorer, arch = native_scorer(variant), presets[preset]._native
    benchmark.group = f"native-{NATIVE_REPEATS}-{variant}"
    benchmark.pedantic(scorer.repeat, (arch, NATIVE_REPEATS), rounds=5, iterations=1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_python_call(benchmark, variant):
    arch = presets["ddsar-0.5g"]
    benchmark.group = "one-call-0.5g"
    benchmark(score, arch, variant)


@pytest.mark.parametrize("variant", VARIANTS)
def test_batch(benchmark, variant):
    benchmark.group = f"batch-{BATCH}"
    out = benchmark(score_batch, MB_ARCHS, variant)
    assert len(out) == BATCH


def test_python_reference_paper_batch(benchmark):
    benchmark.group = f"batch-{BATCH}"
    out = benchmark.pedantic(lambda: [ref_paper(a)[0] for a in MB_ARCHS], rounds=3, iterations=1)
    assert out[:10] == pytest.approx(score_batch(MB_ARCHS[:10]), rel=1e-12)


def _rate(fn, n, min_time=0.5):
    """Best of several runs: items per second."""
    best, total = float("inf"), 0.0
    while total < min_time or best == float("inf"):
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        best, total = min(best, dt), total + dt
    return n / best


def main():
    print(f"pyddsar {pyddsar.__version__}; scores per second (best run)")
    for variant in VARIANTS:
        scorer = native_scorer(variant)
        for name in sorted(presets):
            arch = presets[name]
            native = _rate(lambda: scorer.repeat(arch._native, NATIVE_REPEATS), NATIVE_REPEATS)
            one = _rate(lambda: [score(arch, variant) for _ in range(2000)], 2000)
            print(f"{variant:15s} {name:11s} native loop {native:12,.0f}/s   pyddsar.score() {one:10,.0f}/s")
        batch = _rate(lambda: score_batch(MB_ARCHS, variant), BATCH)
        print(f"{variant:15s} score_batch of {BATCH} 0.5G-space archs: {batch:,.0f}/s")
    ref = _rate(lambda: [ref_paper(a)[0] for a in MB_ARCHS], BATCH)
    native = _rate(lambda: native_scorer("paper").repeat(presets["ddsar-0.5g"]._native, NATIVE_REPEATS), NATIVE_REPEATS)
    batch = _rate(lambda: score_batch(MB_ARCHS), BATCH)
    print(f"plain Python paper score over the same {BATCH} archs: {ref:,.0f}/s")
    print(f"ratio score_batch / Python: {batch / ref:.1f}x; native loop (0.5G) / Python: {native / ref:.1f}x")


if __name__ == "__main__":
    main()
