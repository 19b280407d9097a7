"""`pyddsar train`: train a detector on a WIDER-format folder (SPEC section 4's recipe).

Writes into --out: checkpoint.pt (every epoch and on Ctrl-C; `--resume` continues exactly),
metrics.jsonl / metrics.csv, loss.png and model.pt (a pyddsar model file for `pyddsar detect` and
`pyddsar eval`). Multi-process: `torchrun --nproc_per_node N -m pyddsar train ...`.
"""

from __future__ import annotations

import os
import sys
import time


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train a detector (SCRFD: ATSS, QFL + DIoU; asfd-baseline: IoU 0.4, focal) "
                                     "on a WIDER-format folder")
    t.add_argument("--data", required=True, help="dataset folder (WIDER layout or `pyddsar data synthetic` output)")
    t.add_argument("--model", default="ddsar-0.5g", help="preset name, structure string or search best.json")
    t.add_argument("--arch", default=None, help="a search's best.json (overrides --model's backbone)")
    t.add_argument("--backbone", default=None,
                   help="asfd-baseline's backbone: resnet18|resnet34|resnet50, a ddsar preset, best.json or structure")
    t.add_argument("--backbone-weights", default=None, help="a state dict (torch.save) to start the backbone from")
    t.add_argument("--box-loss", default=None, choices=["diou", "smooth_l1", "giou"],
                   help="box loss (default: DIoU for SCRFD-framework detectors, smooth_l1 for asfd-baseline)")
    t.add_argument("--out", default="runs/train")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch", type=int, default=8, help="images per process")
    t.add_argument("--size", type=int, default=640, help="training crop side (multiple of 32)")
    t.add_argument("--lr", type=float, default=None,
                   help="learning rate after warm-up (default: SCRFD's 0.01 per 32 images, scaled to batch x processes)")
    t.add_argument("--warmup-iters", type=int, default=1500, help="linear warm-up steps from 0.001 x lr (default: 1500)")
    t.add_argument("--warmup-epochs", type=float, default=None, help="warm-up length in epochs instead of --warmup-iters")
    t.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    t.add_argument("--device", default="cpu", help="cpu or cuda")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--init", default=None, help="fine-tune from an insightface SCRFD .onnx or a pyddsar model file")
    t.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    t.add_argument("--log-every", type=int, default=10)
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=run)


def run(args) -> int:
    from ..training.trainer import TrainConfig, train

    from ..asfd.config import ASFDConfig
    from ..models import config_for

    model, backbone = args.model, args.backbone
    if args.arch:
        if isinstance(config_for(model), ASFDConfig):  # an ASFD detector keeps its neck and head
            if backbone:
                raise ValueError("give the backbone once: --arch or --backbone")
            backbone = args.arch
        else:
            model = args.arch
    cfg = TrainConfig(
        data=args.data, model=model, out=args.out, epochs=args.epochs, batch=args.batch, size=args.size,
        lr=args.lr, warmup_iters=args.warmup_iters, warmup_epochs=args.warmup_epochs, workers=args.workers, device=args.device, seed=args.seed,
        init=args.init, max_steps=args.max_steps, log_every=args.log_every, resume=args.resume,
        backbone=backbone, backbone_weights=args.backbone_weights, box_loss=args.box_loss,
    )
    rank0 = int(os.environ.get("RANK", "0")) == 0
    world = int(os.environ.get("WORLD_SIZE", "1"))
    clock = {"start": None, "steps": 0}

    bars = {"bar": None, "epoch": None}

    def progress(epoch, step, steps, history):
        if args.quiet or not rank0:
            return
        now = time.perf_counter()
        if clock["start"] is None:  # the rate counts from the end of the first step (start-up excluded)
            clock["start"] = now
        else:
            clock["steps"] += 1
        elapsed = now - clock["start"]
        rate = f"{clock['steps'] * args.batch * world / elapsed:.1f} images/s" if clock["steps"] else "- images/s"
        loss = f"{history[-1]['loss']:.4f}" if history else "-"  # no logged step yet
        stats = f"loss {loss}  {rate}"
        if bars["epoch"] != epoch:
            from tqdm import tqdm

            close_bar()
            bars["bar"] = tqdm(total=steps, desc=f"epoch {epoch + 1}/{args.epochs}", unit="step", file=sys.stderr,
                               dynamic_ncols=True, postfix=stats)
            bars["epoch"] = epoch
        bar = bars["bar"]
        bar.set_postfix_str(stats, refresh=False)
        bar.update(max(0, step - bar.n))

    def close_bar():
        if bars["bar"] is not None:
            bars["bar"].close()
            bars["bar"] = None

    try:
        _, history = train(cfg, progress)
    except KeyboardInterrupt:
        close_bar()
        if rank0:
            print(f"\ninterrupted: checkpoint saved in {args.out}; continue with --resume", file=sys.stderr)
        return 130
    close_bar()
    if rank0:
        last = history[-1] if history else {}
        loss = f"final loss {last['loss']:.4f}; " if "loss" in last else ""
        print(f"trained {last.get('step', 0)} steps; {loss}"
              f"wrote {args.out}/model.pt, checkpoint.pt, metrics.jsonl, metrics.csv, loss.png")
    return 0
