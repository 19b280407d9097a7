"""Benchmarks of latency-budget searches and latency tables: `python -m pytest benchmarks/bench_latency.py`.

- a latency-budget search of 96,000 iterations (population 256) with the detector latency predicted
  natively from a table: a measured one when PYDDSAR_LATENCY_TABLE names it, else a table of the
  same grids filled with a closed-form latency (the loop's cost does not depend on the values);
- building the table of the 0.5G space on this CPU (torch; onnxruntime with PYDDSAR_BENCH_ORT=1),
  one round, no cache.
"""

import dataclasses
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import pyddsar  # noqa: E402
from pyddsar import Arch  # noqa: E402
from pyddsar.latency import build_latency_table, current_environment, load_latency_table  # noqa: E402
from test_latency import synthetic_table  # noqa: E402


@pytest.fixture(scope="module")
def table():
    path = os.environ.get("PYDDSAR_LATENCY_TABLE")
    if path:
        return load_latency_table(path)
    t = synthetic_table("damofd-mb", detector={"name": "ddsar-0.5g", "neck_channels": 16, "levels": [2, 3, 4],
                                               "rest_ms": 2.0})
    return dataclasses.replace(t, environment=current_environment("cpu", "torch"))


def test_latency_budget_search(benchmark, table):
    benchmark.group = "search 96,000 iterations, population 256"
    budget = table.predict(Arch.parse(pyddsar.SPACES["damofd-mb"].seed), detector=True) * 1.1
    result = benchmark.pedantic(pyddsar.search, kwargs=dict(budget=None, budget_latency_ms=budget, latency_table=table,
                                                            iterations=96000, population=256, seed=0),
                                rounds=5, iterations=1)
    benchmark.extra_info["iterations_per_s"] = 96000 / benchmark.stats.stats.mean
    benchmark.extra_info["budget_ms"] = budget
    benchmark.extra_info["predicted_ms"] = result.predicted_latency_ms
    assert result.predicted_latency_ms <= budget


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_build_table_0_5g_space(benchmark, runtime):
    if runtime == "onnxruntime" and not os.environ.get("PYDDSAR_BENCH_ORT"):
        pytest.skip("set PYDDSAR_BENCH_ORT=1 to time the onnxruntime table too (minutes)")
    benchmark.group = "latency table of damofd-mb at 640x480"
    t = benchmark.pedantic(build_latency_table, args=("damofd-mb",), kwargs=dict(runtime=runtime, cache=None),
                           rounds=1, iterations=1)
    benchmark.extra_info["points"] = sum(1 for g in t.grids for v in g.ms if v == v)
    benchmark.extra_info["grids"] = len(t.grids)
