"""`pyddsar bench`: per-stage latency of a detector (the work is :func:`pyddsar.benchmark.run_bench`).

    pyddsar bench --model NAME|ARCH|best.json [--weights W] [--device cpu|cuda] [--batch 1,8]
                  [--threads N] [--size 640x480] [--runtime torch|onnxruntime] [--warmup 3] [--runs 20]
                  [--fp16] [--json] [--no-progress]
"""

from __future__ import annotations

import json
import sys

from . import _args, _progress


def _batches(text: str):
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--batch must be comma-separated positive integers such as 1,8, got {text!r}") from None
    if not out or min(out) <= 0:
        raise ValueError(f"--batch must be comma-separated positive integers such as 1,8, got {text!r}")
    return out


def _cmd_bench(args) -> int:
    from ..benchmark import format_table, run_bench

    batches = _batches(args.batch)
    with _progress.bar("bench", "run", enabled=not args.no_progress) as progress:
        r = run_bench(args.model, args.weights, args.device, batches, args.threads, args.size, args.runtime,
                      args.warmup, args.runs, args.input_size, args.fp16, args.image, progress=progress)
    print(json.dumps(r) if args.json else format_table(r))
    sys.stdout.flush()
    return 0


def add_parser(sub) -> None:
    b = sub.add_parser("bench", help="per-stage latency of a detector: preprocessing, network, post-processing")
    b.add_argument("--model", help="detector preset, structure string or a search's best.json")
    b.add_argument("--weights", help="weights file (.onnx SCRFD or pyddsar model file); default: random weights")
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--batch", default="1,8", help="batch sizes, comma-separated (default 1,8)")
    b.add_argument("--threads", type=int, default=None, help="CPU threads (torch and onnxruntime); default torch's")
    _args.add_size(b, (640, 480), "image")
    b.add_argument("--input-size", type=int, default=640, help="network input square side (default 640)")
    b.add_argument("--runtime", choices=["torch", "onnxruntime"], default="torch")
    b.add_argument("--warmup", type=int, default=3, help="warm-up runs, excluded (default 3)")
    b.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    b.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    b.add_argument("--image", default=None, help="benchmark this photo (resized to --size); default: a synthetic "
                   "crowd scene")
    b.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    _progress.add_flag(b, "no progress bar (runs done, warm-up included) on stderr")
    b.set_defaults(func=_cmd_bench)
