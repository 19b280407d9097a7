"""A family of backbones in one call: the best backbone for each of several latency budgets (as
ASFD scales D0 ... Dn), each searched by :func:`pyddsar.search` from the same measured table.

>>> fam = search_family([20, 30, 40], latency_table="table.json", iterations=20000)   # doctest: +SKIP
>>> fam.write("family/")   # family/20ms/, family/30ms/, ..., summary.csv, summary.txt, family.png
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

from ._atomic import write_text
from ._validate import real
from .search import SearchResult, search


@dataclass(frozen=True)
class SearchFamily:
    budgets_ms: Tuple[float, ...]
    results: Tuple[SearchResult, ...]  # one per budget, in the order of budgets_ms

    def rows(self) -> list:
        """One dict per budget: budget_ms, predicted_ms, score, flops, params, structure."""
        return [{"budget_ms": b, "predicted_ms": r.predicted_latency_ms, "score": r.score, "flops": r.flops,
                 "params": r.params, "structure": str(r.best)} for b, r in zip(self.budgets_ms, self.results)]

    def table(self) -> str:
        lines = [f"{'budget ms':>9}  {'predicted ms':>12}  {'score':>12}  {'MFLOPs':>8}  {'params':>9}  structure"]
        for row in self.rows():
            lines.append(f"{row['budget_ms']:>9g}  {row['predicted_ms']:>12.3f}  {row['score']:>12.6g}  "
                         f"{row['flops'] / 1e6:>8.1f}  {row['params']:>9,d}  {row['structure']}")
        return "\n".join(lines)

    def figure(self):
        """Score against predicted latency, one point per budget (matplotlib Figure)."""
        from .plots import points_figure

        lat = self.results[0].latency
        return points_figure([r.predicted_latency_ms for r in self.results], [r.score for r in self.results],
                             [f"{b:g} ms" for b in self.budgets_ms],
                             title=f"best backbone per latency budget ({lat.get('of')}, {lat.get('runtime')}, "
                                   f"{lat.get('device_name')})",
                             xlabel=f"predicted latency, ms ({lat['size'][0]}x{lat['size'][1]})", ylabel="score")

    def write(self, out: str) -> str:
        """One folder per budget (``<budget>ms/``, the files of ``pyddsar search``) plus summary.csv,
        summary.txt and family.png in `out`."""
        from .plots import save_png
        from .search_files import write_search_outputs

        os.makedirs(out, exist_ok=True)
        for b, r in zip(self.budgets_ms, self.results):
            folder = os.path.join(out, budget_folder(b))
            os.makedirs(folder, exist_ok=True)
            write_search_outputs(r, folder)
        csv = ["budget_ms,predicted_ms,score,flops,params,structure"]
        csv += [f"{r['budget_ms']!r},{r['predicted_ms']!r},{r['score']!r},{r['flops']},{r['params']},{r['structure']}"
                for r in self.rows()]
        write_text(os.path.join(out, "summary.csv"), "\n".join(csv) + "\n")
        write_text(os.path.join(out, "summary.txt"), self.table() + "\n")
        save_png(self.figure(), os.path.join(out, "family.png"))
        return out


def budget_folder(ms: float) -> str:
    return f"{ms:g}ms"


def search_family(budgets_latency_ms: Sequence[float], latency_table, on_result: Optional[Callable] = None,
                  **search_kwargs) -> SearchFamily:
    """The best backbone for each latency budget: :func:`pyddsar.search` once per budget with the
    same table and keywords (``budget=None`` by default: the latency budget alone, with the FLOPs
    cap of the table). ``on_result(i, n, budget_ms, result)`` after each budget."""
    if isinstance(budgets_latency_ms, (str, bytes)) or not hasattr(budgets_latency_ms, "__iter__"):
        raise ValueError(f"budgets_latency_ms must be a list of milliseconds, got {budgets_latency_ms!r}")
    budgets = tuple(budgets_latency_ms)
    if not budgets:
        raise ValueError("budgets_latency_ms is empty")
    for i, b in enumerate(budgets):
        real(b, f"budgets_latency_ms[{i}]", low=0, low_open=True)
    if len(set(budgets)) != len(budgets):
        raise ValueError(f"budgets_latency_ms repeats a budget: {list(budgets)}")
    for k in ("budget_latency_ms", "checkpoint", "resume"):
        if k in search_kwargs:
            raise ValueError(f"search_family sets {k} itself")
    search_kwargs.setdefault("budget", None)
    from .latency import load_latency_table

    table = load_latency_table(latency_table)
    results = []
    for i, b in enumerate(sorted(budgets)):
        results.append(search(budget_latency_ms=float(b), latency_table=table, **search_kwargs))
        if on_result is not None:
            on_result(i + 1, len(budgets), b, results[-1])
    return SearchFamily(tuple(float(b) for b in sorted(budgets)), tuple(results))
