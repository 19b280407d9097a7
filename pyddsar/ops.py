"""Detection operators: anchors, box coding, IoU, NMS, post-processing and ATSS assignment.

The kernels are native (C++ in ``csrc/ops/``, CUDA in ``cuda/``) and take raw pointers; this module
registers them as PyTorch operators with :mod:`torch.library` (``torch.ops.pyddsar.*``, each with a
fake implementation for tracing / ``torch.compile``) and calls them like torch ops on CPU or CUDA
tensors. CUDA kernels run on torch's current stream of the inputs' device.

Conventions
-----------
* Boxes are ``(x1, y1, x2, y2)`` rows of an ``[N, 4]`` float32 or float16 tensor. float16 inputs are
  computed in float32 (upcast here); box-valued results come back in the input dtype, IoUs are
  float32, indices int64.
* Every function checks its inputs and raises :class:`ValueError` saying what is wrong: a non-tensor,
  a wrong shape, a dtype other than float16/float32, tensors of different dtypes or devices,
  NaN or infinite coordinates, boxes with ``x2 < x1`` or ``y2 < y1`` (NMS and ATSS), negative or
  out-of-range thresholds. Empty inputs are valid and give empty results. Boxes of zero width or
  height are valid: their IoU with anything is 0 (NMS: they never suppress and are never suppressed).
* Checking values (finiteness, ``x2 >= x1``) of CUDA tensors costs one device synchronisation.
"""

from __future__ import annotations

import math
import warnings
from typing import List, Optional, Sequence, Tuple

import torch
from torch.library import custom_op

from . import _core
from ._validate import integer, real

__all__ = [
    "anchors",
    "anchor_centers",
    "num_anchors_per_level",
    "distance2bbox",
    "bbox2distance",
    "box_iou",
    "nms",
    "batched_nms",
    "postprocess",
    "atss_assign",
]

_FLOATS = (torch.float32, torch.float16)
_INSIDE = {"scrfd": 0, "mmdet": 1}


# ----------------------------------------------------------------------------------------------
# the operators: torch.library ops whose plain eager calls skip the dispatcher


def _plain(args) -> bool:
    """Eager call on plain tensors: no tracing, compiling, dispatch or torch-function mode, no tensor
    subclass (FakeTensor, FunctionalTensor, proxies) among the arguments."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    if torch._C._len_torch_dispatch_stack() or torch._C._is_torch_function_mode_enabled():
        return False
    return all(type(a) is torch.Tensor for a in args if isinstance(a, torch.Tensor))


class _NativeOp:
    """A ``torch.library.custom_op`` (``torch.ops.pyddsar.*``, with its fake implementation for
    tracing and ``torch.compile``) that, called eagerly on plain tensors, runs its kernel directly.
    The dispatcher path wraps each kernel in ``torch._dynamo.disable``, whose first use imports
    torch's whole compiler stack: 0.9-1.5 s on the first pyddsar op of every process."""

    def __init__(self, name: str, kernel):
        self.kernel = kernel
        self.op = custom_op(name, kernel, mutates_args=())

    def register_fake(self, fn):
        return self.op.register_fake(fn)

    def __call__(self, *args):
        device = _cuda_device(args)
        if device is not None and not _cuda_runs():
            # the CUDA kernels cannot run here (cuda_status says why): the CPU kernels, same results
            moved = tuple(_to(a, torch.device("cpu")) for a in args)
            return _to(self(*moved), device)
        return self.kernel(*args) if _plain(args) else self.op(*args)


def _cuda_device(args):
    for a in args:
        if isinstance(a, torch.Tensor) and a.device.type == "cuda":
            return a.device
        if isinstance(a, torch.device) and a.type == "cuda":
            return a
    return None


def _to(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, torch.device):
        return device
    if isinstance(value, tuple):
        return tuple(_to(v, device) for v in value)
    return value


_warned_cpu_fallback = False


