"""The RetinaNet-style ASFD baseline (SPEC section 6): P2..P7, one 1.5:1 anchor per location, IoU-0.4
matching and ASFD's test protocol.

Layout: backbone C2..C5 -> :class:`PyramidInputs` (1x1 laterals on C2..C5; P6 = 3x3/2 conv on C5,
P7 = 3x3/2 conv on ReLU(P6)) -> neck (:class:`FPN` top-down fusion, or an AutoFAE) ->
:class:`RetinaHead` shared over levels (class logits and box deltas).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from .._validate import int_at_least
from .autofe import _check_channels
from .slicing import SlicedConv2d

STRIDES: Tuple[int, ...] = (4, 8, 16, 32, 64, 128)
ANCHOR_SCALE = 4.0  # anchor side = 4 x stride
ANCHOR_RATIO = 1.5  # height : width
MATCH_IOU = 0.4
BOX_STDS = (0.1, 0.1, 0.2, 0.2)


@dataclass(frozen=True)
class InferenceProtocol:
    """Inference post-processing: scores over ``score_threshold``, the ``pre_nms_topk`` best, NMS at
    IoU ``nms_threshold``, at most ``max_detections`` kept (the names of
    :class:`pyddsar.model_file.Preprocessing`; ``pre_nms_top_k`` and ``nms_iou`` are deprecated aliases)."""

    score_threshold: float = 0.05
    pre_nms_topk: int = 2000
    nms_threshold: float = 0.4
    max_detections: int = 750

    @property
    def pre_nms_top_k(self) -> int:
        warnings.warn("InferenceProtocol.pre_nms_top_k is deprecated; use pre_nms_topk", DeprecationWarning, stacklevel=2)
        return self.pre_nms_topk

    @property
    def nms_iou(self) -> float:
        warnings.warn("InferenceProtocol.nms_iou is deprecated; use nms_threshold", DeprecationWarning, stacklevel=2)
        return self.nms_threshold


ASFD_TEST_PROTOCOL = InferenceProtocol()


# ----------------------------------------------------------------------------------------------
# anchors, matching, box coding


def feature_sizes(image_size: Tuple[int, int], strides: Sequence[int] = STRIDES) -> List[Tuple[int, int]]:
    """``(h, w)`` of each level for an image of ``(height, width)``: ``ceil(side / stride)`` (the size
    of a chain of stride-2 layers with "same" padding)."""
    if len(image_size) != 2 or any(not isinstance(s, int) or s < 1 for s in image_size):
        raise ValueError(f"image_size must be (height, width) positive ints, got {image_size!r}")
    return [(-(-image_size[0] // s), -(-image_size[1] // s)) for s in strides]


def asfd_anchors(
    sizes: Sequence[Tuple[int, int]],
    strides: Sequence[int] = STRIDES,
    scale: float = ANCHOR_SCALE,
    ratio: float = ANCHOR_RATIO,
    offset: float = 0.0,
    dtype=torch.float32,
    device=None,
) -> torch.Tensor:
    """Anchors ``[N, 4]`` (x1, y1, x2, y2), one per location, ordered by level, then row, then column.

    The anchor at (x, y) of a level with stride s is centred at ``((x + offset) * s, (y + offset) * s)``
    (offset 0: no half-cell shift, as the other pyddsar anchors), has area ``(scale * s) ** 2`` and
    height / width = ``ratio``: ``w = scale * s / sqrt(ratio)``, ``h = scale * s * sqrt(ratio)``.
    """
    if len(sizes) != len(strides):
        raise ValueError(f"{len(sizes)} feature sizes for {len(strides)} strides")
    if not (scale > 0 and ratio > 0):
        raise ValueError("scale and ratio must be positive")
    out = []
    for (h, w), s in zip(sizes, strides):
        if h < 0 or w < 0 or s <= 0:
            raise ValueError(f"bad level: size {(h, w)}, stride {s}")
        ys = (torch.arange(h, dtype=torch.float64) + offset) * s
        xs = (torch.arange(w, dtype=torch.float64) + offset) * s
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        hw = scale * s / math.sqrt(ratio) / 2
        hh = scale * s * math.sqrt(ratio) / 2
        out.append(torch.stack([cx - hw, cy - hh, cx + hw, cy + hh], dim=-1).reshape(-1, 4))
    return torch.cat(out).to(dtype=dtype, device=device)


def _first_argmax(x: torch.Tensor, dim: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Max and the lowest index attaining it along ``dim`` (deterministic tie-break)."""
    best = x.max(dim=dim, keepdim=True).values
    n = x.shape[dim]
    shape = [1] * x.dim()
    shape[dim] = n
    idx = torch.arange(n, device=x.device).view(shape).expand_as(x)
    idx = torch.where(x == best, idx, torch.full_like(idx, n)).min(dim=dim).values
    return best.squeeze(dim), idx


