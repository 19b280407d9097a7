"""`pyddsar arch`: parse an architecture and print its table, FLOPs and parameters."""

from __future__ import annotations

import json

from . import _args


def run(args) -> int:
    arch = _args.arch_of(args)
    res = tuple(args.size)
    if args.json:
        out = arch.to_dict()
        out.update(structure=str(arch), flops=arch.flops(res), params=arch.params(), resolution=list(res))
        print(json.dumps(out))
        return 0
    print(str(arch))
    print(arch.to_table())
    for row in arch.flops_breakdown(res):
        print(f"  block {row['block']}: {row['flops'] / 1e6:10.3f} MFLOPs  {row['params']:>10,d} params")
    print(f"total: {arch.flops(res) / 1e6:.3f} MFLOPs at {res[0]}x{res[1]}, {arch.params():,d} params")
    return 0


def add_parser(sub) -> None:
    a = sub.add_parser("arch", help="parse an architecture and print its table, FLOPs and parameters")
    _args.add_arch_input(a)
    _args.add_size(a, (640, 480), "input", resolution_alias=True)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=run)