def _cuda_runs() -> bool:
    """Whether pyddsar's CUDA kernels can run; warns once (or raises, with PYDDSAR_CUDA=strict) if not."""
    global _warned_cpu_fallback
    from .backends import cuda_status, cuda_strict

    status = cuda_status()
    if status.usable:
        return True
    if cuda_strict():
        raise ValueError(f"pyddsar's CUDA kernels cannot run: {status.reason} (PYDDSAR_CUDA=strict)")
    if not _warned_cpu_fallback:
        _warned_cpu_fallback = True
        warnings.warn(f"pyddsar's CUDA kernels cannot run ({status.reason}); its ops run CUDA tensors on the CPU "
                      "kernels (set PYDDSAR_CUDA=strict to make this an error)", RuntimeWarning, stacklevel=3)
    return False


def _native_op(name: str):
    return lambda kernel: _NativeOp(name, kernel)


# ----------------------------------------------------------------------------------------------
# checks shared by the operators


def _tensor(t, name: str, last: Optional[int] = None, ndim: Optional[int] = None, floating: bool = True):
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if floating and t.dtype not in _FLOATS:
        raise ValueError(f"{name} must be float32 or float16, got {t.dtype}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(t.shape)}")
    if last is not None and (t.dim() == 0 or t.shape[-1] != last):
        raise ValueError(f"{name} must have a last dimension of size {last}, got shape {tuple(t.shape)}")
    if t.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} must be on a CPU or CUDA device, got {t.device}")
    return t


def _same(tensors: Sequence[Tuple[torch.Tensor, str]], dtype: bool = True) -> None:
    (first, fname), rest = tensors[0], tensors[1:]
    for t, name in rest:
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {fname} is on {first.device}: put them on one device")
        if dtype and t.dtype != first.dtype:
            raise ValueError(f"{name} is {t.dtype} but {fname} is {first.dtype}: use one dtype")


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float32).contiguous()


def _check_values(t: torch.Tensor, name: str, boxes: bool) -> None:
    """Finite values and, for boxes, x2 >= x1 and y2 >= y1 (one sync for CUDA tensors)."""
    if t.numel() == 0:
        return
    bad_finite = ~torch.isfinite(t).all()
    if boxes:
        bad_order = (t[..., 2] < t[..., 0]).any() | (t[..., 3] < t[..., 1]).any()
        flags = torch.stack([bad_finite, bad_order]).tolist()
    else:
        flags = [bool(bad_finite.item()), False]
    if flags[0]:
        raise ValueError(f"{name} contains NaN or infinite values")
    if flags[1]:
        raise ValueError(f"{name} has boxes with x2 < x1 or y2 < y1")


def _cuda_core():
    if not hasattr(_core, "nms_cuda"):
        raise ValueError(
            "got CUDA tensors but this build of pyddsar has no CUDA kernels (rebuild with nvcc, "
            "PYDDSAR_WITH_CUDA=ON), or move the tensors to the CPU"
        )
    return _core


def _launch(t: torch.Tensor) -> Tuple[int, int]:
    """(device index, current stream handle) for a CUDA tensor."""
    return t.device.index, torch.cuda.current_stream(t.device).cuda_stream


# ----------------------------------------------------------------------------------------------
# anchors


def _levels(feature_sizes, strides, name_sizes="feature_sizes"):
    try:
        fs = [tuple(s) for s in feature_sizes]
    except TypeError:
        raise ValueError(f"{name_sizes} must be a sequence of (height, width) pairs, got {feature_sizes!r}") from None
    if any(len(s) != 2 for s in fs):
        raise ValueError(f"{name_sizes} must be a sequence of (height, width) pairs, got {feature_sizes!r}")
    heights = [integer(h, f"{name_sizes} height", low=0) for h, _ in fs]
    widths = [integer(w, f"{name_sizes} width", low=0) for _, w in fs]
    for v in heights + widths:
        if v > _MAX_FEATURE:
            raise ValueError(f"{name_sizes} must be at most {_MAX_FEATURE} per side, got {v}")
    strides = list(strides)
    if len(strides) != len(fs):
        raise ValueError(f"strides has {len(strides)} entries but {name_sizes} has {len(fs)} levels")
    return heights, widths, [integer(s, f"strides[{i}]", low=1, high=_MAX_FEATURE) for i, s in enumerate(strides)]


