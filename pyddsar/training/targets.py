"""Training targets of an SCRFD-style detector for one image: ATSS over all anchors (SPEC section 4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .. import ops


@dataclass
class AnchorSet:
    """The anchors of an input size, in the model's output order."""

    boxes: torch.Tensor      # [N, 4] pixels, SCRFD's square anchors (what ATSS measures)
    centers: torch.Tensor    # [N, 2] pixels
    strides: torch.Tensor    # [N] the level stride of each anchor
    per_level: list          # anchors per level


def anchor_set(height: int, width: int, strides: Sequence[int] = (8, 16, 32), num_anchors: int = 2,
               base_sizes=(16, 64, 256), scales=(1.0, 2.0), device=None) -> AnchorSet:
    """Anchors of an input of `height` x `width` (multiples of the largest stride)."""
    if height % max(strides) or width % max(strides):
        raise ValueError(f"input size {width}x{height} must be a multiple of {max(strides)}")
    sizes = [(height // s, width // s) for s in strides]
    boxes = ops.anchors(sizes, strides, base_sizes, scales, device=device)
    centers = ops.anchor_centers(sizes, strides, num_anchors, device=device)
    per_level = ops.num_anchors_per_level(sizes, num_anchors)
    level_strides = torch.cat([torch.full((n,), float(s), device=boxes.device) for n, s in zip(per_level, strides)])
    return AnchorSet(boxes, centers, level_strides, per_level)


#: SCRFD's configs build `ATSSAssigner(topk=9)` (configs/scrfd/scrfd_*.py `train_cfg`), whose
#: ignore_iof_thr defaults to -1 (mmdet/core/bbox/assigners/atss_assigner.py:27): ignored faces are
#: left out of the targets, and the anchors around them stay negatives.
SCRFD_IGNORE_IOF_THR = -1.0


@dataclass
class ImageTargets:
    assigned: torch.Tensor       # [N] int64: 0 negative, -1 ignored, j + 1 face j
    boxes: torch.Tensor          # [N, 4] the assigned face's box (pixels; zeros elsewhere)
    landmarks: Optional[torch.Tensor]  # [N, 5, 2] pixels or None
    landmark_weight: Optional[torch.Tensor]  # [N] 1 where the assigned face has landmarks

    @property
    def positive(self) -> torch.Tensor:
        return self.assigned > 0


def image_targets(anchors: AnchorSet, gt_boxes: torch.Tensor, gt_landmarks: Optional[torch.Tensor] = None,
                  ignore_boxes: Optional[torch.Tensor] = None, topk: int = 9,
                  with_landmarks: bool = False, ignore_iof_thr: float = SCRFD_IGNORE_IOF_THR) -> ImageTargets:
    """ATSS targets for one image. gt_boxes [K, 4] pixels; gt_landmarks [K, 5, 2] (NaN where a
    face has none) or None; ignore_boxes [M, 4]: with ``ignore_iof_thr > 0``, anchors whose area lies
    more than that fraction inside one are ignored (SCRFD's -1: they are not, docs/training.md).
    ``with_landmarks``: landmark targets even without ``gt_landmarks`` (NaN of weight 0, for a
    keypoint head trained on data that has no landmarks)."""
    if gt_landmarks is None and with_landmarks:
        gt_landmarks = torch.full((len(gt_boxes), 5, 2), float("nan"))  # "no landmarks" for every face
    gt_boxes = gt_boxes.to(anchors.boxes)
    assigned, _ = ops.atss_assign(anchors.boxes, anchors.per_level, gt_boxes, topk=topk, inside="scrfd",
                                  ignore=None if ignore_boxes is None or len(ignore_boxes) == 0 else ignore_boxes.to(anchors.boxes),
                                  ignore_iof_thr=ignore_iof_thr)
    n = anchors.boxes.shape[0]
    pos = assigned > 0
    face = (assigned - 1).clamp(min=0)
    boxes = torch.zeros(n, 4, dtype=anchors.boxes.dtype, device=anchors.boxes.device)
    if len(gt_boxes):
        boxes[pos] = gt_boxes[face[pos]]
    landmarks = weight = None
    if gt_landmarks is not None:
        gt_landmarks = gt_landmarks.to(anchors.boxes)
        landmarks = torch.zeros(n, 5, 2, dtype=anchors.boxes.dtype, device=anchors.boxes.device)
        weight = torch.zeros(n, dtype=anchors.boxes.dtype, device=anchors.boxes.device)
        if len(gt_boxes):
            has = torch.isfinite(gt_landmarks.reshape(len(gt_landmarks), -1)).all(dim=1)  # NaN: no landmarks
            landmarks[pos] = gt_landmarks[face[pos]]
            weight[pos] = has[face[pos]].to(weight.dtype)
    return ImageTargets(assigned, boxes, landmarks, weight)
