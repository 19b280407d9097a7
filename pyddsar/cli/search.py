"""`pyddsar search`: the evolutionary backbone search from the command line (the README's main job).

Writes into --out: best.json (SearchResult.to_json), best_structure.txt, best_table.txt (the paper
style table and the score report), history.csv, history.png (best and mean score over iterations)
and checkpoint.json (the full search state; `--resume` continues from it). Ctrl-C saves the best
so far and exits with status 130.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import _args


class ProgressBar:
    """The search's ``progress(done, total, best, rate)`` callback as a tqdm bar on stderr
    (iterations, best score so far, rate)."""

    def __init__(self, stream=None, enabled=True):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.bar = None

    def __call__(self, done: int, total: int, best: float, rate: float) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=0, unit="it", desc="search", file=self.stream, dynamic_ncols=True)
        self.bar.set_postfix_str("best " + ("-" if best is None else f"{best:.6g}"), refresh=False)
        self.bar.update(max(0, done - self.bar.n))
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


from ..search_files import OUTPUTS, write_search_outputs


def _float_list(text: str) -> tuple:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds such as 25 or 20,30,40, got {text!r}") from None


def _int_list(text: str) -> tuple:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 16,32,48,64,96, got {text!r}") from None


def add_parser(sub) -> None:
    from ..search_space import BUDGET_CHECKS, SPACES

    s = sub.add_parser(
        "search",
        help="evolutionary backbone search under a FLOPs budget (DamoFD Algorithm 1); no data or GPU needed",
        description="DamoFD's evolutionary backbone search. The defaults (docs/search.md) search the release's "
        "spaces with widths that never decrease from stage to stage.",
    )
    s.add_argument("--budget", default=None,
                   help="0.5g, 2.5g, 10g, 34g (the published budgets), MACs at 640x480 such as 403m, 1g, 2.1e9, or "
                   "'none' (default: 0.5g; with --budget-latency-ms: none, the latency budget alone)")
    s.add_argument("--budget-latency-ms", type=_float_list, default=None, metavar="MS[,MS...]",
                   help="latency budget in ms predicted from --latency-table; several (20,30,40): the best backbone "
                   "for each, one folder per budget in --out with summary.csv and family.png (default: none)")
    s.add_argument("--latency-table", default=None, help="a table of `pyddsar latency-table` measured on this machine")
    s.add_argument("--latency-of", choices=["detector", "backbone"], default=None,
                   help="what the latency budget covers (default: detector when the table has the neck and head)")
    s.add_argument("--allow-foreign-table", action="store_true",
                   help="use a table measured on another device, runtime or thread count (warns)")
    s.add_argument("--space", default=None, choices=list(SPACES),
                   help="search space (default: damofd-mb up to 1G, damofd-res above)")
    s.add_argument("--budget-check", default="pyddsar", choices=BUDGET_CHECKS,
                   help="pyddsar: MACs at 640x480; release: the release's numbers and FLOPs counting at 224x224 "
                   "(default: pyddsar)")
    s.add_argument("--out", default="results", help="output folder (default: results/)")
    s.add_argument("--force", action="store_true", help="overwrite the outputs of an earlier search in --out")
    s.add_argument("--iterations", type=int, default=96000, help="default: 96000 (with --resume: continue to this many)")
    s.add_argument("--population", type=int, default=256, help="default: 256 (the release used 512)")
    s.add_argument("--seed", type=int, default=0, help="default: 0")
    s.add_argument("--restarts", type=int, default=1, help="independent searches (seeds seed..seed+N-1) on threads (default: 1)")
    s.add_argument("--variant", choices=["paper", "damofd-release"], default=None,
                   help="score variant (default: damofd-release in damofd-mb, paper elsewhere)")
    s.add_argument("--alpha", type=float, default=None, help="weight of FS (default: the variant's)")
    s.add_argument("--lambdas", type=_args.lambdas, default=None,
                   help="'widerface' or five numbers summing to 1 (default: the variant's)")
    _args.add_size(s, (224, 224), "score input", resolution_alias=True)
    s.add_argument("--min-widths", type=_int_list, default=None, metavar="S,C2,C3,C4,C5",
                   help="minimum out channels of the stem and the four stages (default: none)")
    s.add_argument("--non-decreasing-widths", action=argparse.BooleanOptionalAction, default=True,
                   help="out channels never decrease from the stem to C5 (default: on)")
    s.add_argument("--max-width-ratio", type=float, default=None,
                   help="out channels of C3..C5 at most this times the previous stage's (default: 2.5; 0: no limit)")
    s.add_argument("--budget-params", "--params-budget", dest="budget_params", type=int, default=None,
                   help="at most this many parameters (default: none)")
    s.add_argument("--max-layers", type=int, default=None, help="override the space's total-layer limit")
    s.add_argument("--max-block-layers", type=int, default=None, help="override the space's per-stage layer limit")
    s.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.json")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--json", action="store_true", help="print best.json to stdout")
    s.set_defaults(func=run)


def _run_family(args, kwargs, latency, progress) -> int:
    from ..search_family import budget_folder, search_family

    if args.resume:
        raise ValueError("--resume continues one search; a family of budgets is searched anew")
    if not args.latency_table:
        raise ValueError("--budget-latency-ms needs --latency-table")
    fam = search_family(list(args.budget_latency_ms), args.latency_table, **kwargs, **latency)
    progress.close()
    fam.write(args.out)
    if args.json:
        print(json.dumps(fam.rows(), indent=2))
    else:
        print(fam.table())
        print(f"wrote {', '.join(budget_folder(b) for b in fam.budgets_ms)} (each as `pyddsar search` writes), "
              f"summary.csv, summary.txt and family.png in {args.out}")
    return 0


def _check_out(out: str, force: bool, resume: bool) -> None:
    """Refuse to overwrite an earlier search's outputs unless asked (--force) or continuing (--resume)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file, not a folder")
    existing = [name for name in OUTPUTS if os.path.exists(os.path.join(out, name))]
    if not existing or resume:
        return
    if not force:
        raise ValueError(f"{out} already holds {', '.join(existing)} of an earlier search; pass --force to overwrite "
                         "them, --resume to continue that search, or another --out")
    print(f"overwriting {', '.join(os.path.join(out, n) for n in existing)}", file=sys.stderr)


