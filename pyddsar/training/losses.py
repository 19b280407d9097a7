"""SCRFD's losses (SPEC section 4): Quality Focal Loss, DIoU loss, smooth-L1 for keypoints.

Each returns a sum; the caller divides by its normaliser (number of positives for QFL, the sum of
the quality weights for DIoU), as SCRFD does, so that batches with few faces are not over-weighted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def quality_focal_loss(logits: torch.Tensor, quality: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Sum over anchors of BCE(sigmoid(logit), q) * |q - sigmoid(logit)|**beta (Li et al., GFL).

    logits: [N] raw scores of the face class; quality: [N] targets in [0, 1] (the IoU of the decoded
    box with its face for positives, 0 for negatives). Ignored anchors must be removed by the caller.
    """
    if logits.shape != quality.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and quality {tuple(quality.shape)} must have the same shape")
    prob = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, quality, reduction="none")
    return (bce * (quality - prob).abs().pow(beta)).sum()


def diou_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor = None, eps: float = 1e-7) -> torch.Tensor:
    """Sum of weight * (1 - IoU + centre distance**2 / enclosing diagonal**2) over aligned box pairs
    [N, 4] (x1, y1, x2, y2). Scale-invariant, so pixels or stride units give the same loss."""
    if pred.shape != target.shape or pred.ndim != 2 or pred.shape[-1] != 4:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be [N, 4]")
    iou = aligned_iou(pred, target, eps)
    enclose = torch.max(pred[:, 2:], target[:, 2:]) - torch.min(pred[:, :2], target[:, :2])
    diag = enclose.pow(2).sum(dim=1) + eps
    centre = ((pred[:, :2] + pred[:, 2:]) - (target[:, :2] + target[:, 2:])).pow(2).sum(dim=1) / 4
    loss = 1 - iou + centre / diag
    if weight is not None:
        loss = loss * weight
    return loss.sum()


def smooth_l1_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, beta: float = 1.0 / 9.0) -> torch.Tensor:
    """Sum of weight * smooth-L1(pred - target) (quadratic below beta), elementwise."""
    if pred.shape != target.shape or pred.shape != weight.shape:
        raise ValueError("pred, target and weight must have the same shape")
    diff = (pred - target).abs()
    loss = torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
    return (loss * weight).sum()


def aligned_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of aligned box pairs [N, 4] -> [N] (the QFL quality target)."""
    lt = torch.max(a[:, :2], b[:, :2])
    rb = torch.min(a[:, 2:], b[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])).clamp(min=0)
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).clamp(min=0)
    return inter / (area_a + area_b - inter + eps)
