"""`pyddsar regions`: the exact number of linear regions of a one-layer ReLU CNN (Theorem 1), or
Theorem 2's lower bound for a stack of layers."""

from __future__ import annotations

import json

from . import _args


def run(args) -> int:
    from ..regions import linear_regions, linear_regions_lower_bound, log_linear_regions

    if args.lower_bound:  # Theorem 2 for a stack of layers
        bound = linear_regions_lower_bound(args.lower_bound, args.input, exact=not args.log_only)
        if args.json:
            print(json.dumps({"lower_bound": bound.value, "log": bound.log, "layers": [list(x) for x in args.lower_bound]}))
        else:
            if bound.value is not None:
                print(f"lower bound (Theorem 2): {bound.value}")
            print(f"ln(lower bound): {bound.log:.6f}")
        return 0
    if args.kernel is None or args.filters is None:
        raise ValueError("give --kernel and --filters (one layer), or --lower-bound F,K,S ... (a stack of layers)")
    if args.log_only:
        value, log = None, log_linear_regions(args.input, args.kernel, args.stride, args.filters)
    else:
        value = linear_regions(args.input, args.kernel, args.stride, args.filters)
        log = log_linear_regions(args.input, args.kernel, args.stride, args.filters)
    h0, w0, _ = args.input
    k = args.kernel if isinstance(args.kernel, tuple) else (args.kernel, args.kernel)
    grid = ((h0 - k[0]) // args.stride + 1, (w0 - k[1]) // args.stride + 1)
    if args.json:
        print(json.dumps({"regions": value, "log": log, "output_grid": list(grid)}))
    else:
        print(f"output grid: {grid[0]}x{grid[1]}")
        if value is not None:
            print(f"linear regions: {value}")
        print(f"ln(regions): {log:.6f}")
    return 0


def add_parser(sub) -> None:
    r = sub.add_parser("regions", help="exact number of linear regions of a one-layer ReLU CNN (Theorem 1)")
    r.add_argument("--input", type=_args.shape_hwd, required=True, help="input HxWxD, e.g. 5x5x1")
    r.add_argument("--kernel", type=_args.kernel, default=None, help="kernel K or KHxKW")
    r.add_argument("--stride", type=int, default=1, help="default: 1")
    r.add_argument("--filters", type=int, default=None, help="number of filters d1")
    r.add_argument("--log-only", action="store_true",
                   help="only the natural log, counted in log space (no big integer; for layers too large to print)")
    r.add_argument("--lower-bound", type=_args.layer_spec, nargs="+", default=None, metavar="F,K,S",
                   help="Theorem 2's lower bound for a stack of layers (filters,kernel,stride each) on --input")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=run)
