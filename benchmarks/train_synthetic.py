"""Acceptance runs: train a detector from scratch on the CPU on synthetic data, then evaluate.

    python benchmarks/train_synthetic.py --out runs/synthetic [--train 800 --val 100 --epochs 10]
    python benchmarks/train_synthetic.py --out runs/asfd --model asfd-baseline --backbone ddsar-0.5g \
        --set channels=32 --set head_convs=2 --epochs 25          # issue 8: the ASFD baseline

``--model`` is any ``pyddsar train --model`` value (default ddsar-0.5g); ``--backbone`` and ``--set
FIELD=INT`` change its config (written to OUT/detector.json and trained from there).

Generates the synthetic WIDER-format set, trains (320x320 crops, batch 8, SGD lr 0.01, 1 warm-up
epoch), evaluates Easy / Medium / Hard AP on the synthetic val split with the inference protocol, and
prints the wall time of each phase. Figures: docs/training.md.
"""

import argparse
import json
import os
import time

from pyddsar.data.synthetic import write_dataset
from pyddsar.evaluation import evaluate_model
from pyddsar.models import config_for
from pyddsar.training.trainer import TrainConfig, train


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/synthetic")
    p.add_argument("--train", type=int, default=800)
    p.add_argument("--val", type=int, default=100)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--model", default="ddsar-0.5g")
    p.add_argument("--backbone", default=None)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=INT")
    a = p.parse_args()
    model = a.model
    if a.backbone or a.set:
        changes = {k: int(v) for k, v in (kv.split("=", 1) for kv in a.set)}
        if a.backbone:
            changes["backbone"] = a.backbone
        os.makedirs(a.out, exist_ok=True)
        model = os.path.join(a.out, "detector.json")
        with open(model, "w") as f:
            json.dump(config_for(a.model).replace(**changes).to_dict(), f, indent=1)
    data = os.path.join(a.out, "data")
    t0 = time.time()
    if not os.path.isdir(data):
        write_dataset(data, n_train=a.train, n_val=a.val, seed=0)
    t1 = time.time()
    cfg = TrainConfig(data=data, model=model, out=os.path.join(a.out, "train"), epochs=a.epochs, batch=a.batch, size=a.size,
                      lr=a.lr, warmup_epochs=1.0, workers=a.workers, log_every=20)
    _, history = train(cfg)
    t2 = time.time()
    res = evaluate_model(weights=os.path.join(cfg.out, "model.pt"), data=data, gt=os.path.join(data, "ground_truth"),
                         out_dir=os.path.join(a.out, "eval"))
    t3 = time.time()
    summary = {"model": config_for(model).to_dict(), "data_s": t1 - t0, "train_s": t2 - t1, "eval_s": t3 - t2, "steps": history[-1]["step"],
               "final_loss": history[-1]["loss"], "ap": res.to_dict()}
    print(res)
    print(json.dumps(summary, indent=1, default=float))
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=float)


if __name__ == "__main__":
    main()
