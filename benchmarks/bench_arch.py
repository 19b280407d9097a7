"""Benchmarks of the architecture model: `python -m pytest benchmarks/bench_arch.py`.

arch.flops() is what the search's budget check calls; the issue asks for at least 1e5 calls/s.
Figures: docs/benchmarks.md.
"""

import pytest

import pyddsar


@pytest.mark.parametrize("name", ["ddsar-0.5g", "ddsar-34g"])
def test_flops_python_call(benchmark, name):
    benchmark.group = "Arch.flops (one call from Python)"
    arch = pyddsar.presets[name]
    benchmark(arch.flops, (640, 480))


@pytest.mark.parametrize("name", ["ddsar-0.5g", "ddsar-34g"])
def test_flops_native_loop(benchmark, name):
    # 10,000 evaluations inside C++: the cost the native search pays per candidate
    benchmark.group = "Arch.flops x 10,000 in C++"
    arch = pyddsar.presets[name]
    total = benchmark(arch._native.flops_repeated, 640, 480, 10_000)
    assert total == arch.flops() * 10_000


def test_parse(benchmark):
    benchmark.group = "Arch.parse"
    text = str(pyddsar.presets["ddsar-34g"])
    benchmark(pyddsar.Arch.parse, text)
