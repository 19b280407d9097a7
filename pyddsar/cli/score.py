"""`pyddsar score`: the DDSAR-Score of an architecture, per stage."""

from __future__ import annotations

from . import _args


def run(args) -> int:
    from ..score import score_report

    arch = _args.arch_of(args)
    report = score_report(arch, variant=args.variant, alpha=args.alpha, lambdas=args.lambdas,
                          resolution=args.size, fs_probe=args.probe)
    print(report.to_json() if args.json else report)
    return 0


def add_parser(sub) -> None:
    sc = sub.add_parser("score", help="DDSAR-Score of an architecture, per stage (paper or damofd-release variant)")
    _args.add_arch_input(sc)
    sc.add_argument("--variant", choices=["paper", "damofd-release"], default="paper", help="default: paper")
    sc.add_argument("--alpha", type=float, default=None, help="weight of FS (default: 0.25 paper, 0.005 release)")
    sc.add_argument("--lambdas", type=_args.lambdas, default=None,
                    help="'widerface' or five numbers a,b,c,d,e summing to 1 (default: the variant's)")
    _args.add_size(sc, (224, 224), "score input", resolution_alias=True)
    sc.add_argument("--probe", choices=["default", "literal"], default="default",
                    help="FS probe of the paper variant (default: default)")
    sc.add_argument("--json", action="store_true")
    sc.set_defaults(func=run)
