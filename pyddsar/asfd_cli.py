"""`pyddsar asfd ...`: the ASFD searches and baseline on a WIDER-format folder (SPEC section 6).

* ``search-neck``: bi-level AutoFAE search; writes OUT/autofae.json (spec + description),
  OUT/autofae.txt, OUT/autofae.pt (derived neck weights), OUT/checkpoint.pt, OUT/history.jsonl.
* ``scale``: supernet training + genetic search under a latency budget; writes OUT/genes.json,
  OUT/supernet.pt, OUT/subnet.pt.
* ``baseline``: train and evaluate the RetinaNet-style ``asfd-baseline``; writes OUT/baseline.pt and
  OUT/result.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _int_list(text: str):
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    return values


def _wxh(text: str):
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}")
    return int(parts[0]), int(parts[1])


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def add_parser(sub) -> None:
    a = sub.add_parser("asfd", help="ASFD: AutoFAE neck search, supernet scaling, RetinaNet-style baseline")
    asub = a.add_subparsers(dest="asfd_command")

    n = asub.add_parser("search-neck", help="bi-level AutoFAE neck search (SGD weights, Adam architecture)")
    n.add_argument("--data", required=True, help="dataset folder (WIDER layout or `pyddsar data synthetic` output)")
    n.add_argument("--out", default="runs/asfd-neck")
    n.add_argument("--epochs", type=int, default=10)
    n.add_argument("--size", type=int, default=256, help="square training crop side")
    n.add_argument("--placement", choices=["between", "before", "after", "none"], default="between",
                   help="where AutoFE goes relative to the top-down / bottom-up AutoFA cells")
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("--backbone", default="resnet18", choices=["resnet18", "resnet34", "resnet50"])
    n.add_argument("--base-width", type=int, default=64, help="ResNet stem width (64 standard)")
    n.add_argument("--channels", type=int, default=64, help="neck / head width")
    n.add_argument("--head-convs", type=int, default=2)
    n.add_argument("--batch", type=int, default=4)
    n.add_argument("--lr", type=float, default=0.01, help="SGD learning rate of the network weights")
    n.add_argument("--arch-lr", type=float, default=0.01, help="Adam learning rate of the architecture")
    n.add_argument("--box-loss", choices=["smooth_l1", "giou"], default="smooth_l1")
    n.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in all")
    n.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    n.add_argument("--quiet", action="store_true")
    n.set_defaults(func=_run_search_neck)

    s = asub.add_parser("scale", help="supernet training + genetic search under a latency budget")
    s.add_argument("--data", required=True)
    s.add_argument("--latency-ms", type=float, required=True, help="latency budget X on this device (ms)")
    s.add_argument("--out", default="runs/asfd-scale")
    s.add_argument("--population", type=int, default=50)
    s.add_argument("--iterations", type=int, default=50)
    s.add_argument("--top-k", type=int, default=10)
    s.add_argument("--supernet-steps", type=int, default=1000)
    s.add_argument("--neck", default=None, help="autofae.json / autofae.pt from `pyddsar asfd search-neck`")
    s.add_argument("--backbones", default="resnet18,resnet34,resnet50")
    s.add_argument("--module-counts", type=_int_list, default=(1, 2, 3))
    s.add_argument("--head-convs", type=_int_list, default=(1, 2, 3, 4))
    s.add_argument("--channels", type=_int_list, default=(32, 48, 64, 96, 128))
    s.add_argument("--base-width", type=int, default=64)
    s.add_argument("--size", type=int, default=256, help="training crop / mini-validation letterbox side")
    s.add_argument("--latency-resolution", type=_wxh, default=(640, 480), help="WIDTHxHEIGHT of the latency probe")
    s.add_argument("--latency-runs", type=int, default=5)
    s.add_argument("--batch", type=int, default=4)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_run_scale)

    b = asub.add_parser("baseline", help="train and evaluate the RetinaNet-style asfd-baseline")
    b.add_argument("--data", required=True)
    b.add_argument("--out", default="runs/asfd-baseline")
    b.add_argument("--backbone", default="resnet18", choices=["resnet18", "resnet34", "resnet50"])
    b.add_argument("--backbone-weights", default=None, help="user ResNet weights (state dict) to start from")
    b.add_argument("--neck", default=None, help="autofae.pt from search-neck instead of the FPN")
    b.add_argument("--epochs", type=int, default=10)
    b.add_argument("--size", type=int, default=256, help="training crop side")
    b.add_argument("--eval-size", type=int, default=640, help="letterbox side at evaluation")
    b.add_argument("--channels", type=int, default=256)
    b.add_argument("--head-convs", type=int, default=4)
    b.add_argument("--base-width", type=int, default=64)
    b.add_argument("--batch", type=int, default=4)
    b.add_argument("--lr", type=float, default=0.01)
    b.add_argument("--box-loss", choices=["smooth_l1", "giou"], default="smooth_l1")
    b.add_argument("--max-steps", type=int, default=None)
    b.add_argument("--gt", default=None, help="folder with the WIDER .mat files (default DATA/ground_truth)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=_run_baseline)
    a.set_defaults(func=lambda args: (a.print_help(), 0)[1])


def _logger(args):
    return (lambda msg: None) if args.quiet else (lambda msg: _err(msg))


def _run_search_neck(args) -> int:
    from .asfd.neck_search import NeckSearchConfig, search_neck

    cfg = NeckSearchConfig(
        data=args.data, out=args.out, epochs=args.epochs, size=args.size, placement=args.placement, seed=args.seed,
        backbone=args.backbone, base_width=args.base_width, channels=args.channels, head_convs=args.head_convs,
        batch=args.batch, lr=args.lr, arch_lr=args.arch_lr, box_loss=args.box_loss, max_steps=args.max_steps,
        resume=args.resume,
    )
    summary = search_neck(cfg, log=_logger(args))
    print(summary["description"])
    print(f"mini-validation AP of the derived model: {summary['minival_ap_derived']:.4f}")
    print(f"saved: {os.path.join(args.out, 'autofae.json')}, autofae.txt, autofae.pt")
    return 0


def _run_scale(args) -> int:
    from .asfd.scale import ScaleConfig, scale_search

    cfg = ScaleConfig(
        data=args.data, latency_ms=args.latency_ms, out=args.out, population=args.population,
        iterations=args.iterations, top_k=args.top_k, supernet_steps=args.supernet_steps, neck=args.neck,
        backbones=tuple(b.strip() for b in args.backbones.split(",") if b.strip()),
        module_counts=args.module_counts, head_convs=args.head_convs, channels=args.channels,
        base_width=args.base_width, size=args.size, latency_resolution=args.latency_resolution,
        latency_runs=args.latency_runs, batch=args.batch, seed=args.seed,
    )
    summary = scale_search(cfg, log=_logger(args))
    c = summary["chosen"]
    print(f"chosen path: {c['description']}")
    print(json.dumps(c["genes"]))
    print(f"latency {c['latency_ms']:.2f} ms at {cfg.latency_resolution[0]}x{cfg.latency_resolution[1]} "
          f"(budget {cfg.latency_ms} ms), mini-val AP {c['minival_ap']:.4f}, "
          f"{c['flops'] / 1e9:.3f} GFLOPs, {c['params'] / 1e6:.3f} M params")
    print(f"saved: {os.path.join(args.out, 'genes.json')}")
    return 0


def _run_baseline(args) -> int:
    import math

    from .asfd.retinanet import build_asfd_baseline
    from ._atomic import torch_save
    from .asfd.train import evaluate_asfd, load_train_dataset, train_asfd

    for name in ("epochs", "batch", "size", "eval_size", "channels", "base_width"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be positive")
    dataset = load_train_dataset(args.data, args.size, args.seed)
    gt = args.gt or os.path.join(args.data, "ground_truth")
    if not os.path.isdir(gt):
        raise ValueError(f"no ground-truth folder at {gt}; give --gt")
    neck = "fpn"
    if args.neck:
        from .asfd.neck_search import load_derived_autofae

        neck = load_derived_autofae(args.neck)
        if neck.channels != args.channels:
            raise ValueError(f"--neck has width {neck.channels}; pass --channels {neck.channels}")
    model = build_asfd_baseline(args.backbone, neck=neck, channels=args.channels, head_convs=args.head_convs,
                                base_width=args.base_width)
    if args.backbone_weights:
        from .asfd.resnet import load_backbone_weights

        load_backbone_weights(model.backbone, args.backbone_weights)
    steps = args.epochs * math.ceil(len(dataset) / args.batch)
    if args.max_steps:
        steps = min(steps, args.max_steps)
    log = _logger(args)
    train_asfd(model, dataset, steps, batch=args.batch, lr=args.lr, warmup_steps=min(100, steps // 5),
               box_loss=args.box_loss, seed=args.seed,
               log=lambda r: log(f"step {r['step']}/{steps} loss {r['loss']:.4f}") if r["step"] % 10 == 0 else None)
    os.makedirs(args.out, exist_ok=True)
    torch_save({"format": "pyddsar-asfd-baseline", "args": vars(args) | {"func": None},
                 "state_dict": model.state_dict()}, os.path.join(args.out, "baseline.pt"))
    res = evaluate_asfd(model, args.data, "val", args.eval_size, gt)
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump({"steps": steps, **res.to_dict()}, f, indent=1)
    print(res)
    return 0
