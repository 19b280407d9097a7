"""Per-stage CPU latency of every detector preset with `pyddsar bench --json` (torch and onnxruntime).

    python benchmarks/bench_deploy.py [--models ddsar-0.5g,scrfd-0.5g] [--runs 20] [--warmup 3] [--out FILE.jsonl]

Prints a markdown table (ms per image, median; post-processing share) and writes the raw JSON lines.
Presets are measured with random weights unless --weights is given: see docs/deploy.md for what this
means for the post-processing stage.
"""

import argparse
import io
import json
import sys
from contextlib import redirect_stdout

from pyddsar.asfd.config import ASFDConfig
from pyddsar.cli import main as cli
from pyddsar.models import config_for, presets


def run(model, runtime, runs, warmup, batch, size, weights=None):
    buf = io.StringIO()
    args = ["bench", "--model", model, "--runtime", runtime, "--batch", batch, "--size", size,
            "--runs", str(runs), "--warmup", str(warmup), "--json"]
    if weights:
        args += ["--weights", weights]
    with redirect_stdout(buf):
        rc = cli(args)
    if rc:
        raise SystemExit(f"pyddsar bench failed for {model} / {runtime}")
    return json.loads(buf.getvalue())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default=",".join(presets))
    p.add_argument("--runtimes", default="torch,onnxruntime")
    p.add_argument("--batch", default="1,8")
    p.add_argument("--size", default="640x480")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--weights", default=None, help="weights for a single --models entry")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    rows = []
    print("| model | runtime | batch | preprocess | network | post-process | total | img/s | post share |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in a.models.split(","):
        for rt in a.runtimes.split(","):
            if rt == "onnxruntime" and isinstance(config_for(m), ASFDConfig):
                continue  # ASFD detectors have no ONNX layout (export_onnx says so)
            r = run(m, rt, a.runs, a.warmup, a.batch, a.size, a.weights)
            rows.append(r)
            for x in r["results"]:
                print(f"| {r['model']} | {rt} | {x['batch']} | {x['preprocess_ms']['median']:.1f} | "
                      f"{x['network_ms']['median']:.1f} | {x['postprocess_ms']['median']:.1f} | "
                      f"{x['total_ms']['median']:.1f} | {x['images_per_s']:.1f} | {100 * x['postprocess_share']:.0f}% |")
            sys.stdout.flush()
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
