"""The detection loss of SCRFD (SPEC section 4) over a batch: QFL + 2 x DIoU (+ 0.1 x keypoints).

Positives and ignored anchors come from ATSS (targets.py). Boxes and keypoints are compared in
stride units, as SCRFD does (mmdet/models/dense_heads/scrfd_head.py `loss_single`, `loss`):

- QFL, summed over the anchors that are not ignored, divided by the positives averaged over the
  processes (`reduce_mean(num_total_pos)`, at least 1);
- DIoU of each positive weighted by its predicted score (the sigmoid, detached), summed, times 2,
  divided by the score weights summed over the batch and averaged over the processes
  (`avg_factor = reduce_mean(sum(weight_targets))`);
- smooth-L1 (beta 1/9) of the keypoint offsets of each positive whose face has landmarks, weighted by
  the same predicted score, summed over the ten coordinates, times 0.1, divided by the DIoU's factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .losses import aligned_iou, diou_loss, quality_focal_loss, smooth_l1_loss
from .targets import AnchorSet, ImageTargets


@dataclass
class LossTerms:
    total: torch.Tensor
    cls: torch.Tensor
    box: torch.Tensor
    kps: torch.Tensor
    num_pos: int


def detection_loss(outputs, anchors: AnchorSet, targets: Sequence[ImageTargets], box_weight: float = 2.0,
                   kps_weight: float = 0.1,
                   reduce_mean: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> LossTerms:
    """outputs: the model's HeadOutputs (cls logits, bbox distances and kps in stride units, per level).
    reduce_mean: averages a scalar tensor over the processes of distributed training (SCRFD's
    `reduce_mean`); the normalisers pass through it. None: this process alone."""
    cls = torch.cat(list(outputs.cls), dim=1)[..., 0]
    bbox = torch.cat(list(outputs.bbox), dim=1)
    if cls.shape[1] != anchors.centers.shape[0]:
        raise ValueError(f"the model gives {cls.shape[1]} anchors but the anchor set has {anchors.centers.shape[0]}")
    if len(targets) != cls.shape[0]:
        raise ValueError(f"{len(targets)} targets for a batch of {cls.shape[0]}")
    assigned = torch.stack([t.assigned for t in targets])
    pos = assigned > 0
    b_idx, a_idx = pos.nonzero(as_tuple=True)
    num_pos = int(b_idx.numel())
    average = reduce_mean or (lambda t: t)
    norm = max(float(average(torch.tensor(float(num_pos), device=cls.device))), 1.0)

    stride = anchors.strides.to(bbox)
    centers = anchors.centers.to(bbox) / stride[:, None]
    c = centers[a_idx]
    dist = bbox[b_idx, a_idx]
    pred_boxes = torch.cat([c - dist[:, :2], c + dist[:, 2:]], dim=1)
    gt_boxes = torch.stack([t.boxes for t in targets]).to(bbox)[b_idx, a_idx] / stride[a_idx, None]

    quality = torch.zeros_like(cls)
    quality[b_idx, a_idx] = aligned_iou(pred_boxes.detach(), gt_boxes).clamp(0, 1)
    valid = assigned >= 0
    loss_cls = quality_focal_loss(cls[valid], quality[valid]) / norm

    zero = bbox.sum() * 0.0  # keeps every output in the graph (DDP needs all parameters used)
    weight = cls.detach().sigmoid()[b_idx, a_idx]  # SCRFD's weight_targets (0 positives: an empty sum)
    # every process takes part in reduce_mean, also one whose batch has no positive
    avg_factor = float(average(weight.sum().float().reshape(())))
    loss_box = box_weight * diou_loss(pred_boxes, gt_boxes, weight) / avg_factor if num_pos else zero
    loss_kps = zero
    if outputs.kps is not None:
        kps = torch.cat(list(outputs.kps), dim=1)
        loss_kps = loss_kps + kps.sum() * 0.0
        if num_pos and targets[0].landmarks is not None:
            lm = torch.stack([t.landmarks for t in targets]).to(kps)[b_idx, a_idx] / stride[a_idx, None, None]
            has = torch.stack([t.landmark_weight for t in targets]).to(kps)[b_idx, a_idx]
            pred = c[:, None, :] + kps[b_idx, a_idx].view(-1, 5, 2)
            w = (has * weight)[:, None, None].expand_as(pred)  # pos_kps_weights: landmarks x score
            lm = torch.where(w > 0, lm, pred.detach())  # faces without landmarks: no finite target needed
            loss_kps = kps_weight * smooth_l1_loss(pred, lm, w) / avg_factor
    total = loss_cls + loss_box + loss_kps
    return LossTerms(total, loss_cls.detach(), loss_box.detach(), loss_kps.detach(), num_pos)
