"""Honest per-stage latency of a detector (preprocessing, network, post-processing); `pyddsar bench`
runs :func:`run_bench` and prints :func:`format_table`.

Each run detects ``batch`` synthetic images of ``size`` (random pixels, seeded) with
:class:`pyddsar.Detector`'s protocol and times three stages: *preprocessing* (letterbox to the
``input_size`` square, BGR->RGB, normalise, copy to the device), *network* (forward + box decoding;
with ``runtime='onnxruntime'`` a raw-output ONNX export run by onnxruntime, then the same decoding) and
*post-processing* (threshold, top-k, NMS, mapping back to the image). Times are per image (stage time /
batch); median and p90 over the ``runs`` warm runs; the ``warmup`` runs are excluded and reported
on their own. CUDA work is synchronised before each clock read.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time

import numpy as np

from ._validate import integer


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} logical cores)"


def build_model(name, weights):
    """(model, label, inference protocol as Detector keywords): from ``--weights`` (by content; a model
    file's own protocol) or a preset / searched Arch (random weights, the family's protocol)."""
    from .evaluation.model_eval import protocol_kwargs
    from .model_file import default_preprocessing
    from .models import build_detector, presets

    if weights:
        from .model_file import load_model

        model, pre = load_model(weights, name if name in presets else None)
        return model, model.config.name, protocol_kwargs(pre or default_preprocessing(model))
    if not name:
        raise ValueError("give --model (a preset, a structure string or a search's best.json) or --weights")
    model = build_detector(name)
    label = model.config.name if name in presets else f"{model.config.name} ({name})"
    return model.eval(), label, protocol_kwargs(default_preprocessing(model))


class OrtNetwork:
    """The network stage through onnxruntime: a raw-output export, decoded as :meth:`SCRFD.predict_raw`."""

    def __init__(self, model, threads: int, input_size: int):
        import onnxruntime as ort

        from .onnx_export import export_onnx

        self.model = model
        self._dir = tempfile.TemporaryDirectory(prefix="pyddsar-bench-")
        path = os.path.join(self._dir.name, "model.onnx")
        export_onnx(model, path, dynamic=True, postprocess=False, input_size=(input_size, input_size))
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        # no busy-waiting threads after each run: they would steal the cores from post-processing
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.use_kps = bool(getattr(model, "use_kps", False))

    def __call__(self, x):
        import torch

        from . import ops
        from .models.detector import RawPredictions

        outs = [torch.from_numpy(o) for o in self.sess.run(None, {"input.1": x.cpu().numpy()})]
        b, h, w = x.shape[0], x.shape[2], x.shape[3]
        strides = (8, 16, 32)
        sizes = [(h // s, w // s) for s in strides]
        centers = ops.anchor_centers(sizes, strides, 2)
        stride_col = torch.cat([torch.full((n,), float(s)) for n, s in zip(ops.num_anchors_per_level(sizes, 2), strides)])
        scores = torch.cat(outs[0:3], 1).squeeze(-1)
        dist = torch.cat(outs[3:6], 1) * stride_col[None, :, None]
        n = dist.shape[1]
        boxes = torch.cat([centers[None] - dist[..., :2], centers[None] + dist[..., 2:]], -1).reshape(b, n, 4)
        kps = None
        if self.use_kps:
            kps = torch.cat(outs[6:9], 1).reshape(b, n, 5, 2) * stride_col[None, :, None, None] + centers[None, :, None, :]
        return RawPredictions(scores, boxes, kps)


def _stats(values_ms):
    a = np.asarray(values_ms, np.float64)
    return {"median": round(float(np.median(a)), 4), "p90": round(float(np.percentile(a, 90)), 4)}


def _bench_image(rng, width: int, height: int, path=None) -> np.ndarray:
    """The benchmark's input, BGR uint8: `path` resized to width x height, or a synthetic crowd scene
    (drawn faces on a textured background). Random noise would be dishonest both ways: it has no
    faces, and an untrained model scores every anchor, which inflates post-processing."""
    import cv2

    if path is not None:
        from .preprocess import read_image, to_bgr8

        return cv2.resize(to_bgr8(read_image(path)), (width, height), interpolation=cv2.INTER_AREA)
    from .data.synthetic import draw_image

    rgb = draw_image(rng, width, height, "0")[0]
    return np.ascontiguousarray(rgb[:, :, ::-1])


def run_bench(model_name=None, weights=None, device="cpu", batches=(1, 8), threads=None, size=(640, 480),
              runtime="torch", warmup=3, runs=20, input_size=640, fp16=False, image=None, progress=None) -> dict:
    """The benchmark as a dict (what ``--json`` prints). ``progress``, when given, is called as
    ``progress(done, total)`` after each run, warm-up runs included (total: batches x (warmup + runs));
    it runs outside the timed stages."""
    import torch

    from . import __version__
    from .inference import Detector

    batches = list(batches)
    if runtime not in ("torch", "onnxruntime"):
        raise ValueError(f"--runtime must be torch or onnxruntime, got {runtime!r}")
    warmup = integer(warmup, "--warmup", low=0)
    runs = integer(runs, "--runs", low=1)
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(f"size must be (width, height) of at least 2 pixels each, got {size!r}")
    size = (integer(size[0], "size width", low=2), integer(size[1], "size height", low=2))
    if threads is not None:
        torch.set_num_threads(integer(threads, "--threads", low=1))
    threads = torch.get_num_threads()
    dev = torch.device(device)
    if runtime == "onnxruntime" and dev.type != "cpu":
        raise ValueError("--runtime onnxruntime is measured on the CPU here (give --device cpu)")
    if fp16 and dev.type != "cuda":
        raise ValueError("--fp16 needs --device cuda")
    model, label, protocol = build_model(model_name, weights)
    det = Detector(model, device=dev, half=fp16, **{**protocol, "input_size": input_size})
    net = OrtNetwork(det.model, threads, input_size) if runtime == "onnxruntime" else det.forward
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    rng = np.random.default_rng(0)
    w, h = size
    results = []
    total_runs, done_runs = len(batches) * (warmup + runs), 0
    for b in batches:
        imgs = [_bench_image(rng, w, h, image) for _ in range(b)]
        rows, warm = [], []
        for i in range(warmup + runs):
            sync()
            t0 = time.perf_counter()
            x, scales = det.preprocess(imgs)
            sync()
            t1 = time.perf_counter()
            raw = net(x)
            sync()
            t2 = time.perf_counter()
            det.postprocess(raw, scales)
            sync()
            t3 = time.perf_counter()
            per = [(t1 - t0) * 1e3 / b, (t2 - t1) * 1e3 / b, (t3 - t2) * 1e3 / b, (t3 - t0) * 1e3 / b]
            (warm if i < warmup else rows).append(per)
            done_runs += 1
            if progress is not None:
                progress(done_runs, total_runs)
        rows = np.asarray(rows)
        total = _stats(rows[:, 3])
        results.append({
            "batch": b,
            "preprocess_ms": _stats(rows[:, 0]),
            "network_ms": _stats(rows[:, 1]),
            "postprocess_ms": _stats(rows[:, 2]),
            "total_ms": total,
            "images_per_s": round(1e3 / total["median"], 2),
            "postprocess_share": round(float(np.median(rows[:, 2] / rows[:, 3])), 4),
            "warmup_total_ms": [round(r[3], 3) for r in warm],
        })
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:  # pragma: no cover
        ort_version = None
    return {
        "model": label, "weights": weights, "runtime": runtime, "device": str(dev), "device_name": device_name(dev),
        "fp16": bool(fp16), "image": image or "synthetic crowd scene", "threads": threads, "size": [w, h],
        "input_size": input_size, "warmup": warmup,
        # the post-processing the Detector runs with (the model file's or the family's protocol)
        "protocol": {"score_threshold": det.score_threshold, "nms_threshold": det.nms_threshold,
                     "pre_nms_topk": det.pre_nms_topk, "max_detections": det.max_detections},
        "runs": runs, "torch": torch.__version__, "onnxruntime": ort_version if runtime == "onnxruntime" else None,
        "pyddsar": __version__, "python": platform.python_version(), "results": results,
        "unit": "milliseconds per image (stage time of a batch / batch size)",
    }


def format_table(r: dict) -> str:
    lines = [
        f"model {r['model']}  runtime {r['runtime']}{' fp16' if r['fp16'] else ''}  device {r['device']} "
        f"({r['device_name']})  threads {r['threads']}",
        f"image {r['size'][0]}x{r['size'][1]} -> input {r['input_size']}x{r['input_size']}  warm-up {r['warmup']}  "
        f"runs {r['runs']}  torch {r['torch']}  pyddsar {r['pyddsar']}"
        + (f"  onnxruntime {r['onnxruntime']}" if r['onnxruntime'] else ""),
        "ms per image, median / p90 over warm runs",
        f"{'batch':>5} | {'preprocess':>15} | {'network':>17} | {'postprocess':>15} | {'total':>17} | {'img/s':>7} | "
        f"{'post %':>6} | warm-up total",
    ]
    for x in r["results"]:
        cell = lambda k, wd: f"{x[k]['median']:.2f} / {x[k]['p90']:.2f}".rjust(wd)  # noqa: E731
        wu = ", ".join(f"{v:.1f}" for v in x["warmup_total_ms"]) or "-"
        lines.append(f"{x['batch']:>5} | {cell('preprocess_ms', 15)} | {cell('network_ms', 17)} | "
                     f"{cell('postprocess_ms', 15)} | {cell('total_ms', 17)} | {x['images_per_s']:>7.1f} | "
                     f"{100 * x['postprocess_share']:>5.1f}% | {wu}")
    return "\n".join(lines)
