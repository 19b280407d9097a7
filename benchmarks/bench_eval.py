"""Time the WIDER Face evaluation on the full val ground truth (3,226 images, 39,708 faces).

Predictions: the ground truth jittered (sigma 10 % of the box size), 15 % of faces dropped and 20
random false positives per image, scores random and sorted. Usage:
    python benchmarks/bench_eval.py [--gt ../shared/data/widerface_val_gt] [--repeat 3]
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pyddsar.evaluation import evaluate, load_ground_truth, read_predictions, write_predictions  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gt", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                                 "widerface_val_gt"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--files", default=None, help="also time writing and reading txt files in this folder")
    args = ap.parse_args()
    t0 = time.perf_counter()
    gt = load_ground_truth(args.gt)
    t_load = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    preds = {}
    for k, b in zip(gt.keys, gt.boxes):
        keep = b[rng.random(len(b)) < 0.85]
        jit = keep + rng.normal(0, 0.1, keep.shape) * keep[:, [2, 3, 2, 3]]
        extra = np.concatenate([rng.uniform(0, 1000, (20, 2)), rng.uniform(4, 200, (20, 2))], 1)
        bb = np.concatenate([jit, extra])
        s = rng.random(len(bb))
        preds[k] = np.concatenate([bb, s[:, None]], 1)[np.argsort(-s)]
    n_pred = sum(len(v) for v in preds.values())
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = evaluate(preds, gt)
            times.append(time.perf_counter() - t0)
    print(f"images {len(gt.names)}, faces {sum(len(b) for b in gt.boxes)}, predictions {n_pred}")
    print(f"load .mat ground truth: {t_load:.3f} s")
    print(f"evaluate (in memory): best {min(times):.3f} s, median {np.median(times):.3f} s over {args.repeat}")
    if args.files:
        t0 = time.perf_counter()
        write_predictions(args.files, preds)
        t_w = time.perf_counter() - t0
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res_f = evaluate(read_predictions(args.files), gt)
        t_r = time.perf_counter() - t0
        print(f"write txt files: {t_w:.3f} s; read txt files + evaluate: {t_r:.3f} s")
        print(f"APs from files: {res_f.easy:.4f} {res_f.medium:.4f} {res_f.hard:.4f}")
    print(res)


if __name__ == "__main__":
    main()
