"""What a detector family trains with: its targets, its loss and its gradient clipping. The
:class:`~pyddsar.training.trainer.Trainer` runs the loop (data, schedule, optimiser, checkpoints,
processes) and asks the model's recipe for the loss of each batch.

* :class:`ScrfdRecipe`: SCRFD's (SPEC section 4): ATSS targets on the anchor grid of the training
  crop, QFL + DIoU (+ keypoints), normalisers averaged over the processes, no clipping.
* :class:`AsfdRecipe`: ASFD's RetinaNet-style one (SPEC section 6): IoU matching, focal + smooth-L1
  or GIoU, no landmarks, gradient norm clipped at 35.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .criterion import LossTerms, detection_loss
from .targets import anchor_set, image_targets

ReduceMean = Optional[Callable[[torch.Tensor], torch.Tensor]]


class ScrfdRecipe:
    box_losses = (None, "diou")
    grad_clip: Optional[float] = None

    def __init__(self, model, size: int, device, box_loss: Optional[str] = None, reduce_mean: ReduceMean = None):
        self.anchors = anchor_set(size, size, device=device)
        self.device = device
        self.with_landmarks = bool(model.use_kps)  # a keypoint head on data without landmarks: weight-0 targets
        self.reduce_mean = reduce_mean  # SCRFD's reduce_mean across processes (None: one process)

    def targets(self, boxes, landmarks, ignore):
        """ATSS targets of a collated batch; faces marked ignore are left out (SCRFD: gt_bboxes_ignore)."""
        out = []
        for b, lm, ig in zip(boxes, landmarks, ignore):
            keep = ~ig
            out.append(image_targets(self.anchors, b[keep].to(self.device),
                                     None if lm is None else lm[keep].to(self.device),
                                     b[ig].to(self.device), with_landmarks=self.with_landmarks))
        return out

    def loss(self, out, boxes, landmarks, ignore) -> LossTerms:
        targets = self.targets(boxes, landmarks, ignore)
        out = type(out)(*[None if o is None else [t.float() for t in o] for o in out])
        return detection_loss(out, self.anchors, targets, reduce_mean=self.reduce_mean)


class AsfdRecipe:
    box_losses = (None, "smooth_l1", "giou")
    # mmdetection's RetinaNet recipe clips the gradient norm at 35; without it the focal + smooth-L1
    # start diverges at lr 0.02 on small batches
    grad_clip: Optional[float] = 35.0

    def __init__(self, model, size: int, device, box_loss: Optional[str] = None, reduce_mean: ReduceMean = None):
        self.device = device
        self.box_loss = box_loss or "smooth_l1"

    def loss(self, out, boxes, landmarks, ignore) -> LossTerms:
        from ..asfd.loss import asfd_loss
        from ..asfd.retinanet import asfd_anchors

        anchors = asfd_anchors(out["sizes"], device=self.device)
        terms = asfd_loss(out["logits"].float(), out["deltas"].float(), anchors, [b.to(self.device) for b in boxes],
                          [ig.to(self.device) for ig in ignore], box_loss=self.box_loss)
        zero = torch.zeros((), device=self.device)
        return LossTerms(terms["loss"], terms["cls"].detach(), terms["box"].detach(), zero, int(terms["num_pos"]))


def recipe_for(model, size: int, device, box_loss: Optional[str] = None, reduce_mean: ReduceMean = None):
    """The recipe of ``model``'s family (ASFD detectors: :class:`AsfdRecipe`, else :class:`ScrfdRecipe`);
    ValueError for a ``box_loss`` the family does not train with."""
    from ..asfd.retinanet import ASFDDetector

    asfd = isinstance(model, ASFDDetector)
    cls = AsfdRecipe if asfd else ScrfdRecipe
    if box_loss not in cls.box_losses:
        family = "an ASFD detector trains with box_loss smooth_l1 or giou" if asfd else \
            "SCRFD-framework detectors train with the DIoU box loss"
        raise ValueError(f"{family}, not {box_loss!r}")
    return cls(model, size, device, box_loss, reduce_mean)