def run(args) -> int:
    from ..search import search

    from .._atomic import remove_stale_temporaries

    _check_out(args.out, args.force, args.resume)
    os.makedirs(args.out, exist_ok=True)
    remove_stale_temporaries(args.out)  # left by a search killed while writing
    checkpoint = os.path.join(args.out, "checkpoint.json")
    progress = ProgressBar(enabled=not args.quiet)
    budget = args.budget
    if budget is None:
        budget = None if args.budget_latency_ms else "0.5g"
    elif budget.strip().lower() == "none":
        budget = None
    kwargs = dict(
        budget=budget,
        space=args.space,
        iterations=args.iterations,
        population=args.population,
        seed=args.seed,
        variant=args.variant,
        alpha=args.alpha,
        lambdas=args.lambdas,
        resolution=args.size,
        min_widths=args.min_widths,
        non_decreasing_widths=args.non_decreasing_widths,
        max_width_ratio=args.max_width_ratio,
        budget_params=args.budget_params,
        max_layers=args.max_layers,
        max_block_layers=args.max_block_layers,
        budget_check=args.budget_check,
        restarts=args.restarts,
        progress=progress,
    )
    latency = dict(latency_of=args.latency_of, allow_foreign_table=args.allow_foreign_table)
    if args.budget_latency_ms is not None and len(args.budget_latency_ms) > 1:
        return _run_family(args, kwargs, latency, progress)
    if args.budget_latency_ms is not None:
        latency.update(budget_latency_ms=args.budget_latency_ms[0], latency_table=args.latency_table)
    elif args.latency_table:
        raise ValueError("--latency-table needs --budget-latency-ms")
    result = search(**kwargs, **latency, checkpoint=checkpoint, resume=args.resume)
    progress.close()
    write_search_outputs(result, args.out)
    if args.json:
        print(result.to_json())
    else:
        c = result.counters
        print(f"best: {result.best}")
        print(f"score {result.score:.10g}  FLOPs {result.flops / 1e6:.3f} M (budget {result.budget_flops / 1e6:.0f} M)  "
              f"params {result.params:,d}  {result.iterations} iterations in {result.elapsed_s:.2f} s")
        if result.predicted_latency_ms is not None:
            print(f"predicted latency ({result.latency['of']}): {result.predicted_latency_ms:.3f} ms "
                  f"(budget {result.budget_latency_ms:g} ms)")
        print(f"children: {c['accepted']} accepted, {c['over_budget']} over budget, {c['outside_space']} over the "
              f"layer limits, {c['constrained']} against the constraints, {c['unscorable']} unscorable"
              + (f", {c['untabled']} not in the latency table (first: {result.settings['first_untabled']})"
                 if c.get("untabled") else ""))
        print(f"wrote {os.path.join(args.out, 'best.json')}, best_structure.txt, best_table.txt, history.csv, "
              "history.png, checkpoint.json")
    if result.interrupted:
        print(f"interrupted at iteration {result.iterations}: best so far saved; continue with --resume",
              file=sys.stderr)
        return 130
    return 0