def match_anchors(
    anchors: torch.Tensor,
    gt_boxes: torch.Tensor,
    iou_threshold: float = MATCH_IOU,
    force_best: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """IoU matching, no ignore zone: ``(assigned int64 [N], max_iou float32 [N])``.

    ``assigned`` is 0 for a negative and ``k + 1`` for face k. An anchor whose best IoU is
    ``>= iou_threshold`` goes to its best face (ties: the lower face index). With ``force_best``, each
    face with a positive best IoU also claims its best anchor (ties: the lower anchor index), faces
    in index order, a later face overriding an earlier one on a shared anchor.
    """
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold!r}")
    iou = ops.box_iou(anchors, gt_boxes)  # validates shapes and values
    n, m = iou.shape
    assigned = torch.zeros(n, dtype=torch.int64, device=anchors.device)
    if m == 0 or n == 0:
        return assigned, torch.zeros(n, dtype=torch.float32, device=anchors.device)
    max_iou, best_gt = _first_argmax(iou, dim=1)
    assigned = torch.where(max_iou >= iou_threshold, best_gt + 1, assigned)
    if force_best:
        gt_best, best_anchor = _first_argmax(iou, dim=0)
        for k in range(m):
            if float(gt_best[k]) > 0:
                assigned[best_anchor[k]] = k + 1
    return assigned, max_iou


def encode_boxes(anchors: torch.Tensor, boxes: torch.Tensor, stds: Sequence[float] = BOX_STDS) -> torch.Tensor:
    """RetinaNet deltas ``(dx, dy, dw, dh) / stds`` of ``boxes`` relative to ``anchors`` (both [N, 4])."""
    if anchors.shape != boxes.shape or anchors.dim() != 2 or anchors.shape[-1] != 4:
        raise ValueError("anchors and boxes must both be [N, 4]")
    aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ax, ay = anchors[:, 0] + 0.5 * aw, anchors[:, 1] + 0.5 * ah
    bw, bh = (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-6), (boxes[:, 3] - boxes[:, 1]).clamp(min=1e-6)
    bx, by = boxes[:, 0] + 0.5 * bw, boxes[:, 1] + 0.5 * bh
    d = torch.stack([(bx - ax) / aw, (by - ay) / ah, torch.log(bw / aw), torch.log(bh / ah)], dim=1)
    return d / d.new_tensor(stds)


