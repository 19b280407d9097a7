"""`pyddsar latency-table`: measure the per-operation latency table of a search space on this machine
(for `pyddsar search --budget-latency-ms`), and check its predictions against measured networks."""

from __future__ import annotations

import json
import sys

from . import _args, _progress


def add_parser(sub) -> None:
    from ..latency import RUNTIMES
    from ..search_space import SPACES

    p = sub.add_parser(
        "latency-table",
        help="measure a search space's per-operation latency table on this device (for latency-budget searches)",
        description="Measures every operation kind the space's backbones contain at each stage resolution on a grid "
        "of channel counts (warm-up, medians), fits scale and offset on whole measured backbones and detectors, "
        "and writes the table as JSON. Tables are cached by device, runtime, threads and settings.",
    )
    p.add_argument("--space", default="damofd-mb", choices=list(SPACES), help="search space (default: damofd-mb)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default: cpu")
    p.add_argument("--runtime", default="torch", choices=list(RUNTIMES), help="default: torch")
    _args.add_size(p, (640, 480), "measured input")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's, all cores)")
    p.add_argument("--max-flops", default=None,
                   help="largest networks to cover, MACs at 640x480 such as 806m (default: twice the space's smallest "
                   "budget preset)")
    p.add_argument("--detector", default="default",
                   help="detector preset whose neck and head are measured (default: the space's DamoFD preset; "
                   "'none': backbone only)")
    p.add_argument("--calibrate", type=int, default=12, help="whole networks measured to fit the table (default: 12)")
    p.add_argument("--check", type=int, default=0, metavar="N",
                   help="after building, compare predicted and measured latency of N other random networks (default: 0)")
    p.add_argument("--table", default=None,
                   help="an existing table to check (with --check) or re-anchor (with --recalibrate) instead of building one")
    p.add_argument("--recalibrate", action="store_true",
                   help="with --table: measure its calibration networks again and write the table re-anchored to the "
                   "machine's speed now to --out (seconds, where a new table takes minutes)")
    p.add_argument("--no-cache", action="store_true", help="measure even if a cached table exists")
    p.add_argument("--out", default="latency_table.json", help="output file (default: latency_table.json)")
    p.add_argument("--json", action="store_true", help="print the check as JSON")
    _progress.add_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..latency import (build_latency_table, check_predictions, error_summary, load_latency_table,
                           recalibrate_latency_table, sample_archs)
    from ..search_space import checked_budget, parse_budget

    if args.recalibrate and not args.table:
        raise ValueError("--recalibrate re-anchors an existing table: give --table FILE")
    if args.table:
        if not args.check and not args.recalibrate:
            raise ValueError("--table checks or re-anchors an existing table: give --check N or --recalibrate")
        table = load_latency_table(args.table)
        if args.recalibrate:
            with _progress.bar("recalibrate", "net", enabled=not args.no_progress) as progress:
                table = recalibrate_latency_table(table, progress=progress)
            table.save(args.out)
            print(f"wrote {args.out}: the machine runs at {table.calibration['speeds'][-1]:.3f}x the time of the last "
                  f"calibration; scale {table.scale:.4f}, offset {table.offset_ms:.3f} ms"
                  + (f", neck and head rest {table.detector['rest_ms']:.3f} ms" if table.detector else ""))
    else:
        max_flops = None
        if args.max_flops is not None:
            max_flops = checked_budget(parse_budget(args.max_flops))
        with _progress.bar("latency table", "op", enabled=not args.no_progress) as progress:
            table = build_latency_table(
                args.space, device=args.device, runtime=args.runtime, size=args.size, threads=args.threads,
                max_flops=max_flops, detector=None if args.detector == "none" else args.detector,
                calibrate=args.calibrate, cache=None if args.no_cache else "default",
                progress=lambda done, total, what: progress(done, total),
            )
        table.save(args.out)
        env = table.environment
        print(f"wrote {args.out}: {len(table.grids)} operation grids, "
              f"{sum(1 for g in table.grids for v in g.ms if v == v)} measured points; {env.runtime} "
              f"{env.runtime_version} on {env.device_name}, {env.threads} threads, {table.size[0]}x{table.size[1]}; "
              f"scale {table.scale:.4f}, offset {table.offset_ms:.3f} ms"
              + (f", neck and head rest {table.detector['rest_ms']:.3f} ms" if table.detector else ""))
    if args.check:
        archs = sample_archs(table.space, args.check, seed=1000 + table.settings.get("seed", 0),
                             max_flops=table.settings.get("max_flops"))
        archs = [a for a in archs if not table.missing(a, detector=table.detector is not None)]
        report = {}
        for of in (["backbone", "detector"] if table.detector else ["backbone"]):
            with _progress.bar(f"check {of}", "net", enabled=not args.no_progress) as progress:
                checks = check_predictions(table, archs, detector=of == "detector", progress=progress)
            report[of] = {"summary": error_summary(checks),
                          "networks": [{"arch": c.arch, "predicted_ms": c.predicted_ms, "measured_ms": c.measured_ms,
                                        "error": c.error, "speed": c.speed, "adjusted_error": c.adjusted_error}
                                       for c in checks]}
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            for of, r in report.items():
                s = r["summary"]
                print(f"{of}: {s['count']} random networks, |error| median {100 * s['median_abs_error']:.1f} %, "
                      f"p90 {100 * s['p90_abs_error']:.1f} %, max {100 * s['max_abs_error']:.1f} %, "
                      f"mean signed {100 * s['mean_error']:+.1f} %"
                      + ("" if s["speed"] is None else
                         f"; the machine at {s['speed']:.2f}x the build's time, at that speed |error| median "
                         f"{100 * s['median_abs_adjusted_error']:.1f} %, p90 {100 * s['p90_abs_adjusted_error']:.1f} %"),
                      file=sys.stdout)
    return 0
