"""Detector latency on CPU: `python benchmarks/bench_models.py [--repeat N] [--presets a,b]`.

Per preset (random weights; latency does not depend on them): torch forward of one 640x480 image,
the full `Detector.detect` of a 640x480 image (letterbox to 640x640, forward, decode, post-process), and
onnxruntime on the exported model at 640x480. Median of N runs after 2 warm-ups. Prints a Markdown table
(figures in docs/models.md).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyddsar  # noqa: E402
from pyddsar.evaluation.model_eval import protocol_kwargs  # noqa: E402
from pyddsar.model_file import default_preprocessing  # noqa: E402
from pyddsar.models import build_detector, complexity, presets  # noqa: E402


def _median_ms(fn, repeat):
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--presets", default=",".join(presets))
    args = ap.parse_args(argv)
    import onnxruntime as ort

    torch.manual_seed(0)
    # random weights give tiny activations deep in the nets; subnormal floats would dominate the timing
    torch.set_flush_denormal(True)
    x = torch.randn(1, 3, 480, 640)
    img = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {torch.get_num_threads()} threads")
    print("| preset | GFLOPs | params (M) | torch forward (ms) | Detector.detect (ms) | onnxruntime (ms) |")
    print("|---|---|---|---|---|---|")
    for name in args.presets.split(","):
        m = build_detector(name).eval()
        c = complexity(m, (640, 480))
        with torch.no_grad():
            fwd = _median_ms(lambda: m(x), args.repeat)
        det = pyddsar.Detector(m, **protocol_kwargs(default_preprocessing(m)))  # the family's own protocol
        full = _median_ms(lambda: det.detect(img), args.repeat)
        onnx_ms = "n/a (no ONNX layout for ASFD)"
        if isinstance(m, pyddsar.models.SCRFD):
            with tempfile.TemporaryDirectory() as d:
                p = pyddsar.export_onnx(m, os.path.join(d, "m.onnx"), input_size=(640, 480))
                so = ort.SessionOptions()
                so.intra_op_num_threads = torch.get_num_threads()
                sess = ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
                feed = {"input.1": x.numpy()}
                onnx_ms = f"{_median_ms(lambda: sess.run(None, feed), args.repeat):.1f}"
        print(f"| {name} | {c.flops / 1e9:.3f} | {c.params / 1e6:.3f} | {fwd:.1f} | {full:.1f} | {onnx_ms} |", flush=True)


if __name__ == "__main__":
    main()
