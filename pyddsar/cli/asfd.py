"""`pyddsar asfd ...`: the ASFD searches and baseline on a WIDER-format folder (SPEC section 6).

* ``search-neck``: bi-level AutoFAE search; writes OUT/autofae.json (spec + description),
  OUT/autofae.txt, OUT/autofae.pt (derived neck weights), OUT/model.pt (the derived detector with its
  searched weights, a pyddsar model file), OUT/detector.json, OUT/checkpoint.pt, OUT/history.jsonl.
* ``scale``: supernet training + genetic search under a latency budget; writes OUT/genes.json,
  OUT/supernet.pt, OUT/subnet.pt, OUT/model.pt (the chosen single path) and OUT/detector.json; with
  several budgets a family: OUT/family.json and those files per member in OUT/D0, OUT/D1, ...
* ``baseline``: train (the loop of ``pyddsar train``: checkpoints, ``--resume``, metrics) and evaluate
  the RetinaNet-style ``asfd-baseline`` with any pyddsar backbone; writes OUT/model.pt (a pyddsar model
  file for ``pyddsar detect`` / ``eval``), OUT/detector.json (its config, trainable from scratch with
  ``pyddsar train --model OUT/detector.json``) and OUT/result.json.

Each draws tqdm bars on stderr (cli/_progress.PhasedBar fed by the library's ``progress`` callback),
with its progress lines above them; ``--no-progress`` hides the bars, ``--quiet`` bars and lines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import _progress


def _comma_list(kind, what: str):
    """An argparse type: ``"a,b,c"`` -> a tuple of ``kind`` values."""
    def parse(text: str):
        try:
            return tuple(kind(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None
    return parse


_int_list = _comma_list(int, "integers")
_float_list = _comma_list(float, "numbers")


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
    n.add_argument("--backbone", default="resnet18",
                   help="resnet18|resnet34|resnet50, a ddsar preset (ddsar-2.5g), a search's best.json or a structure")
    n.add_argument("--base-width", type=int, default=64, help="ResNet stem width (64 standard)")
    n.add_argument("--channels", type=int, default=64, help="neck / head width")
    n.add_argument("--head-convs", type=int, default=2)
    n.add_argument("--batch", type=int, default=4)
    n.add_argument("--lr", type=float, default=None,
                   help="SGD learning rate of the network weights (default 0.01 x batch / 16, RetinaNet's scaled)")
    n.add_argument("--arch-lr", type=float, default=0.01, help="Adam learning rate of the architecture")
    n.add_argument("--box-loss", choices=["smooth_l1", "giou"], default="smooth_l1")
    n.add_argument("--second-order", action="store_true",
                   help="DARTS' unrolled architecture gradient (5 passes per architecture step) instead of first-order")
    n.add_argument("--max-steps", type=int, default=None, help="a search of this many steps in all (demos, tests)")
    n.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="write OUT/checkpoint.pt every N steps (default: after every epoch; always on Ctrl-C)")
    n.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt (same settings; ends as an uninterrupted run would)")
    n.add_argument("--device", default="cpu", help="cpu or cuda (latency is measured there)")
    _output_flags(n)
    n.set_defaults(func=_run_search_neck)

    s = asub.add_parser("scale", help="supernet training + genetic search under a latency budget")
    s.add_argument("--data", required=True)
    s.add_argument("--latency-ms", type=_float_list, required=True,
                   help="latency budget X on this device (ms); several (3,5,10) give a family D0, D1, ...")
    s.add_argument("--out", default="runs/asfd-scale")
    s.add_argument("--population", type=int, default=50)
    s.add_argument("--iterations", type=int, default=50)
    s.add_argument("--top-k", type=int, default=10)
    s.add_argument("--supernet-steps", type=int, default=1000)
    s.add_argument("--neck", default=None, help="autofae.json / autofae.pt from `pyddsar asfd search-neck`")
    s.add_argument("--backbones", default="resnet18,resnet34,resnet50",
                   help="comma-separated backbone choices: ResNet names, ddsar presets or best.json files")
    s.add_argument("--module-counts", type=_int_list, default=(1, 2, 3))
    s.add_argument("--head-convs", type=_int_list, default=(1, 2, 3, 4))
    s.add_argument("--channels", type=_int_list, default=(32, 48, 64, 96, 128))
    s.add_argument("--base-width", type=int, default=64)
    s.add_argument("--size", type=int, default=256, help="training crop / mini-validation letterbox side")
    s.add_argument("--latency-resolution", type=_wxh, default=(640, 480), help="WIDTHxHEIGHT of the latency probe")
    s.add_argument("--latency-runs", type=int, default=5)
    s.add_argument("--batch", type=int, default=4)
    s.add_argument("--lr", type=float, default=None,
                   help="SGD learning rate of the supernet (default 0.01 x batch / 16, RetinaNet's scaled)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu", help="cpu or cuda (latency is measured there)")
    _output_flags(s)
    s.set_defaults(func=_run_scale)

    b = asub.add_parser("baseline", help="train (pyddsar train's loop) and evaluate the RetinaNet-style asfd-baseline")
    b.add_argument("--data", required=True)
    b.add_argument("--out", default="runs/asfd-baseline")
    b.add_argument("--backbone", default="resnet18",
                   help="resnet18|resnet34|resnet50, a ddsar preset (ddsar-2.5g), a search's best.json or a structure")
    b.add_argument("--backbone-weights", default=None, help="user backbone weights (state dict) to start from")
    b.add_argument("--neck", default=None,
                   help="autofae.json / autofae.pt of search-neck: its derived AutoFAE (fresh weights) replaces the FPN")
    b.add_argument("--modules", type=int, default=1, help="stacked AutoFAE modules (with --neck)")
    b.add_argument("--init", default=None, help="start from a pyddsar model file (e.g. search-neck's model.pt)")
    b.add_argument("--epochs", type=int, default=10)
    b.add_argument("--size", type=int, default=640, help="training crop side (multiple of 32)")
    b.add_argument("--eval-size", type=int, default=640, help="letterbox side at evaluation (multiple of 32)")
    b.add_argument("--channels", type=int, default=256)
    b.add_argument("--head-convs", type=int, default=4)
    b.add_argument("--base-width", type=int, default=64)
    b.add_argument("--batch", type=int, default=4)
    b.add_argument("--lr", type=float, default=0.01)
    b.add_argument("--box-loss", choices=["smooth_l1", "giou"], default="smooth_l1")
    b.add_argument("--max-steps", type=int, default=None)
    b.add_argument("--gt", default=None, help="folder with the WIDER .mat files (default DATA/ground_truth)")
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    _output_flags(b)
    b.set_defaults(func=_run_baseline)
    a.set_defaults(func=lambda args: (a.print_help(), 0)[1])


def _output_flags(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print neither progress lines nor progress bars")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr (lines still print)")


def _bar(args):
    """The step's tqdm bars on stderr (``progress(done, total, phase=..., **info)``), off with
    ``--no-progress`` / ``--quiet``."""
    return _progress.PhasedBar(enabled=not (args.quiet or args.no_progress))


def _logger(args, bar=None):
    """Progress lines on stderr (above the bar when one is drawn); none with ``--quiet``."""
    if args.quiet:
        return lambda msg: None
    return bar.write if bar is not None else _err


def _run_search_neck(args) -> int:
    from ..asfd.neck_search import NeckSearchConfig, search_neck

    cfg = NeckSearchConfig(
        data=args.data, out=args.out, epochs=args.epochs, size=args.size, placement=args.placement, seed=args.seed,
        backbone=args.backbone, base_width=args.base_width, channels=args.channels, head_convs=args.head_convs,
        batch=args.batch, lr=args.lr, arch_lr=args.arch_lr, box_loss=args.box_loss, max_steps=args.max_steps,
        resume=args.resume, device=args.device, second_order=args.second_order,
        checkpoint_every=args.checkpoint_every,
    )
    with _bar(args) as bar:
        try:
            summary = search_neck(cfg, log=_logger(args, bar), progress=bar)
        except KeyboardInterrupt:
            bar.close()
            _err(f"interrupted: checkpoint saved in {args.out}; continue with --resume")
            return 130
    print(summary["description"])
    print(f"mini-validation AP of the derived model: {summary['minival_ap_derived']:.4f}")
    print(f"saved: {os.path.join(args.out, 'autofae.json')}, autofae.txt, autofae.pt, model.pt, detector.json")
    return 0


def _run_scale(args) -> int:
    from ..asfd.scale import ScaleConfig, scale_search

    cfg = ScaleConfig(
        data=args.data, latency_ms=args.latency_ms, out=args.out, population=args.population,
        iterations=args.iterations, top_k=args.top_k, supernet_steps=args.supernet_steps, neck=args.neck,
        backbones=tuple(b.strip() for b in args.backbones.split(",") if b.strip()),
        module_counts=args.module_counts, head_convs=args.head_convs, channels=args.channels,
        base_width=args.base_width, size=args.size, latency_resolution=args.latency_resolution,
        latency_runs=args.latency_runs, batch=args.batch, lr=args.lr, seed=args.seed, device=args.device,
    )
    with _bar(args) as bar:
        summary = scale_search(cfg, log=_logger(args, bar), progress=bar)
    wxh = f"{cfg.latency_resolution[0]}x{cfg.latency_resolution[1]}"
    if summary["format"] == "pyddsar-asfd-family":
        print(f"family of {len(summary['members'])} (latency at {wxh}, {summary['measured_paths']} paths measured):")
        for m in summary["members"]:
            print(f"  {m['name']}: budget {m['latency_budget_ms']:g} ms  {m['latency_ms']:.2f} ms  "
                  f"mini-val AP {m['minival_ap']:.4f}  {m['flops'] / 1e9:.3f} GFLOPs  {m['params'] / 1e6:.3f} M  "
                  f"{m['description']}")
        print(f"saved: {os.path.join(args.out, 'family.json')}, D0..D{len(summary['members']) - 1}/"
              "(genes.json, model.pt, detector.json)")
        return 0
    c = summary["chosen"]
    print(f"chosen path: {c['description']}")
    print(json.dumps(c["genes"]))
    print(f"latency {c['latency_ms']:.2f} ms at {wxh} (budget {summary['latency_budget_ms']:g} ms), "
          f"mini-val AP {c['minival_ap']:.4f}, {c['flops'] / 1e9:.3f} GFLOPs, {c['params'] / 1e6:.3f} M params")
    print(f"saved: {os.path.join(args.out, 'genes.json')}, model.pt (the chosen subnet), detector.json")
    return 0


def baseline_config(args):
    """The :class:`~pyddsar.asfd.config.ASFDConfig` of ``pyddsar asfd baseline``'s flags."""
    from ..asfd.config import ASFDConfig

    fields = dict(channels=args.channels, head_convs=args.head_convs, base_width=args.base_width)
    if args.neck:
        from ..asfd.neck_search import load_autofae_spec

        fields.update(neck="autofae", autofae=load_autofae_spec(args.neck).to_dict(), num_modules=args.modules)
    elif args.modules != 1:
        raise ValueError("--modules needs --neck (an AutoFAE from search-neck)")
    return ASFDConfig(**fields).replace(backbone=args.backbone)


