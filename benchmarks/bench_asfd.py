"""FLOPs (multiply-accumulates, pyddsar.models.complexity), parameters and CPU latency at 640x480 of
the asfd-baseline (ResNet-18, FPN, 256 channels, 4 head convs) and of the same detector with a derived
AutoFAE neck in place of the FPN. Usage:

    python benchmarks/bench_asfd.py [--neck OUT/autofae.json] [--runs 5] [--threads 2]

Without --neck the derived AutoFAE is the one of an AutoFAE at initialisation (first choices).
Latency: median of --runs batch-1 forward passes (no post-processing) after 2 warm-up passes.
Figures: docs/asfd.md.
"""

import argparse
import json
import os
import platform
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pyddsar.asfd import AutoFAE, DerivedAutoFAE, build_asfd_baseline, measure_latency_ms  # noqa: E402
from pyddsar.asfd.neck_search import load_autofae_spec  # noqa: E402
from pyddsar.models.complexity import complexity  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--neck", default=None)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--channels", type=int, default=256)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = load_autofae_spec(args.neck) if args.neck else AutoFAE(args.channels, 6).spec()
    models = {
        "asfd-baseline (resnet18, FPN)": build_asfd_baseline("resnet18", channels=args.channels),
        "resnet18 + derived AutoFAE": build_asfd_baseline(
            "resnet18", neck=DerivedAutoFAE(args.channels, spec), channels=args.channels),
    }
    x = torch.zeros(1, 3, 480, 640)
    rows = []
    for name, m in models.items():
        m.eval()
        c = complexity(m, (640, 480))
        lat = measure_latency_ms(m, x, warmup=2, runs=args.runs)
        rows.append({"model": name, "gmacs": c.flops / 1e9, "mparams": c.params / 1e6, "cpu_ms": lat})
        print(f"{name:34s} {c.flops / 1e9:8.2f} GMACs {c.params / 1e6:7.2f} M params {lat:9.1f} ms", flush=True)
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "cpu": platform.processor(),
                      "neck": args.neck, "spec": spec.describe(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
