"""The files a search writes into its output folder (``pyddsar search --out``, :func:`pyddsar.search_family`)."""

from __future__ import annotations

import os

from ._atomic import write_text

OUTPUTS = ("best.json", "best_structure.txt", "best_table.txt", "history.csv", "history.png", "checkpoint.json")


def write_search_outputs(result, out: str) -> None:
    """best.json, best_structure.txt, best_table.txt, history.csv, history.png and score_stages.png
    of a :class:`~pyddsar.search.SearchResult` into the folder `out` (each written atomically)."""
    from .plots import write_line_plot

    write_text(os.path.join(out, "best.json"), result.to_json() + "\n")
    write_text(os.path.join(out, "best_structure.txt"), str(result.best) + "\n")
    table = [result.best.to_table(), ""]
    table.append(f"FLOPs at 640x480: {result.flops / 1e6:.3f} M (budget {result.budget_flops / 1e6:.3f} M)")
    check = result.budget_check
    if check.get("check") == "release":
        table.append(f"budget check: the release's, {check['flops'] / 1e6:.3f} M at 224x224 in its counting")
    table.append(f"params: {result.params:,d}")
    if result.predicted_latency_ms is not None:
        lat = result.latency
        table.append(f"predicted latency ({lat.get('of')}, {lat.get('runtime')} on {lat.get('device_name')}, "
                     f"{lat.get('threads')} threads, {lat['size'][0]}x{lat['size'][1]}): {result.predicted_latency_ms:.3f} ms "
                     f"(budget {result.budget_latency_ms:g} ms)")
    table.append(f"score: {result.score:.10g}")
    table.append("constraints: " + ", ".join(f"{k}={v}" for k, v in result.constraints.to_dict().items() if v not in (None, False)))
    if result.report is not None:
        table += ["", str(result.report)]
    write_text(os.path.join(out, "best_table.txt"), "\n".join(table) + "\n")
    rows = ["iteration,best,mean"] + [f"{i},{b!r},{m!r}" for i, b, m in result.history]
    write_text(os.path.join(out, "history.csv"), "\n".join(rows) + "\n")
    xs = [h[0] for h in result.history]
    write_line_plot(
        os.path.join(out, "history.png"),
        xs,
        {"best": [h[1] for h in result.history], "mean": [h[2] for h in result.history]},
        title=f"DDSAR search, budget {result.budget_flops / 1e6:.0f} MFLOPs, space {result.space}, seed {result.seed}",
        xlabel="iteration",
        ylabel="score",
    )
    if result.report is not None:
        result.report.write_png(os.path.join(out, "score_stages.png"))
