"""The whole ASFD pipeline on the CPU on synthetic data, through the `pyddsar` commands a user runs:

    python benchmarks/asfd_synthetic.py --out runs/asfd-synthetic [--neck-epochs 12 --epochs 20 ...]

1. `pyddsar asfd search-neck`: bi-level AutoFAE search (placement "between").
2. `pyddsar asfd baseline`: the asfd-baseline with its FPN, trained and evaluated (the reference).
3. `pyddsar asfd baseline --neck autofae.json`: the same detector with the searched AutoFAE in place
   of the FPN (fresh weights), trained and evaluated with the same recipe.
4. `pyddsar asfd scale --neck autofae.json --latency-ms X`: supernet + genetic search; then
   `pyddsar asfd baseline --init scale/model.pt` fine-tunes the chosen single path and evaluates it.
5. FLOPs (multiply-accumulates), parameters and CPU latency at 640x480 of every trained detector.

All detectors share the backbone (ResNet-18 at stem width --base-width), neck/head width --channels
and --head-convs (the scaled one picks its own). Evaluation: WIDER Easy / Medium / Hard AP of the
synthetic val split with ASFD's test protocol at --eval-size. Writes OUT/summary.json and prints each
phase's wall time. Figures: docs/asfd.md.
"""

import argparse
import json
import os
import time

import torch

from pyddsar.asfd import measure_latency_ms
from pyddsar.cli import main as pyddsar
from pyddsar.data.synthetic import write_dataset
from pyddsar.model_file import load_model
from pyddsar.models.complexity import complexity


def run(argv):
    t = time.time()
    rc = pyddsar(argv)
    if rc != 0:
        raise SystemExit(f"pyddsar {' '.join(argv)} failed with status {rc}")
    return time.time() - t


def measure(path, runs):
    model, _ = load_model(path)
    model.eval()
    c = complexity(model, (640, 480))
    lat = measure_latency_ms(model, torch.zeros(1, 3, 480, 640), warmup=2, runs=runs)
    return {"description": model.config.describe(), "gmacs": c.flops / 1e9, "mparams": c.params / 1e6,
            "cpu_ms_640x480": lat}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/asfd-synthetic")
    p.add_argument("--train", type=int, default=800)
    p.add_argument("--val", type=int, default=100)
    p.add_argument("--base-width", type=int, default=32)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--head-convs", type=int, default=2)
    p.add_argument("--neck-epochs", type=int, default=16)
    p.add_argument("--neck-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=20, help="training epochs of each detector")
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--eval-size", type=int, default=640)
    p.add_argument("--latency-ms", type=float, default=60.0)
    p.add_argument("--supernet-steps", type=int, default=1500)
    p.add_argument("--population", type=int, default=16)
    p.add_argument("--iterations", type=int, default=6)
    p.add_argument("--top-k", type=int, default=4)
    p.add_argument("--scale-channels", default="16,24,32")
    p.add_argument("--backbones", default="resnet18,resnet34")
    p.add_argument("--runs", type=int, default=10, help="latency passes per detector")
    a = p.parse_args()
    out = a.out
    data = os.path.join(out, "data")
    times = {}
    t = time.time()
    if not os.path.isdir(data):
        write_dataset(data, n_train=a.train, n_val=a.val, seed=0)
    times["data_s"] = time.time() - t
    width = ["--base-width", str(a.base_width)]
    common = [*width, "--channels", str(a.channels), "--head-convs", str(a.head_convs), "--quiet"]
    train = ["--epochs", str(a.epochs), "--size", str(a.size), "--batch", str(a.batch),
             "--eval-size", str(a.eval_size)]
    neck_dir, scale_dir = os.path.join(out, "neck"), os.path.join(out, "scale")
    neck = os.path.join(neck_dir, "autofae.json")
    if not os.path.isfile(neck):
        times["search_neck_s"] = run(["asfd", "search-neck", "--data", data, "--out", neck_dir,
                                      "--epochs", str(a.neck_epochs), "--size", str(a.neck_size), *common])
    runs = {
        "fpn": ["asfd", "baseline", "--data", data, "--out", os.path.join(out, "fpn"), *common, *train],
        "autofae": ["asfd", "baseline", "--data", data, "--out", os.path.join(out, "autofae"), "--neck", neck,
                    *common, *train],
    }
    for name, argv in runs.items():
        if not os.path.isfile(os.path.join(out, name, "result.json")):
            times[f"train_{name}_s"] = run(argv)
    if not os.path.isfile(os.path.join(scale_dir, "genes.json")):
        times["scale_s"] = run(["asfd", "scale", "--data", data, "--out", scale_dir, "--neck", neck,
                                "--latency-ms", str(a.latency_ms), "--supernet-steps", str(a.supernet_steps),
                                "--population", str(a.population), "--iterations", str(a.iterations),
                                "--top-k", str(a.top_k), "--backbones", a.backbones, "--module-counts", "1,2",
                                "--head-convs", "1,2,3", "--channels", a.scale_channels, *width,
                                "--size", str(a.neck_size), "--quiet"])
    if not os.path.isfile(os.path.join(out, "scaled", "result.json")):
        times["train_scaled_s"] = run(["asfd", "baseline", "--data", data, "--out", os.path.join(out, "scaled"),
                                       "--init", os.path.join(scale_dir, "model.pt"), "--quiet", *train])
    summary = {"args": vars(a), "times": times, "threads": torch.get_num_threads(), "torch": torch.__version__,
               "neck": json.load(open(neck)), "scale": json.load(open(os.path.join(scale_dir, "genes.json")))["chosen"],
               "detectors": {}}
    summary["neck"].pop("config", None)
    for name in ("fpn", "autofae", "scaled"):
        d = os.path.join(out, name)
        res = json.load(open(os.path.join(d, "result.json")))
        summary["detectors"][name] = {**measure(os.path.join(d, "model.pt"), a.runs),
                                      "easy": res["easy"], "medium": res["medium"], "hard": res["hard"],
                                      "steps": res["steps"]}
        r = summary["detectors"][name]
        print(f"{name:8s} {r['gmacs']:7.2f} GMACs {r['mparams']:6.2f} M {r['cpu_ms_640x480']:7.1f} ms  "
              f"AP {r['easy']:.4f} / {r['medium']:.4f} / {r['hard']:.4f}  ({r['description']})", flush=True)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=float)
    print(json.dumps(summary["times"], indent=1))


if __name__ == "__main__":
    main()