_MAX_FEATURE = 1 << 20  # per side and per stride, as the native anchors check (no int64 overflow)
_MAX_ANCHORS = (1 << 31) - 1


@_native_op("pyddsar::anchors")
def _anchors_op(
    heights: List[int], widths: List[int], strides: List[int], sizes: List[float], num_sizes: int, device: torch.device
) -> torch.Tensor:
    n = _core.anchor_count(heights, widths, num_sizes)
    out = torch.empty((n, 4), dtype=torch.float32, device=device)
    if n == 0:
        return out
    if out.device.type == "cuda":
        dev, stream = _launch(out)
        _cuda_core().anchors_cuda(heights, widths, strides, sizes, num_sizes, out.data_ptr(), dev, stream)
    else:
        _core.anchors_cpu(heights, widths, strides, sizes, num_sizes, out.data_ptr())
    return out


@_anchors_op.register_fake
def _(heights, widths, strides, sizes, num_sizes, device):
    n = sum(h * w for h, w in zip(heights, widths)) * num_sizes
    return torch.empty((n, 4), dtype=torch.float32, device=device)


@_native_op("pyddsar::anchor_centers")
def _anchor_centers_op(
    heights: List[int], widths: List[int], strides: List[int], num_anchors: int, device: torch.device
) -> torch.Tensor:
    n = _core.anchor_count(heights, widths, num_anchors)
    out = torch.empty((n, 2), dtype=torch.float32, device=device)
    if n == 0:
        return out
    if out.device.type == "cuda":
        dev, stream = _launch(out)
        _cuda_core().anchor_centers_cuda(heights, widths, strides, num_anchors, out.data_ptr(), dev, stream)
    else:
        _core.anchor_centers_cpu(heights, widths, strides, num_anchors, out.data_ptr())
    return out


@_anchor_centers_op.register_fake
def _(heights, widths, strides, num_anchors, device):
    n = sum(h * w for h, w in zip(heights, widths)) * num_anchors
    return torch.empty((n, 2), dtype=torch.float32, device=device)


def _device(device) -> torch.device:
    try:
        d = torch.device("cpu" if device is None else device)
    except (TypeError, RuntimeError) as e:
        raise ValueError(f"device must be a torch device or a string such as 'cpu' or 'cuda:0', got {device!r}") from e
    if d.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be a CPU or CUDA device, got {d}")
    if d.type == "cuda" and d.index is None:
        d = torch.device("cuda", torch.cuda.current_device())
    return d


def _out_dtype(dtype):
    if dtype not in _FLOATS:
        raise ValueError(f"dtype must be torch.float32 or torch.float16, got {dtype!r}")
    return dtype


