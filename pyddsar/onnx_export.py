"""Export a pyddsar detector to ONNX with SCRFD's output layout, then check it with onnxruntime.

Outputs (in this order): ``score_8, score_16, score_32`` [B, N_l, 1] sigmoid scores, ``bbox_8, ...``
[B, N_l, 4] distances in stride units, and ``kps_8, ...`` [B, N_l, 10] in stride units when the model
has keypoints: the layout of insightface's SCRFD files (with a batch axis). Input ``input.1`` [B, 3, H, W]
normalised as :mod:`pyddsar.inference` does; batch, height and width are dynamic when ``dynamic``.

With ``postprocess=True`` the graph also decodes, thresholds, keeps the top-k, runs NMS (the standard
``NonMaxSuppression`` op, per image) and pads: outputs ``detections [B, 750, 5 or 15]`` and
``num_detections [B]`` (SPEC section 7), see :class:`PostProcessed`.
"""

from __future__ import annotations

import copy
import os
import warnings

import numpy as np
import torch
from torch import nn

from ._validate import integer, real

INPUT_NAME = "input.1"


def output_names(use_kps: bool):
    names = [f"{k}_{s}" for k in ("score", "bbox") for s in (8, 16, 32)]
    if use_kps:
        names += [f"kps_{s}" for s in (8, 16, 32)]
    return names