def _run_baseline(args) -> int:
    from .._atomic import write_text
    from ..evaluation import evaluate_model
    from ..training.trainer import TrainConfig, train

    for name in ("eval_size", "channels", "base_width", "modules"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be positive")
    if args.eval_size % 32:
        raise ValueError(f"--eval-size must be a multiple of 32, got {args.eval_size}")
    gt = args.gt or os.path.join(args.data, "ground_truth")
    if not os.path.isdir(args.data):
        raise ValueError(f"no dataset folder at {args.data}")
    if not os.path.isdir(gt):
        raise ValueError(f"no ground-truth folder at {gt}; give --gt")
    config = None if args.init else baseline_config(args)
    cfg = TrainConfig(
        data=args.data, model=config.to_dict() if config else "asfd-baseline", out=args.out, epochs=args.epochs,
        batch=args.batch, size=args.size, lr=args.lr, device=args.device, seed=args.seed, init=args.init,
        max_steps=args.max_steps, resume=args.resume, backbone_weights=args.backbone_weights,
        box_loss=args.box_loss, use_kps=False, warmup_epochs=min(3.0, args.epochs / 4),
    )
    with _bar(args) as bar:
        log = _logger(args, bar)

        def progress(epoch, step, steps, history):  # the trainer's callback: one bar per epoch
            loss = history[-1]["loss"] if history else None
            bar(step, steps, phase=f"epoch {epoch + 1}/{args.epochs}", loss=loss)
            if history and step == steps:
                log(f"epoch {epoch + 1}/{args.epochs} step {step}/{steps} loss {loss:.4f}")

        model, history = train(cfg, progress)
        write_text(os.path.join(args.out, "detector.json"), json.dumps(model.config.to_dict(), indent=1))
        res = evaluate_model(weights=os.path.join(args.out, "model.pt"), data=args.data, gt=gt, device=args.device,
                             input_size=args.eval_size, progress=lambda done, total: bar(done, total, phase="eval"))
    steps = history[-1]["step"] if history else 0
    write_text(os.path.join(args.out, "result.json"),
               json.dumps({"steps": steps, "detector": model.config.describe(), **res.to_dict()}, indent=1))
    print(model.config.describe())
    print(res)
    print(f"saved: {os.path.join(args.out, 'model.pt')} (pyddsar detect / eval), detector.json, result.json")
    return 0