def anchors(
    feature_sizes,
    strides=(8, 16, 32),
    base_sizes=(16, 64, 256),
    scales=(1.0, 2.0),
    *,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Square anchors in SCRFD's layout, ``[N, 4]`` (x1, y1, x2, y2).

    Level ``l`` has a ``feature_sizes[l] = (height, width)`` grid with stride ``strides[l]``; each
    location ``(x, y)`` has ``len(scales)`` square anchors of side ``base_sizes[l] * scale``, centred at
    ``(x * stride, y * stride)`` (no half-cell offset). Order: level, then row ``y``, then column ``x``,
    then the anchors of a location (adjacent). The defaults are SCRFD's: sides {16, 32} / {64, 128} /
    {256, 512} at strides 8 / 16 / 32.
    """
    heights, widths, strides = _levels(feature_sizes, strides)
    base_sizes, scales = list(base_sizes), list(scales)
    if len(base_sizes) != len(heights):
        raise ValueError(f"base_sizes has {len(base_sizes)} entries but there are {len(heights)} levels")
    if not scales:
        raise ValueError("scales must not be empty")
    sizes = []
    for b in base_sizes:
        for s in scales:
            v = float(b) * float(s)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"anchor sides base_size * scale must be positive and finite, got {b} * {s}")
            sizes.append(v)
    out = _anchors_op(heights, widths, strides, sizes, len(scales), _device(device))
    return out.to(_out_dtype(dtype))


def anchor_centers(feature_sizes, strides=(8, 16, 32), num_anchors: int = 2, *, device=None, dtype=torch.float32):
    """Centres ``[N, 2]`` of the anchors of :func:`anchors` (same order), each repeated ``num_anchors`` times."""
    heights, widths, strides = _levels(feature_sizes, strides)
    num_anchors = integer(num_anchors, "num_anchors", low=1, high=_MAX_ANCHORS)
    out = _anchor_centers_op(heights, widths, strides, num_anchors, _device(device))
    return out.to(_out_dtype(dtype))


def num_anchors_per_level(feature_sizes, num_anchors: int = 2) -> List[int]:
    """Anchors per level for :func:`anchors` / :func:`atss_assign`: ``height * width * num_anchors``."""
    heights, widths, _ = _levels(feature_sizes, [1] * len(list(feature_sizes)))
    return [h * w * int(num_anchors) for h, w in zip(heights, widths)]


# ----------------------------------------------------------------------------------------------
# box coding


@_native_op("pyddsar::distance2bbox")
def _distance2bbox_op(points: torch.Tensor, distances: torch.Tensor, max_shape: Optional[List[float]]) -> torch.Tensor:
    _check_values(points, "points", boxes=False)
    _check_values(distances, "distances", boxes=False)
    p, d = _f32(points), _f32(distances)
    n = p.numel() // 2
    out = torch.empty(d.shape, dtype=torch.float32, device=d.device)
    clamp = max_shape is not None
    mh, mw = (float(max_shape[0]), float(max_shape[1])) if clamp else (0.0, 0.0)
    if n:
        if d.device.type == "cuda":
            dev, stream = _launch(d)
            _cuda_core().distance2bbox_cuda(p.data_ptr(), d.data_ptr(), n, clamp, mh, mw, out.data_ptr(), dev, stream)
        else:
            _core.distance2bbox_cpu(p.data_ptr(), d.data_ptr(), n, clamp, mh, mw, out.data_ptr())
    return out.to(distances.dtype)


@_distance2bbox_op.register_fake
def _(points, distances, max_shape):
    return torch.empty_like(distances)


def _pair_shapes(points, other, other_name: str) -> None:
    _tensor(points, "points", last=2)
    _tensor(other, other_name, last=4)
    _same([(points, "points"), (other, other_name)])
    if points.shape[:-1] != other.shape[:-1]:
        raise ValueError(
            f"points {tuple(points.shape)} and {other_name} {tuple(other.shape)} must have the same leading shape"
        )


def distance2bbox(points: torch.Tensor, distances: torch.Tensor, max_shape=None) -> torch.Tensor:
    """Decode ``(l, t, r, b)`` distances from ``points`` into boxes ``(px - l, py - t, px + r, py + b)``.

    ``points [..., 2]``, ``distances [..., 4]`` (same leading shape, dtype and device). With
    ``max_shape = (height, width)`` the boxes are clamped to ``[0, width] x [0, height]``. Distances are
    in pixels: multiply the head's stride-unit outputs by the stride first.
    """
    _pair_shapes(points, distances, "distances")
    if max_shape is not None:
        try:
            mh, mw = (float(v) for v in max_shape)
        except (TypeError, ValueError):
            raise ValueError(f"max_shape must be (height, width), got {max_shape!r}") from None
        if not (math.isfinite(mh) and math.isfinite(mw) and mh >= 0 and mw >= 0):
            raise ValueError(f"max_shape must be non-negative and finite, got {max_shape!r}")
        max_shape = [mh, mw]
    return _distance2bbox_op(points, distances, max_shape)


@_native_op("pyddsar::bbox2distance")
def _bbox2distance_op(points: torch.Tensor, boxes: torch.Tensor, max_dis: float, eps: float) -> torch.Tensor:
    _check_values(points, "points", boxes=False)
    _check_values(boxes, "boxes", boxes=False)
    p, b = _f32(points), _f32(boxes)
    n = p.numel() // 2
    out = torch.empty(b.shape, dtype=torch.float32, device=b.device)
    if n:
        if b.device.type == "cuda":
            dev, stream = _launch(b)
            _cuda_core().bbox2distance_cuda(p.data_ptr(), b.data_ptr(), n, max_dis, eps, out.data_ptr(), dev, stream)
        else:
            _core.bbox2distance_cpu(p.data_ptr(), b.data_ptr(), n, max_dis, eps, out.data_ptr())
    return out.to(boxes.dtype)


@_bbox2distance_op.register_fake
def _(points, boxes, max_dis, eps):
    return torch.empty_like(boxes)


def bbox2distance(points: torch.Tensor, boxes: torch.Tensor, max_dis=None, eps: float = 0.1) -> torch.Tensor:
    """Encode boxes as distances ``(px - x1, py - y1, x2 - px, y2 - py)`` from ``points``.

    With ``max_dis`` the distances are clamped to ``[0, max_dis - eps]`` (mmdet's convention).
    """
    _pair_shapes(points, boxes, "boxes")
    if max_dis is None:
        md = -1.0
    else:
        md = real(max_dis, "max_dis", low=0, finite=False)
    e = real(eps, "eps", low=0, finite=False)
    if max_dis is not None and md - e < 0:
        raise ValueError(f"max_dis - eps must be non-negative, got {max_dis} - {eps}")
    return _bbox2distance_op(points, boxes, md, e)


# ----------------------------------------------------------------------------------------------
# IoU


@_native_op("pyddsar::box_iou")
def _box_iou_op(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    _check_values(boxes1, "boxes1", boxes=True)
    _check_values(boxes2, "boxes2", boxes=True)
    a, b = _f32(boxes1), _f32(boxes2)
    n, m = a.shape[0], b.shape[0]
    out = torch.empty((n, m), dtype=torch.float32, device=a.device)
    if n and m:
        if a.device.type == "cuda":
            dev, stream = _launch(a)
            _cuda_core().box_iou_cuda(a.data_ptr(), n, b.data_ptr(), m, out.data_ptr(), dev, stream)
        else:
            _core.box_iou_cpu(a.data_ptr(), n, b.data_ptr(), m, out.data_ptr())
    return out


@_box_iou_op.register_fake
def _(boxes1, boxes2):
    return boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]), dtype=torch.float32)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``[N, M]`` (float32): ``inter / max(union, 1e-6)`` (mmdet's formula)."""
    _tensor(boxes1, "boxes1", last=4, ndim=2)
    _tensor(boxes2, "boxes2", last=4, ndim=2)
    _same([(boxes1, "boxes1"), (boxes2, "boxes2")])
    return _box_iou_op(boxes1, boxes2)


# ----------------------------------------------------------------------------------------------
# NMS


#: The largest suppression mask CUDA NMS allocates (about 46,000 boxes); larger inputs are refused.
CUDA_NMS_MASK_BYTES = 256 << 20


def _nms_impl(boxes: torch.Tensor, scores: torch.Tensor, idxs: Optional[torch.Tensor], thr: float,
              max_keep: int = -1) -> torch.Tensor:
    if boxes.device.type == "cuda":  # the CPU kernel checks values itself, in the same words
        _check_values(boxes, "boxes", boxes=True)
        _check_values(scores, "scores", boxes=False)
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    b, s = _f32(boxes), _f32(scores)
    c = idxs.to(torch.int64).contiguous() if idxs is not None else None
    if b.device.type == "cuda":
        core = _cuda_core()
        order = torch.sort(s, descending=True, stable=True).indices
        sb = b[order].contiguous()
        sc = c[order].contiguous() if c is not None else None
        words = (n + 63) // 64
        need = (n * words + words) * 8
        if need > CUDA_NMS_MASK_BYTES:  # the suppression mask grows as n^2 / 8 bytes
            raise ValueError(f"CUDA NMS of {n:,} boxes needs a {need / 2**30:.2f} GiB suppression mask (limit "
                             f"{CUDA_NMS_MASK_BYTES / 2**30:.2f} GiB): keep the top-scoring boxes first (pre_nms_topk) "
                             "or run it on the CPU")
        mask = torch.empty(n * words + words, dtype=torch.int64, device=b.device)  # mask rows + removed set
        keep = torch.empty(n, dtype=torch.int64, device=b.device)
        count = torch.empty(1, dtype=torch.int64, device=b.device)
        dev, stream = _launch(b)
        core.nms_cuda(
            sb.data_ptr(), sc.data_ptr() if sc is not None else 0, n, thr,
            mask.data_ptr(), keep.data_ptr(), count.data_ptr(), dev, stream,
        )  # fmt: skip
        kept = order[keep[: int(count.item())]]
        return kept if max_keep < 0 else kept[:max_keep]
    keep = torch.empty(n, dtype=torch.int64)
    count = _core.nms_cpu(b.data_ptr(), s.data_ptr(), c.data_ptr() if c is not None else 0, n, thr, keep.data_ptr(),
                          max_keep)
    return keep[:count].clone()


@_native_op("pyddsar::nms")
def _nms_op(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, max_keep: int = -1) -> torch.Tensor:
    # max_keep >= 0 stops after that many kept boxes (the first max_keep of a full NMS, found sooner)
    return _nms_impl(boxes, scores, None, iou_threshold, max_keep)


@_nms_op.register_fake
def _(boxes, scores, iou_threshold, max_keep=-1):
    n = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((n,), dtype=torch.int64)


@_native_op("pyddsar::batched_nms")
def _batched_nms_op(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float,
                    max_keep: int = -1) -> torch.Tensor:
    return _nms_impl(boxes, scores, idxs, iou_threshold, max_keep)


@_batched_nms_op.register_fake
def _(boxes, scores, idxs, iou_threshold, max_keep=-1):
    n = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((n,), dtype=torch.int64)


#: Greedy NMS is quadratic in the worst case (measured on the CPU: 100,000 random boxes 2.4 s,
#: 300,000 21 s): more boxes are refused up front; keep the top-scoring ones first (pre_nms_topk).
NMS_MAX_BOXES = 300_000


def _nms_args(boxes, scores, iou_threshold, name: str = "iou_threshold"):
    _tensor(boxes, "boxes", last=4, ndim=2)
    _tensor(scores, "scores", ndim=1)
    _same([(boxes, "boxes"), (scores, "scores")])
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"boxes has {boxes.shape[0]} rows but scores has {scores.shape[0]} entries")
    if boxes.shape[0] > NMS_MAX_BOXES:
        raise ValueError(f"NMS of {boxes.shape[0]:,} boxes would take minutes (greedy NMS is quadratic; limit "
                         f"pyddsar.ops.NMS_MAX_BOXES = {NMS_MAX_BOXES:,}): keep the top-scoring boxes first (pre_nms_topk)")
    return real(iou_threshold, name, low=0.0, high=1.0)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; returns the kept indices (int64) by decreasing score.

    Boxes are visited by decreasing score (equal scores: lower index first, a stable order); a box is
    dropped when its IoU ``inter / (area1 + area2 - inter)`` with a kept box exceeds ``iou_threshold``
    (in [0, 1]). Same kept set as ``torchvision.ops.nms``, whose order among equal scores is unspecified.
    """
    thr = _nms_args(boxes, scores, iou_threshold)
    return _nms_op(boxes, scores, thr)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS within each category ``idxs`` (integer tensor ``[N]``): boxes of different categories never
    suppress each other. Returns kept indices (int64) by decreasing score, as :func:`nms`."""
    thr = _nms_args(boxes, scores, iou_threshold)
    _tensor(idxs, "idxs", ndim=1, floating=False)
    if idxs.dtype.is_floating_point or idxs.dtype.is_complex or idxs.dtype == torch.bool:
        raise ValueError(f"idxs must be an integer tensor, got {idxs.dtype}")
    _same([(boxes, "boxes"), (idxs, "idxs")], dtype=False)
    if idxs.shape[0] != boxes.shape[0]:
        raise ValueError(f"boxes has {boxes.shape[0]} rows but idxs has {idxs.shape[0]} entries")
    return _batched_nms_op(boxes, scores, idxs, thr)


def postprocess(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    score_threshold: float = 0.02,
    pre_nms_topk: Optional[int] = 5000,
    nms_threshold: float = 0.45,
    max_detections: Optional[int] = 750,
    idxs: Optional[torch.Tensor] = None,
    *,
    iou_threshold: Optional[float] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Detection post-process of one image (SCRFD's protocol by default, SPEC section 4).

    Keeps boxes with ``score > score_threshold``, then the ``pre_nms_topk`` best (None: all; equal
    scores by lower index), then NMS at IoU ``nms_threshold`` (per category with ``idxs``), then at
    most ``max_detections`` (None: all); the names of :class:`pyddsar.model_file.Preprocessing`
    (``iou_threshold`` is a deprecated alias of ``nms_threshold``). Returns ``(boxes, scores,
    indices)`` by decreasing score, ``indices`` (int64) pointing into the inputs.
    """
    if iou_threshold is not None:
        warnings.warn("postprocess(iou_threshold=) is deprecated; use nms_threshold", DeprecationWarning, stacklevel=2)
        nms_threshold = iou_threshold
    thr = _nms_args(boxes, scores, nms_threshold, "nms_threshold")
    st = real(score_threshold, "score_threshold", finite=False)
    k = integer(pre_nms_topk, "pre_nms_topk", low=0, allow_none=True)
    m = integer(max_detections, "max_detections", low=0, allow_none=True)
    if idxs is not None:
        _tensor(idxs, "idxs", ndim=1, floating=False)
        _same([(boxes, "boxes"), (idxs, "idxs")], dtype=False)
        if idxs.shape[0] != boxes.shape[0]:
            raise ValueError(f"boxes has {boxes.shape[0]} rows but idxs has {idxs.shape[0]} entries")
    _check_values(boxes, "boxes", boxes=True)
    _check_values(scores, "scores", boxes=False)
    cand = torch.nonzero(scores > st).flatten()
    order = torch.sort(scores[cand], descending=True, stable=True).indices
    cand = cand[order]
    if k is not None:
        cand = cand[:k]
    limit = -1 if m is None else m  # NMS stops once max_detections boxes are kept
    if idxs is None:
        keep = _nms_op(boxes[cand], scores[cand], thr, limit)
    else:
        keep = _batched_nms_op(boxes[cand], scores[cand], idxs[cand], thr, limit)
    index = cand[keep]
    return boxes[index], scores[index], index


# ----------------------------------------------------------------------------------------------
# ATSS


@_native_op("pyddsar::atss_assign")
def _atss_op(
    anchors: torch.Tensor,
    num_anchors_per_level: List[int],
    gt_boxes: torch.Tensor,
    topk: int,
    inside: str,
    ignore: Optional[torch.Tensor],
    ignore_iof_thr: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    if anchors.device.type == "cuda":  # the CPU kernel checks values itself, in the same words
        _check_values(anchors, "anchors", boxes=True)
        _check_values(gt_boxes, "gt_boxes", boxes=True)
        if ignore is not None:
            _check_values(ignore, "ignore", boxes=True)
    a, g = _f32(anchors), _f32(gt_boxes)
    ig = _f32(ignore) if ignore is not None and ignore.shape[0] else None
    n, m, k = a.shape[0], g.shape[0], (ig.shape[0] if ig is not None else 0)
    assigned = torch.empty(n, dtype=torch.int64, device=a.device)
    max_iou = torch.empty(n, dtype=torch.float32, device=a.device)
    if n == 0:
        return assigned, max_iou
    mode = _INSIDE[inside]
    ig_ptr = ig.data_ptr() if ig is not None else 0
    if a.device.type == "cuda":
        core = _cuda_core()
        flags = torch.empty(n, dtype=torch.uint8, device=a.device)
        best = torch.empty(n, dtype=torch.int64, device=a.device)
        dev, stream = _launch(a)
        core.atss_assign_cuda(
            a.data_ptr(), n, num_anchors_per_level, g.data_ptr(), m, ig_ptr, k, ignore_iof_thr, topk, mode,
            flags.data_ptr(), best.data_ptr(), assigned.data_ptr(), max_iou.data_ptr(), dev, stream,
        )  # fmt: skip
    else:
        _core.atss_assign_cpu(
            a.data_ptr(), n, num_anchors_per_level, g.data_ptr(), m, ig_ptr, k, ignore_iof_thr, topk, mode,
            assigned.data_ptr(), max_iou.data_ptr(),
        )  # fmt: skip
    return assigned, max_iou


@_atss_op.register_fake
def _(anchors, num_anchors_per_level, gt_boxes, topk, inside, ignore, ignore_iof_thr):
    n = anchors.shape[0]
    return anchors.new_empty((n,), dtype=torch.int64), anchors.new_empty((n,), dtype=torch.float32)


def atss_assign(
    anchors: torch.Tensor,
    num_anchors_per_level: Sequence[int],
    gt_boxes: torch.Tensor,
    topk: int = 9,
    inside: str = "scrfd",
    ignore: Optional[torch.Tensor] = None,
    ignore_iof_thr: float = -1.0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """ATSS assignment (Zhang et al. 2020; mmdet's ``ATSSAssigner``; SPEC section 4).

    For each face, the ``topk`` anchors per level whose centres are nearest the face centre (float32
    Euclidean distance; equal distances: lower anchor index) are the candidates; the IoU threshold is
    the mean plus the unbiased std of the candidates' IoUs (computed in float64; with a single
    candidate the std is undefined and nothing is positive, as in mmdet); a candidate is positive when
    its IoU reaches the threshold and its centre is inside the face: ``inside="scrfd"`` requires
    ``min(l, t, r, b) / sqrt(max(w * h, 1e-4)) > 0.001``, ``"mmdet"`` requires ``min(l, t, r, b) > 0.01``.
    An anchor positive for several faces goes to the highest IoU (equal IoUs: lower face index).

    ``ignore`` (``[K, 4]``): when ``ignore_iof_thr > 0`` and there are faces, anchors whose intersection
    over their own area with an ignore box exceeds ``ignore_iof_thr`` are never candidates and are
    marked -1 (mmdet's ``gt_bboxes_ignore``). As in mmdet's ATSSAssigner (default -1, which SCRFD's
    configs keep), a threshold <= 0 ignores nothing, and with no faces every anchor is negative.

    Returns ``(assigned, max_iou)``: ``assigned`` int64 ``[N]`` with 0 = negative, -1 = ignored,
    ``j + 1`` = face ``j``; ``max_iou`` float32 ``[N]``, the IoU with the assigned face (0 elsewhere).
    """
    _tensor(anchors, "anchors", last=4, ndim=2)
    _tensor(gt_boxes, "gt_boxes", last=4, ndim=2)
    pairs = [(anchors, "anchors"), (gt_boxes, "gt_boxes")]
    if ignore is not None:
        _tensor(ignore, "ignore", last=4, ndim=2)
        pairs.append((ignore, "ignore"))
    _same(pairs)
    try:
        levels = list(num_anchors_per_level)
    except TypeError:
        levels = None
    if isinstance(num_anchors_per_level, (str, bytes)) or levels is None:
        raise ValueError(f"num_anchors_per_level must be a sequence of integers, got {num_anchors_per_level!r}")
    levels = [integer(v, f"num_anchors_per_level[{i}]", low=0) for i, v in enumerate(levels)]
    if not levels:
        raise ValueError("num_anchors_per_level must be non-empty, got []")
    if sum(levels) != anchors.shape[0]:
        raise ValueError(f"num_anchors_per_level sums to {sum(levels)} but there are {anchors.shape[0]} anchors")
    topk = integer(topk, "topk", low=1, high=32)
    if inside not in _INSIDE:
        raise ValueError(f"inside must be 'scrfd' or 'mmdet', got {inside!r}")
    thr = real(ignore_iof_thr, "ignore_iof_thr", low=-1.0, high=1.0)
    if thr <= 0 or gt_boxes.shape[0] == 0:  # mmdet: `ignore_iof_thr > 0` and `num_gt == 0` (all negative)
        ignore = None
    return _atss_op(anchors, levels, gt_boxes, topk, inside, ignore, max(thr, 0.0))
