"""The `pyddsar` command line."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__


def _shape(text: str) -> tuple:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected HxWxD such as 5x5x1, got {text!r}")
    return tuple(int(p) for p in parts)


def _kernel(text: str):
    parts = text.lower().split("x")
    if not all(p.strip().isdigit() for p in parts) or len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected K or KHxKW such as 3 or 3x2, got {text!r}")
    return int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1]))


def _cmd_regions(args) -> int:
    from .regions import linear_regions, log_linear_regions

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


def _cmd_arch(args) -> int:
    from .arch import Arch, presets

    arch = presets[args.preset] if args.preset else Arch.parse(args.text)
    res = tuple(args.resolution)
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


def _resolution_wxh(text: str) -> tuple:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 224x224, got {text!r}")
    return int(parts[0]), int(parts[1])


def _lambdas_arg(text: str):
    if text.strip().lower() == "widerface":
        return "widerface"
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'widerface' or five comma-separated numbers, got {text!r}") from None
    return values


def _cmd_score(args) -> int:
    from .arch import Arch, presets
    from .score import score_report

    if args.preset:
        if args.preset not in presets:
            raise ValueError(f"unknown preset {args.preset!r}; use one of {', '.join(presets)}")
        arch = presets[args.preset]
    else:
        arch = Arch.parse(args.text)
    report = score_report(
        arch,
        variant=args.variant,
        alpha=args.alpha,
        lambdas=args.lambdas,
        resolution=args.resolution,
        fs_probe=args.probe,
    )
    print(report.to_json() if args.json else report)
    return 0


def _cmd_lambdas(args) -> int:
    from .data.widerface_gt import read_gt
    from .stage_weights import stage_weights

    images = read_gt(args.gt, args.format)
    sizes = [g.image_size for g in images]
    result = stage_weights([g.boxes for g in images], sizes, inside=args.inside)
    if args.json:
        out = result.to_dict()
        out.update(gt=args.gt, inside=args.inside)
        print(json.dumps(out))
    else:
        print(result)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyddsar", description="Lightweight face detector design (DDSAR / DamoFD, ASFD).")
    p.add_argument("--version", action="version", version=f"pyddsar {__version__}")
    sub = p.add_subparsers(dest="command")

    r = sub.add_parser("regions", help="exact number of linear regions of a one-layer ReLU CNN (Theorem 1)")
    r.add_argument("--input", type=_shape, required=True, help="input HxWxD, e.g. 5x5x1")
    r.add_argument("--kernel", type=_kernel, required=True, help="kernel K or KHxKW")
    r.add_argument("--stride", type=int, default=1)
    r.add_argument("--filters", type=int, required=True, help="number of filters d1")
    r.add_argument("--log-only", action="store_true", help="only the natural log (no big integer)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_cmd_regions)

    a = sub.add_parser("arch", help="parse an architecture and print its table, FLOPs and parameters")
    g = a.add_mutually_exclusive_group(required=True)
    g.add_argument("text", nargs="?", help="structure string, table or JSON")
    g.add_argument("--preset", help="ddsar-0.5g, ddsar-2.5g, ddsar-10g or ddsar-34g")
    a.add_argument("--resolution", type=int, nargs=2, default=(640, 480), metavar=("W", "H"))
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=_cmd_arch)

    sc = sub.add_parser("score", help="DDSAR-Score of an architecture, per stage (paper or damofd-release variant)")
    g = sc.add_mutually_exclusive_group(required=True)
    g.add_argument("text", nargs="?", help="structure string, table or JSON")
    g.add_argument("--preset", help="ddsar-0.5g, ddsar-2.5g, ddsar-10g or ddsar-34g")
    sc.add_argument("--variant", choices=["paper", "damofd-release"], default="paper")
    sc.add_argument("--alpha", type=float, default=None, help="weight of FS (default: 0.25 paper, 0.005 release)")
    sc.add_argument("--lambdas", type=_lambdas_arg, default=None, help="'widerface' or five numbers a,b,c,d,e summing to 1")
    sc.add_argument("--resolution", type=_resolution_wxh, default=(224, 224), help="WIDTHxHEIGHT (default 224x224)")
    sc.add_argument("--probe", choices=["default", "literal"], default="default", help="FS probe of the paper variant")
    sc.add_argument("--json", action="store_true")
    sc.set_defaults(func=_cmd_score)

    from . import search_cli, train_cli

    train_cli.add_parser(sub)

    search_cli.add_parser(sub, _lambdas_arg, _resolution_wxh)
    from . import detect_cli
    detect_cli.add_parser(sub)
    from . import bench_cli
    bench_cli.add_parser(sub)

    lam = sub.add_parser("lambdas", help="stage weights lambda_1..lambda_5 from WIDER-style ground truth (ATSS)")
    lam.add_argument("--gt", required=True, help="wider_face_val.mat, wider_face_*_bbx_gt.txt or label.txt")
    lam.add_argument("--format", choices=["auto", "mat", "txt", "label"], default="auto")
    lam.add_argument("--inside", choices=["scrfd", "mmdet"], default="scrfd", help="ATSS inside test")
    lam.add_argument("--json", action="store_true")
    lam.set_defaults(func=_cmd_lambdas)

    from . import asfd_cli, data_cli, eval_cli

    data_cli.add_parser(sub)
    eval_cli.add_parser(sub)
    asfd_cli.add_parser(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"pyddsar {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"pyddsar {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
