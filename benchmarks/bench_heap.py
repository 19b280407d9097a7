"""A backbone's forward pass under glibc's default heap and with pyddsar.heap.keep_heap() (docs/deploy.md).

    PYTHONPATH=. python benchmarks/bench_heap.py [--arch STRUCTURE] [--runs 40] [--repeats 3]

Each setting runs in fresh processes (mallopt cannot be undone), alternating; each prints the median
of `--runs` forward passes at 640x480 after 10 warm-up passes and the minor page faults per pass.
The default network is a backbone a latency-budget search returned (tests/test_heap.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_ONE = """
import json, resource, statistics, sys, time, torch
from pyddsar.arch import Arch
from pyddsar.heap import keep_heap
from pyddsar.models.backbone import Backbone
kept = keep_heap() if sys.argv[2] == "kept" else False
net = Backbone(Arch.parse(sys.argv[1]), fused=True).eval().to(memory_format=torch.channels_last)
x = torch.randn(1, 3, 480, 640).contiguous(memory_format=torch.channels_last)
with torch.inference_mode():
    for _ in range(10):
        net(x)
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    ts = []
    for _ in range(int(sys.argv[3])):
        t = time.perf_counter(); net(x); ts.append(time.perf_counter() - t)
    f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"kept": kept, "ms": 1e3 * statistics.median(ts), "faults": (f1 - f0) / len(ts)}))
"""


def main(argv=None) -> int:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from test_heap import WINNER

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default=WINNER)
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    for r in range(args.repeats):
        for mode in ("default", "kept"):
            out = subprocess.run([sys.executable, "-c", _ONE, args.arch, mode, str(args.runs)], check=True,
                                 capture_output=True, text=True).stdout
            d = json.loads(out.strip().splitlines()[-1])
            print(f"repeat {r + 1} {mode:7s} (kept={d['kept']}): {d['ms']:.2f} ms median, {d['faults']:.0f} page faults per pass")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
