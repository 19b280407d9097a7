"""What each ONNX graph costs, op by op: insightface's SCRFD file beside pyddsar's exports of it.

    python benchmarks/profile_deploy_graph.py [--model FILE.onnx] [--threads 2] [--runs 6]

Graphs: the file itself, pyddsar's raw export of the imported model, and its export with
post-processing in the graph (thresholds 0.5 / NMS 0.4), each in a session of ``--threads`` threads as
``pyddsar.onnx_detector.session_options`` makes it, and the exports once more with the height and width
fixed to 640 (what ``OnnxDetector`` does). Inputs: the 12 real photos of ../shared/data/images,
letterboxed to 640 as ``OnnxDetector`` letterboxes them. Prints per graph the node count, the median
and minimum time of a run, and onnxruntime's profiler: kernel time per run by op type. Figures:
docs/deploy.md ("What the graph costs, op by op").
"""

import argparse
import collections
import json
import os
import sys
import tempfile
import time

from bench_deploy_insightface import DATA, REPO, real_photos  # (run as a script: benchmarks/ is on sys.path)


def profile(path, inputs, threads, runs, fixed_size=None, top=8):
    import numpy as np
    import onnxruntime as ort
    from pyddsar.onnx_detector import session_options

    so = session_options(threads)
    if fixed_size:
        for dim in ("height", "width"):
            so.add_free_dimension_override_by_name(dim, fixed_size)
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="pyddsar-profile-"), "run")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for x in inputs:  # warm-up, profiled too (divided out below)
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        for x in inputs:
            t = time.perf_counter()
            sess.run(None, {name: x})
            times.append(time.perf_counter() - t)
    by_op = collections.Counter()
    for e in json.load(open(sess.end_profiling())):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"]["op_name"]] += e["dur"]
    per_run = len(inputs) * (runs + 1) * 1000.0  # microseconds -> ms per run
    ops = ", ".join(f"{op} {us / per_run:.2f}" for op, us in by_op.most_common(top))
    return np.median(times) * 1e3, min(times) * 1e3, sum(by_op.values()) / per_run, ops


def main():
    import cv2
    import onnx

    p = argparse.ArgumentParser()
    p.add_argument("--model", default=os.path.join(DATA, "models", "scrfd_2.5g_bnkps.onnx"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=6)
    a = p.parse_args()
    sys.path.insert(0, REPO)
    from pyddsar.models import load_scrfd_onnx
    from pyddsar.onnx_export import export_onnx
    from pyddsar.preprocess import letterbox, normalise

    inputs = [normalise(letterbox(cv2.imread(f), 640)[0][None]) for f in real_photos()]
    model = load_scrfd_onnx(a.model).eval()
    tmp = tempfile.mkdtemp(prefix="pyddsar-graphs-")
    raw = export_onnx(model, os.path.join(tmp, "raw.onnx"))
    pp = export_onnx(model, os.path.join(tmp, "pp.onnx"), postprocess=True, score_threshold=0.5, nms_threshold=0.4)
    print(f"{len(inputs)} photos x {a.runs} runs, {a.threads} threads")
    print("| graph | nodes | median ms | min ms | kernels ms | by op (ms per run) |")
    print("|---|---|---|---|---|---|")
    for label, path, fixed in (("the file", a.model, None), ("raw export", raw, None), ("raw export, 640 fixed", raw, 640),
                               ("post-processed export", pp, None), ("post-processed, 640 fixed", pp, 640)):
        med, mn, kern, ops = profile(path, inputs, a.threads, a.runs, fixed)
        nodes = len(onnx.load(path).graph.node)
        print(f"| {label} | {nodes} | {med:.2f} | {mn:.2f} | {kern:.2f} | {ops} |", flush=True)


if __name__ == "__main__":
    main()
