"""`pyddsar search`: the evolutionary backbone search from the command line (the README's main job).

Writes into --out: best.json (SearchResult.to_json), best_structure.txt, best_table.txt (the paper
style table and the score report), history.csv, history.png (best and mean score over iterations)
and checkpoint.json (the full search state; `--resume` continues from it). Ctrl-C saves the best
so far and exits with status 130.
"""

from __future__ import annotations

import os
import sys
import time


class ProgressBar:
    """One line on stderr, redrawn at most every 0.1 s: bar, iterations, best score, rate."""

    def __init__(self, stream=None, enabled=True, width=30):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self._last = 0.0

    def __call__(self, done: int, total: int, best: float, rate: float) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        frac = done / total if total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done:>{len(str(total))}}/{total}  best {best:.6g}  {rate:,.0f} it/s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def add_parser(sub, lambdas_arg, resolution_arg) -> None:
    s = sub.add_parser(
        "search",
        help="evolutionary backbone search under a FLOPs budget (DamoFD Algorithm 1); no data or GPU needed",
    )
    s.add_argument("--budget", default="0.5g", help="0.5g, 2.5g, 10g, 34g, or MACs at 640x480 (e.g. 403e6)")
    s.add_argument("--space", default=None, help="mb or res-btn (default: the budget's)")
    s.add_argument("--out", default="results", help="output folder (default: results/)")
    s.add_argument("--iterations", type=int, default=96000)
    s.add_argument("--population", type=int, default=256)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--restarts", type=int, default=1, help="independent searches (seeds seed..seed+N-1) on threads")
    s.add_argument("--variant", choices=["paper", "damofd-release"], default="paper")
    s.add_argument("--alpha", type=float, default=None, help="weight of FS (default: the variant's)")
    s.add_argument("--lambdas", type=lambdas_arg, default=None, help="'widerface' or five numbers summing to 1")
    s.add_argument("--resolution", type=resolution_arg, default=(224, 224), help="score resolution WIDTHxHEIGHT")
    s.add_argument("--params-budget", type=int, default=None, help="optional parameter budget")
    s.add_argument("--max-layers", type=int, default=None, help="override the space's total-layer limit")
    s.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.json")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--json", action="store_true", help="print best.json to stdout")
    s.set_defaults(func=run)


def _budget(text: str):
    from .search import BUDGETS

    if text.lower() in BUDGETS:
        return text.lower()
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"budget must be {', '.join(BUDGETS)} or a number of MACs at 640x480, got {text!r}") from None


def write_outputs(result, out: str) -> None:
    from .plot_png import write_line_plot
    from ._atomic import write_text

    write_text(os.path.join(out, "best.json"), result.to_json() + "\n")
    write_text(os.path.join(out, "best_structure.txt"), str(result.best) + "\n")
    table = [result.best.to_table(), ""]
    table.append(f"FLOPs at 640x480: {result.flops / 1e6:.3f} M (budget {result.budget_flops / 1e6:.3f} M)")
    table.append(f"params: {result.params:,d}")
    table.append(f"score: {result.score:.10g}")
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


def run(args) -> int:
    from .search import search

    os.makedirs(args.out, exist_ok=True)
    checkpoint = os.path.join(args.out, "checkpoint.json")
    progress = ProgressBar(enabled=not args.quiet)
    result = search(
        budget=_budget(args.budget),
        space=args.space,
        iterations=args.iterations,
        population=args.population,
        seed=args.seed,
        variant=args.variant,
        alpha=args.alpha,
        lambdas=args.lambdas,
        resolution=args.resolution,
        params_budget=args.params_budget,
        max_layers=args.max_layers,
        restarts=args.restarts,
        progress=progress,
        checkpoint=checkpoint,
        resume=args.resume,
    )
    write_outputs(result, args.out)
    if args.json:
        print(result.to_json())
    else:
        print(f"best: {result.best}")
        print(f"score {result.score:.10g}  FLOPs {result.flops / 1e6:.3f} M (budget {result.budget_flops / 1e6:.0f} M)  "
              f"params {result.params:,d}  {result.iterations} iterations in {result.elapsed_s:.2f} s")
        print(f"wrote {os.path.join(args.out, 'best.json')}, best_structure.txt, best_table.txt, history.csv, "
              "history.png, checkpoint.json")
    if result.interrupted:
        print(f"interrupted at iteration {result.iterations}: best so far saved; continue with --resume",
              file=sys.stderr)
        return 130
    return 0
