"""Export a pyddsar detector to ONNX with SCRFD's output layout, then check it with onnxruntime.

Outputs (in this order): ``score_8, score_16, score_32`` [B, N_l, 1] sigmoid scores, ``bbox_8, ...``
[B, N_l, 4] distances in stride units, and ``kps_8, ...`` [B, N_l, 10] in stride units when the model
has keypoints: the layout of insightface's SCRFD files (with a batch axis). Input ``input.1`` [B, 3, H, W]
normalised as :mod:`pyddsar.inference` does; batch, height and width are dynamic when ``dynamic``.
"""

from __future__ import annotations

import copy
import os
import warnings

import numpy as np
import torch
from torch import nn

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


def add_postprocess(model: nn.Module) -> nn.Module:
    """Hook for an in-graph post-process (decode + NMS), implemented in another issue."""
    raise NotImplementedError("export_onnx(postprocess=True) (in-graph decoding and NMS) is not implemented yet; "
                              "export raw outputs and post-process with pyddsar.ops.postprocess")


def export_onnx(model: nn.Module, path, dynamic: bool = True, postprocess: bool = False, input_size=(640, 640),
                opset: int = 17, verify: bool = True, atol: float = 1e-4) -> str:
    """Write ``model`` (a pyddsar detector) to ``path``; returns the path.

    ``input_size`` = (width, height) of the example input (multiples of 32). With ``verify`` the file is
    run with onnxruntime on a random input and compared with torch (max abs difference <= ``atol``), a
    ValueError otherwise.
    """
    if not isinstance(model, nn.Module) or not hasattr(model, "head"):
        raise ValueError(f"export_onnx needs a pyddsar detector model, got {type(model).__name__}")
    try:
        w, h = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be (width, height), got {input_size!r}") from None
    if w <= 0 or h <= 0 or w % 32 or h % 32:
        raise ValueError(f"input_size must be positive multiples of 32, got {input_size!r}")
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise ValueError(f"output folder does not exist: {d}")
    m = copy.deepcopy(model).float().cpu().eval()
    wrapped = (add_postprocess(m) if postprocess else RawOutputs(m)).eval()
    names = output_names(bool(getattr(model, "use_kps", False)))
    x = torch.randn(1, 3, h, w)
    axes = None
    if dynamic:
        axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
        axes.update({n: {0: "batch", 1: f"anchors_{n.split('_')[1]}"} for n in names})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (x,), path, input_names=[INPUT_NAME], output_names=names, dynamic_axes=axes,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    if verify:
        verify_onnx(wrapped.eval(), path, [(1, h, w)], atol)
    return path


def verify_onnx(wrapped: nn.Module, path, shapes, atol: float = 1e-4) -> float:
    """Max abs difference between onnxruntime and torch over inputs of ``shapes`` [(B, H, W)]."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover
        raise ValueError("verifying the export needs onnxruntime (pip install onnxruntime)") from None
    sess = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
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
            worst = max(worst, float(np.abs(r - o).max()) if r.size else 0.0)
    if worst > atol:
        raise ValueError(f"onnxruntime differs from torch by {worst:.3g} (> {atol})")
    return worst