class RawOutputs(nn.Module):
    """The detector with SCRFD's ONNX outputs: sigmoid scores, box and keypoint maps in stride units."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        res = [c.sigmoid() for c in out.cls] + list(out.bbox)
        if out.kps is not None:
            res += list(out.kps)
        return tuple(res)


class _NMS(torch.autograd.Function):
    """Per-image NMS on ``boxes [B, N, 4]``, ``scores [B, 1, N]``: ONNX NonMaxSuppression's contract
    (selected ``[K, 3]`` int64 rows ``(batch, 0, box)``, by image then decreasing score; boxes with
    score <= ``score_threshold`` dropped, at most ``max_per_image`` per image). The torch forward uses
    :func:`pyddsar.ops.nms`; the exporter emits the standard ONNX op."""

    @staticmethod
    def forward(ctx, boxes, scores, max_per_image: int, iou_threshold: float, score_threshold: float):
        from . import ops

        rows = []
        for b in range(boxes.shape[0]):
            cand = torch.nonzero(scores[b, 0] > score_threshold).flatten()
            keep = cand[ops.nms(boxes[b, cand], scores[b, 0, cand], iou_threshold)][:max_per_image]
            rows.append(torch.stack([torch.full_like(keep, b), torch.zeros_like(keep), keep], 1))
        return torch.cat(rows, 0) if rows else torch.zeros(0, 3, dtype=torch.int64)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_image, iou_threshold, score_threshold):
        return g.op(
            "NonMaxSuppression", boxes, scores,
            g.op("Constant", value_t=torch.tensor([max_per_image], dtype=torch.int64)),
            g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float32)),
            g.op("Constant", value_t=torch.tensor([score_threshold], dtype=torch.float32)),
            center_point_box_i=0,
        )


class PostProcessed(nn.Module):
    """The detector with decoding, score threshold, top-k, NMS and padding inside the graph.

    Input: the preprocessed tensor ``[B, 3, H, W]`` (RGB, ``(x - 127.5) / 128``, H and W multiples of
    32, as :func:`pyddsar.inference.letterbox` + :func:`pyddsar.inference.normalise` make it).
    Outputs: ``detections [B, max_detections, 5 or 15]`` float32 rows ``x1 y1 x2 y2 score`` (+ 5
    landmarks ``x y``) in input pixels (divide by the letterbox scale for the original image),
    by decreasing score, zero rows after the last; ``num_detections [B]`` int64.
    Protocol of :func:`pyddsar.ops.postprocess`: scores > ``score_threshold``, the ``pre_nms_topk`` best,
    NMS at ``nms_threshold``, at most ``max_detections``.
    """

    def __init__(self, model: nn.Module, score_threshold: float = 0.02, nms_threshold: float = 0.45,
                 pre_nms_topk: int = 5000, max_detections: int = 750):
        super().__init__()
        self.model = model
        self.strides = tuple(getattr(model, "strides", (8, 16, 32)))
        self.num_anchors = int(getattr(model, "num_anchors", 2))
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_topk = int(pre_nms_topk)
        self.max_detections = int(max_detections)

    def _anchor_points(self, x, out, index):
        """Centres ``[B, K, 2]`` (x, y in input pixels) and strides ``[B, K, 1]`` of the anchors at
        ``index [B, K]`` (positions in the levels' concatenation), by index arithmetic on the K selected
        anchors only: level = how many level starts the index has passed; within the level, cell =
        local // anchors, then x = cell % width, y = cell // width. Level sizes and widths are read from
        the tensors' shapes, so they stay dynamic in the graph."""
        from torch.onnx.operators import shape_as_tensor

        sizes = torch.cat([shape_as_tensor(c)[1:2] for c in out.cls])  # anchors per level [L]
        starts = torch.cumsum(sizes, 0) - sizes
        strides = torch.tensor(self.strides, dtype=torch.int64)
        widths = shape_as_tensor(x)[3] // strides  # feature-map widths (inputs are multiples of 32)
        level = (index[..., None] >= starts[1:]).sum(-1)  # [B, K]
        cell = (index - starts[level]) // self.num_anchors
        width, stride = widths[level], strides[level]
        centre = torch.stack([cell % width, cell // width], -1) * stride[..., None]
        return centre.float(), stride[..., None].float()

    def forward(self, x):
        # Select first, decode after: TopK on the scores, then only the selected anchors are located and
        # decoded, and only the kept ones get keypoints. The graph was measured op by op with
        # onnxruntime's profiler (docs/deploy.md): decoding every anchor, padding the arrays to the
        # top-k and building full anchor grids cost about 4 ms of a 50 ms SCRFD-2.5G run.
        out = self.model(x)  # (export_onnx runs a float32 copy: no casts in the graph)
        scores = torch.cat(out.cls, 1).flatten(1).sigmoid()  # [B, N]
        top_s, top_i = _TopKAbove.apply(scores, self.pre_nms_topk, self.score_threshold)  # [B, K]
        centre, stride = self._anchor_points(x, out, top_i)  # [B, K, 2], [B, K, 1]
        dist = torch.cat(out.bbox, 1)
        d = torch.gather(dist, 1, top_i[..., None].expand(-1, -1, 4)) * stride
        x1y1 = centre - d[..., :2]
        x2y2 = torch.maximum(centre + d[..., 2:], x1y1)  # negative width/height -> empty box (fix_boxes)
        boxes = torch.cat([x1y1, x2y2], -1)  # [B, K, 4]
        # NMS applies the score threshold: the top-k of the scores above it are the ones above it in the top-k
        sel = _NMS.apply(boxes, top_s[:, None, :], self.max_detections, self.nms_threshold, self.score_threshold)
        bi, ki = sel[:, 0], sel[:, 2]
        nb, k = x.shape[0], top_s.shape[1]
        onehot = (bi[None, :] == torch.arange(nb, dtype=torch.int64)[:, None]).to(torch.int64)  # [B, K_sel]
        num = onehot.sum(1)
        first = torch.cumsum(num, 0) - num
        pos = torch.arange(bi.shape[0], dtype=torch.int64) - first[bi]
        flat = bi * k + ki
        rows = [boxes.reshape(-1, 4)[flat], top_s.reshape(-1)[flat][:, None]]
        if out.kps is not None:
            kp = torch.cat(out.kps, 1)  # [B, N, 10]
            n = kp.shape[1]
            kp = kp.reshape(-1, 10)[bi * n + top_i.reshape(-1)[flat]]
            rows.append(kp * stride.reshape(-1, 1)[flat] + centre.reshape(-1, 2)[flat].repeat(1, 5))
        picked = torch.cat(rows, 1)
        dim = 15 if out.kps is not None else 5
        det = x.new_zeros((nb * self.max_detections, dim))  # (picked may be empty)
        det = det.index_put((bi * self.max_detections + pos,), picked)
        return det.reshape(nb, self.max_detections, dim), num


class _TopKAbove(torch.autograd.Function):
    """The ``k`` best of ``scores [B, N]`` per image (sorted, largest), cut to the number of scores
    above ``threshold`` in the whole batch (at least 1, at most N): that many cover every image's
    scores above the threshold, which are all that NMS keeps, so the result after NMS is that of the
    full top-k. Written to ONNX as one TopK whose k is computed in the graph (Greater, NonZero, Shape,
    Min, Max). A full top-5000 sort of the 16,800 anchors of a 640x640 image cost 0.6 ms; the usual
    few hundred candidates above 0.5 cost a few microseconds."""

    @staticmethod
    def forward(ctx, scores, k: int, threshold: float):
        above = int((scores > threshold).sum())
        return torch.topk(scores, max(1, min(k, above, scores.shape[1])), dim=1, largest=True, sorted=True)

    @staticmethod
    def symbolic(g, scores, k: int, threshold: float):
        def const(v, dtype=torch.int64):
            return g.op("Constant", value_t=torch.tensor([v], dtype=dtype))

        def as_double(v):  # Min / Max take integers only from opset 12; doubles hold these counts exactly
            return g.op("Cast", v, to_i=11)  # 11 = TensorProto.DOUBLE

        above = g.op("NonZero", g.op("Greater", scores, const(threshold, torch.float32)))  # [2, count]
        count = g.op("Gather", g.op("Shape", above), const(1), axis_i=0)
        n = g.op("Gather", g.op("Shape", scores), const(1), axis_i=0)
        kk = g.op("Max", g.op("Min", as_double(count), as_double(n), const(k, torch.float64)), const(1, torch.float64))
        return g.op("TopK", scores, g.op("Cast", kk, to_i=7), axis_i=1, largest_i=1, sorted_i=1, outputs=2)  # 7 = INT64


def add_postprocess(model: nn.Module, **kwargs) -> nn.Module:
    """``model`` wrapped with in-graph post-processing (:class:`PostProcessed`)."""
    return PostProcessed(model, **kwargs)


TARGETS = ("pyddsar", "insightface")
INSIGHTFACE_OPSET = 11  # what insightface's detection/scrfd/tools/scrfd2onnx.py exports (and asserts)


def export_onnx(model: nn.Module, path, dynamic: bool = True, postprocess: bool = False, input_size=(640, 640),
                opset: int = None, verify: bool = True, atol: float = 1e-4, score_threshold: float = 0.02,
                nms_threshold: float = 0.45, pre_nms_topk: int = 5000, max_detections: int = 750,
                target: str = "pyddsar") -> str:
    """Write ``model`` (a pyddsar detector) to ``path``; returns the path.

    ``target="insightface"``: a file insightface's own ``SCRFD`` class (and so ``FaceAnalysis``) loads
    and runs unchanged, a drop-in for ``det_10g.onnx`` / ``det_500m.onnx``: the raw outputs below
    (no post-processing), opset 11 unless ``opset`` says otherwise, and after writing the file is read
    back by insightface's rules (:func:`pyddsar.models.onnx_import.read_layout`: 6 or 9 outputs by
    position, rank 3) and its graph must import as the same architecture. ``opset`` defaults to 17
    for ``target="pyddsar"``.

    ``postprocess=False``: the raw outputs of the module doc. ``postprocess=True``: outputs
    ``detections [B, max_detections, 5 or 15]`` and ``num_detections [B]`` (see :class:`PostProcessed`;
    the threshold / top-k / NMS parameters are baked into the graph). Input ``input.1`` is the
    *preprocessed* tensor [B, 3, H, W]: letterboxed, RGB, ``(x - 127.5) / 128``.
    ``dynamic``: batch, height and width are dynamic on the input and every output.
    ``input_size`` = (width, height) of the example input (multiples of 32). With ``verify`` the file is
    run with onnxruntime on random inputs (two batch sizes, and a second size when dynamic) and compared
    with torch (max abs difference <= ``atol``; with post-processing: the same counts and detections
    within ``max(atol, 1e-3)``), a ValueError otherwise.
    """
    if not isinstance(model, nn.Module) or not hasattr(model, "head"):
        raise ValueError(f"export_onnx needs a pyddsar detector model, got {type(model).__name__}")
    from .models import SCRFD

    if not isinstance(model, SCRFD):
        raise ValueError(f"export_onnx writes SCRFD-framework detectors (outputs score_8/16/32 ...); "
                         f"{type(model).__name__} (ASFD) has no ONNX layout yet: benchmark it with --runtime torch")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if target == "insightface":
        if postprocess:
            raise ValueError("target='insightface' writes the raw outputs insightface decodes itself; "
                             "postprocess=True is for pyddsar's own deployment (docs/deploy.md)")
        if tuple(model.strides) != (8, 16, 32) or model.num_anchors != 2:
            raise ValueError(f"insightface reads 6 / 9 outputs as strides 8, 16, 32 with 2 anchors; this model has "
                             f"strides {model.strides} and {model.num_anchors} anchors")
    if opset is None:
        opset = INSIGHTFACE_OPSET if target == "insightface" else 17
    opset = integer(opset, "opset", low=11, high=21)
    try:
        w, h = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be (width, height), got {input_size!r}") from None
    if w <= 0 or h <= 0 or w % 32 or h % 32:
        raise ValueError(f"input_size must be positive multiples of 32, got {input_size!r}")
    score_threshold = real(score_threshold, "score_threshold", low=0, high=1)
    nms_threshold = real(nms_threshold, "nms_threshold", low=0, high=1)
    pre_nms_topk = integer(pre_nms_topk, "pre_nms_topk", low=1)
    max_detections = integer(max_detections, "max_detections", low=1)
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise ValueError(f"output folder does not exist: {d}")
    m = copy.deepcopy(model).float().cpu().eval()
    if postprocess:
        wrapped = add_postprocess(m, score_threshold=score_threshold, nms_threshold=nms_threshold,
                                  pre_nms_topk=pre_nms_topk, max_detections=max_detections).eval()
        names = ["detections", "num_detections"]
    else:
        wrapped = RawOutputs(m).eval()
        names = output_names(bool(getattr(model, "use_kps", False)))
    x = torch.randn(1, 3, h, w)
    axes = None
    if dynamic:
        axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
        if postprocess:
            axes.update({"detections": {0: "batch"}, "num_detections": {0: "batch"}})
        else:
            axes.update({n: {0: "batch", 1: f"anchors_{n.split('_')[1]}"} for n in names})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(wrapped, (x,), path, input_names=[INPUT_NAME], output_names=names, dynamic_axes=axes,
                              opset_version=opset, do_constant_folding=True, dynamo=False)
    if verify:
        shapes = [(1, h, w)]
        if dynamic:
            shapes += [(2, h, w), (2, h + 32, w - 32 if w > 32 else w + 64)]
        verify_onnx(wrapped.eval(), path, shapes, atol)
    if target == "insightface":
        check_insightface_file(path, m)
    return path


def check_insightface_file(path, model) -> None:
    """ValueError unless ``path`` reads by insightface's loader rules as ``model``'s detector: 6 or 9
    outputs (keypoints as the model has them) of rank 3, each walked back through the graph to a
    predictor of its kind (score, bbox[, kps]) in insightface's order, strides 8, 16, 32; for SCRFD's
    own backbones the whole graph must also import as the same architecture (a searched DDSAR backbone
    is not recognised by the importer, so there the check stops at the head)."""
    from .models.onnx_graph import load_graph
    from .models.onnx_import import _analyse, _canonical, _config, _output_chain, read_layout

    g = load_graph(path)
    lay = read_layout(g)
    want = 9 if model.use_kps else 6
    if len(lay.output_names) != want or not lay.batched:
        raise ValueError(f"{path}: {len(lay.output_names)} outputs (batched {lay.batched}); insightface needs {want} "
                         "of rank 3 for this model")
    for i in range(want):
        _output_chain(g, i, lay.batched)
    if model.config.backbone in ("resnetv1e", "mobilenetv1"):
        got = _config(_analyse(g))
        if _canonical(got) != _canonical(model.config):
            raise ValueError(f"{path}: the written graph reads back as {got}, not as the exported {model.config}")


def match_detections(a: np.ndarray, b: np.ndarray, score_tol: float = 1e-3) -> float:
    """Worst difference between two detection sets ``[n, D]`` (rows ``x1 y1 x2 y2 score ...``) that hold
    the same detections possibly in another order among (near-)equal scores: each row of ``a`` is paired
    with the closest row of ``b`` whose score is within ``score_tol``. ``inf`` when the counts differ
    or a row has no partner."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.shape[0] == 0:
        return 0.0
    worst = 0.0
    for x, y in ((a, b), (b, a)):
        close = np.abs(x[:, None, 4] - y[None, :, 4]) <= score_tol
        diff = np.abs(x[:, None, :] - y[None, :, :]).max(-1)
        worst = max(worst, float(np.where(close, diff, np.inf).min(1).max()))
    return worst


def matched_fraction(a: np.ndarray, b: np.ndarray, tol: float = 1e-3, score_tol: float = 1e-3) -> float:
    """Share of the rows of ``a`` that have a row of ``b`` within ``tol`` (all columns) and a score
    within ``score_tol`` (1.0 for two empty sets)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape[0] == 0:
        return 1.0 if b.shape[0] == 0 else 0.0
    if b.shape[0] == 0:
        return 0.0
    close = np.abs(a[:, None, 4] - b[None, :, 4]) <= score_tol
    diff = np.abs(a[:, None, :] - b[None, :, :]).max(-1)
    return float((np.where(close, diff, np.inf).min(1) <= tol).mean())


def _match_batches(ref, got, counts_ref, counts_got, tol: float, min_fraction: float = 0.98) -> float:
    """Check post-processed outputs image by image; returns the worst share of unmatched rows.

    Float noise between runtimes (about 1e-5 on scores) can flip near-ties, and so which of two
    overlapping boxes of (almost) equal score survives NMS; a random-weight model on a random input has
    many such ties. So the check asks for counts within 1% (at least 1) and ``min_fraction`` of the
    detections matched within ``tol``, and zero padding after the last detection."""
    worst = 0.0
    for b in range(ref.shape[0]):
        n, m = int(counts_ref[b]), int(counts_got[b])
        if abs(n - m) > max(1, n // 100):
            raise ValueError(f"onnxruntime keeps {m} detections in image {b}, torch {n}")
        frac = min(matched_fraction(ref[b, :n], got[b, :m], tol), matched_fraction(got[b, :m], ref[b, :n], tol))
        if frac < min_fraction:
            raise ValueError(f"only {frac:.1%} of the detections of image {b} agree between onnxruntime and torch")
        if got.shape[1] > m and np.abs(got[b, m:]).max() > 0:
            raise ValueError(f"onnxruntime's detections of image {b} are not zero after the last one")
        worst = max(worst, 1.0 - frac)
    return worst


def verify_onnx(wrapped: nn.Module, path, shapes, atol: float = 1e-4) -> float:
    """Run ``path`` with onnxruntime and ``wrapped`` with torch on random inputs of ``shapes`` [(B, H, W)].
    Raw outputs: returns the max abs difference (ValueError over ``atol``). Post-processed outputs:
    returns the worst share of unmatched detections (see :func:`_match_batches`)."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover
        raise ValueError("verifying the export needs onnxruntime (pip install onnxruntime)") from None
    sess = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    post = isinstance(wrapped, PostProcessed)
    tol = max(atol, 1e-3) if post else atol
    worst = 0.0
    g = torch.Generator().manual_seed(0)
    for b, h, w in shapes:
        x = torch.randn(b, 3, h, w, generator=g)
        with torch.no_grad():
            ref = [t.numpy() for t in wrapped(x)]
        got = sess.run(None, {INPUT_NAME: x.numpy()})
        for r, o in zip(ref, got):
            if r.shape != o.shape:
                raise ValueError(f"onnxruntime output shape {o.shape} differs from torch {r.shape}")
        if post:
            worst = max(worst, _match_batches(ref[0], got[0], ref[1], got[1], tol))
        else:
            for r, o in zip(ref, got):
                worst = max(worst, float(np.abs(r - o).max()) if r.size else 0.0)
    if not post and worst > tol:
        raise ValueError(f"onnxruntime differs from torch by {worst:.3g} (> {tol})")
    return worst