def decode_boxes(anchors: torch.Tensor, deltas: torch.Tensor, stds: Sequence[float] = BOX_STDS) -> torch.Tensor:
    """Inverse of :func:`encode_boxes` (``dw``, ``dh`` clamped at log(1000 / 16))."""
    if deltas.shape[-1] != 4 or anchors.shape[-1] != 4:
        raise ValueError("anchors and deltas must end with 4")
    d = deltas * deltas.new_tensor(stds)
    aw, ah = anchors[..., 2] - anchors[..., 0], anchors[..., 3] - anchors[..., 1]
    ax, ay = anchors[..., 0] + 0.5 * aw, anchors[..., 1] + 0.5 * ah
    lim = math.log(1000.0 / 16)
    cx, cy = ax + d[..., 0] * aw, ay + d[..., 1] * ah
    w, h = aw * d[..., 2].clamp(max=lim).exp(), ah * d[..., 3].clamp(max=lim).exp()
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def asfd_postprocess(
    boxes: torch.Tensor, scores: torch.Tensor, protocol: InferenceProtocol = ASFD_TEST_PROTOCOL
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's detections by ASFD's protocol: ``(boxes, scores, indices)`` by decreasing score."""
    return ops.postprocess(
        boxes,
        scores,
        score_threshold=protocol.score_threshold,
        pre_nms_topk=protocol.pre_nms_topk,
        nms_threshold=protocol.nms_threshold,
        max_detections=protocol.max_detections,
    )


# ----------------------------------------------------------------------------------------------
# modules


class PyramidInputs(nn.Module):
    """C2..C5 -> six ``channels``-wide maps for P2..P7."""

    def __init__(self, in_channels: Sequence[int], channels: int):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"expected the widths of C2..C5 (4 values), got {list(in_channels)}")
        _check_channels(channels)
        self.in_channels = list(in_channels)
        self.lateral = nn.ModuleList(SlicedConv2d(c, channels, 1) for c in in_channels)
        self.p6 = SlicedConv2d(in_channels[-1], channels, 3, stride=2, padding=1)
        self.p7 = SlicedConv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        if len(feats) != 4:
            raise ValueError(f"expected C2..C5 (4 maps), got {len(feats)}")
        out = [conv(f) for conv, f in zip(self.lateral, feats)]
        p6 = self.p6(feats[-1])
        return out + [p6, self.p7(torch.relu(p6))]


class FPN(nn.Module):
    """Top-down fusion (nearest upsampling + add, coarsest first) followed by a 3x3 conv per level."""

    def __init__(self, channels: int, num_levels: int = 6):
        super().__init__()
        self.num_levels = int_at_least(num_levels, "num_levels")
        self.smooth = nn.ModuleList(SlicedConv2d(channels, channels, 3, padding=1) for _ in range(num_levels))

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        if len(feats) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} maps, got {len(feats)}")
        x = list(feats)
        for lvl in range(self.num_levels - 2, -1, -1):
            x[lvl] = x[lvl] + F.interpolate(x[lvl + 1], size=x[lvl].shape[-2:], mode="nearest")
        return [conv(f) for conv, f in zip(self.smooth, x)]


class RetinaHead(nn.Module):
    """Shared head: class and box towers of ``num_convs`` 3x3 conv + ReLU, then 3x3 predictors.

    ``depth`` (default ``num_convs``) is the number of tower convs used; the supernet lowers it.
    Returns ``(logits [B, N, 1], deltas [B, N, 4])`` in anchor order (level, row, column, anchor).
    """

    def __init__(self, channels: int, num_convs: int = 4, num_anchors: int = 1, prior: float = 0.01):
        super().__init__()
        _check_channels(channels)
        self.num_convs = int_at_least(num_convs, "num_convs", low=0)
        self.num_anchors = int_at_least(num_anchors, "num_anchors")
        self.depth = num_convs
        self.cls_convs = nn.ModuleList(SlicedConv2d(channels, channels, 3, padding=1) for _ in range(num_convs))
        self.box_convs = nn.ModuleList(SlicedConv2d(channels, channels, 3, padding=1) for _ in range(num_convs))
        self.cls_out = SlicedConv2d(channels, num_anchors, 3, padding=1, slice_out=False)
        self.box_out = SlicedConv2d(channels, 4 * num_anchors, 3, padding=1, slice_out=False)
        nn.init.constant_(self.cls_out.bias, -math.log((1 - prior) / prior))

    def forward(self, feats: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= self.depth <= self.num_convs:
            raise ValueError(f"depth must be in [0, {self.num_convs}], got {self.depth}")
        logits, deltas = [], []
        a = self.num_anchors
        for f in feats:
            c = b = f
            for i in range(self.depth):
                c = torch.relu(self.cls_convs[i](c))
                b = torch.relu(self.box_convs[i](b))
            lo, de = self.cls_out(c), self.box_out(b)
            n, _, h, w = lo.shape
            logits.append(lo.view(n, a, 1, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 1))
            deltas.append(de.view(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
        return torch.cat(logits, 1), torch.cat(deltas, 1)


class ASFDDetector(nn.Module):
    """Backbone -> PyramidInputs -> neck -> RetinaHead.

    ``forward(images)`` returns ``{"logits": [B, N, 1], "deltas": [B, N, 4], "sizes": [(h, w)] * 6}``;
    :meth:`anchors` gives the matching ``[N, 4]`` anchors and :meth:`predict` the post-processed
    detections.
    """

    def __init__(
        self,
        backbone: nn.Module,
        backbone_channels: Sequence[int],
        neck: Union[str, nn.Module] = "fpn",
        channels: int = 256,
        head_convs: int = 4,
        protocol: InferenceProtocol = ASFD_TEST_PROTOCOL,
    ):
        super().__init__()
        self.backbone = backbone
        self.inputs = PyramidInputs(backbone_channels, channels)
        if isinstance(neck, str):
            if neck != "fpn":
                raise ValueError(f"neck must be 'fpn' or an nn.Module, got {neck!r}")
            neck = FPN(channels, len(STRIDES))
        elif not isinstance(neck, nn.Module):
            raise ValueError(f"neck must be 'fpn' or an nn.Module, got {type(neck).__name__}")
        self.neck = neck
        self.head = RetinaHead(channels, head_convs)
        self.protocol = protocol
        self.neck_kwargs: Dict[str, object] = {}
        self.config = None  # an ASFDConfig when built from one (build_asfd): then it can be saved

    use_kps = False  # no landmark branch

    def features(self, images: torch.Tensor) -> List[torch.Tensor]:
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise ValueError("images must be a [B, 3, H, W] tensor")
        return self.neck(self.inputs(self.backbone(images)), **self.neck_kwargs)

    def forward(self, images: torch.Tensor) -> Dict[str, object]:
        feats = self.features(images)
        logits, deltas = self.head(feats)
        return {"logits": logits, "deltas": deltas, "sizes": [tuple(f.shape[-2:]) for f in feats]}

    @staticmethod
    def anchors(sizes, device=None) -> torch.Tensor:
        return asfd_anchors(sizes, device=device)

    def predict_raw(self, images: torch.Tensor):
        """Forward and decode, as :meth:`pyddsar.models.SCRFD.predict_raw`: ``RawPredictions`` with
        sigmoid ``scores`` [B, N], ``boxes`` [B, N, 4] in input pixels and ``kps`` None (the
        :class:`pyddsar.Detector` path)."""
        from ..models.detector import RawPredictions

        out = self.forward(images)
        anchors = self.anchors(out["sizes"], device=images.device)
        boxes = decode_boxes(anchors, out["deltas"].float()).to(out["deltas"].dtype)
        return RawPredictions(torch.sigmoid(out["logits"][..., 0]), boxes, None)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Per image ``(boxes [K, 4], scores [K])`` after :func:`asfd_postprocess`."""
        out = self.forward(images)
        anchors = self.anchors(out["sizes"], device=images.device)
        results = []
        for lo, de in zip(out["logits"], out["deltas"]):
            boxes = decode_boxes(anchors, de.float())
            b, s, _ = asfd_postprocess(boxes, torch.sigmoid(lo[:, 0].float()), self.protocol)
            results.append((b, s))
        return results
