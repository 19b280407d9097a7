"""Losses of the RetinaNet-style ASFD detectors (SPEC section 6).

Classification: sigmoid focal loss (alpha 0.25, gamma 2) over every anchor. Boxes: smooth-L1 on the
encoded deltas (beta 1/9, as RetinaNet) or GIoU on the decoded boxes, over the positive anchors of
the IoU-0.4 matching (:func:`pyddsar.asfd.retinanet.match_anchors`). Both sums are divided by the
number of positives of the batch (at least 1).

Ignored faces (the ``ignore`` flags of :class:`pyddsar.data.FaceDataset`): matching runs against all
faces (no ignore zone, as the SPEC says); anchors that end up assigned to an ignored face are left
out of both losses instead of being trained as background or as faces (our choice).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

from ..training.losses import aligned_iou, smooth_l1_loss
from .retinanet import MATCH_IOU, decode_boxes, encode_boxes, match_anchors

BOX_LOSSES = ("smooth_l1", "giou")


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Sum over elements of ``-a_t (1 - p_t)**gamma log(p_t)`` with ``p = sigmoid(logits)``,
    ``p_t = p`` for targets 1 and ``1 - p`` for targets 0, ``a_t = alpha`` / ``1 - alpha``."""
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must have the same shape")
    if not 0 <= alpha <= 1 or gamma < 0:
        raise ValueError(f"need 0 <= alpha <= 1 and gamma >= 0, got alpha={alpha}, gamma={gamma}")
    targets = targets.to(logits.dtype)
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    a_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (a_t * (1 - p_t).pow(gamma) * ce).sum()


def giou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Sum of ``1 - GIoU`` over aligned box pairs [N, 4] (x1, y1, x2, y2);
    ``GIoU = IoU - (|C| - |A u B|) / |C|`` with C the smallest enclosing box."""
    if pred.shape != target.shape or pred.dim() != 2 or pred.shape[-1] != 4:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be [N, 4]")
    iou = aligned_iou(pred, target, eps)
    lt = torch.max(pred[:, :2], target[:, :2])
    rb = torch.min(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area_p = (pred[:, 2:] - pred[:, :2]).clamp(min=0).prod(dim=1)
    area_t = (target[:, 2:] - target[:, :2]).clamp(min=0).prod(dim=1)
    union = area_p + area_t - inter
    enclose = (torch.max(pred[:, 2:], target[:, 2:]) - torch.min(pred[:, :2], target[:, :2])).clamp(min=0).prod(dim=1)
    giou = iou - (enclose - union) / (enclose + eps)
    return (1 - giou).sum()


def asfd_loss(
    logits: torch.Tensor,
    deltas: torch.Tensor,
    anchors: torch.Tensor,
    gt_boxes: Sequence[torch.Tensor],
    gt_ignore: Optional[Sequence[torch.Tensor]] = None,
    box_loss: str = "smooth_l1",
    iou_threshold: float = MATCH_IOU,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> Dict[str, torch.Tensor]:
    """Batch loss of an :class:`~pyddsar.asfd.retinanet.ASFDDetector` output.

    ``logits`` [B, N, 1], ``deltas`` [B, N, 4], ``anchors`` [N, 4], ``gt_boxes[b]`` [M_b, 4] pixels
    (x1, y1, x2, y2), ``gt_ignore[b]`` [M_b] bool. Returns ``{"cls", "box", "loss", "num_pos"}``;
    ``cls`` and ``box`` are already divided by ``max(1, number of positives)``.
    """
    if box_loss not in BOX_LOSSES:
        raise ValueError(f"box_loss must be one of {BOX_LOSSES}, got {box_loss!r}")
    if logits.dim() != 3 or deltas.dim() != 3 or logits.shape[:2] != deltas.shape[:2]:
        raise ValueError("logits must be [B, N, 1] and deltas [B, N, 4]")
    if logits.shape[1] != anchors.shape[0]:
        raise ValueError(f"{logits.shape[1]} predictions for {anchors.shape[0]} anchors")
    if len(gt_boxes) != logits.shape[0]:
        raise ValueError(f"{len(gt_boxes)} ground-truth lists for a batch of {logits.shape[0]}")
    cls_terms, box_terms, num_pos = [], [], 0
    anchors = anchors.to(deltas.dtype)
    for b in range(logits.shape[0]):
        gt = gt_boxes[b].to(anchors.device, anchors.dtype).reshape(-1, 4)
        ign = (torch.zeros(len(gt), dtype=torch.bool, device=gt.device) if gt_ignore is None
               else gt_ignore[b].to(gt.device).bool().reshape(-1))
        assigned, _ = match_anchors(anchors.detach(), gt, iou_threshold)
        face = assigned - 1
        ignored = (assigned > 0) & ign[face.clamp(min=0)] if len(gt) else torch.zeros_like(assigned, dtype=torch.bool)
        pos = (assigned > 0) & ~ignored
        valid = ~ignored
        target = pos.to(logits.dtype)
        cls_terms.append(sigmoid_focal_loss(logits[b, valid, 0], target[valid], alpha, gamma))
        if pos.any():
            pa, pg, pd = anchors[pos], gt[face[pos]], deltas[b, pos]
            if box_loss == "smooth_l1":
                t = encode_boxes(pa, pg)
                box_terms.append(smooth_l1_loss(pd, t, torch.ones_like(t)))
            else:
                box_terms.append(giou_loss(decode_boxes(pa, pd), pg))
        num_pos += int(pos.sum())
    norm = float(max(1, num_pos))
    cls = torch.stack(cls_terms).sum() / norm
    box = torch.stack(box_terms).sum() / norm if box_terms else deltas.sum() * 0.0
    return {"cls": cls, "box": box, "loss": cls + box, "num_pos": torch.tensor(num_pos)}
