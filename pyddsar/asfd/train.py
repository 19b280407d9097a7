"""The pieces that the ASFD searches (SPEC section 6) train and evaluate with on pyddsar data sets.

* Data: :func:`load_train_dataset` (the train split with SCRFD-style square crops),
  :func:`split_indices` (the 9:9:2 cut), :func:`batches` (seeded, resumable batch streams).
* Optimisation: :func:`batch_loss` (focal + smooth-L1 / GIoU, :mod:`pyddsar.asfd.loss`),
  :func:`default_lr`, :func:`weights_lr`, :func:`warmup_steps`, :func:`warmup_factor`.
* :func:`minival_ap` runs training samples through :class:`pyddsar.Detector` at ``size`` (the one
  inference path: long side scaled to ``size``, zero padding) with ASFD's test protocol
  (score 0.05, top 2000, NMS 0.4, 750 kept) and returns one AP (IoU 0.5, WIDER's evaluation code)
  over all their non-ignored faces: the mini-validation AP of the neck search and of the scaling fitness.

Full detectors train with ``pyddsar train`` (:mod:`pyddsar.training`) and are evaluated with
``pyddsar eval``. The forward of a model is any callable ``images -> {"logits", "deltas", "sizes"}``
(an :class:`~pyddsar.asfd.retinanet.ASFDDetector`, or ``lambda x: supernet(x, genes)``).
"""

from __future__ import annotations

import math
import os
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .._validate import integer, real
from .loss import asfd_loss
from .retinanet import asfd_anchors



def load_train_dataset(data: str, size: int, seed: int = 0, scales: Optional[Sequence[float]] = None):
    """The ``train`` split of ``data`` with SCRFD-style square-crop augmentation to ``size``."""
    from ..data import FaceDataset
    from ..data.augment import DEFAULT_SCALES, TrainAugment

    if not data or not os.path.isdir(data):
        raise ValueError(f"no dataset folder at {data}")
    ds = FaceDataset.from_folder(data, split="train", seed=seed,
                                 transform=TrainAugment(size=size, scales=tuple(scales or DEFAULT_SCALES)))
    if len(ds) == 0:
        raise ValueError(f"the training split of {data} has no usable images")
    return ds


def split_indices(n: int, ratios: Sequence[int] = (9, 9, 2), seed: int = 0) -> List[List[int]]:
    """Shuffle ``range(n)`` (seeded) and cut it by ``ratios`` (SPEC: 9:9:2 = weights / architecture /
    mini-validation). Every part gets at least one index, so ``n >= len(ratios)`` is required."""
    if n < len(ratios):
        raise ValueError(f"need at least {len(ratios)} training images to split {':'.join(map(str, ratios))}, got {n}")
    perm = np.random.default_rng([seed, 7]).permutation(n).tolist()
    total = float(sum(ratios))
    bounds = [0]
    acc = 0
    for r in ratios[:-1]:
        acc += r
        bounds.append(int(round(n * acc / total)))
    bounds.append(n)
    for k in range(1, len(bounds)):  # at least one per part
        bounds[k] = min(max(bounds[k], bounds[k - 1] + 1), n - (len(bounds) - 1 - k))
    return [perm[bounds[k]:bounds[k + 1]] for k in range(len(ratios))]


def batches(dataset, indices: Sequence[int], batch: int, seed: int = 0, start: int = 0) -> Iterator[Tuple]:
    """Endless ``(images, boxes, ignore)`` batches over ``indices``, reshuffled each epoch from (seed, epoch),
    beginning with batch number ``start`` of that endless stream (a resumed run continues where it stopped).

    The dataset's augmentation epoch is set before every batch, not once per epoch, so that two streams
    over one dataset (the neck search's weight and architecture parts) never change each other's crops.
    """
    from ..data.augment import collate

    indices = list(indices)
    if not indices:
        raise ValueError("no samples to draw batches from")
    start = integer(start, "start", low=0)
    per_epoch = math.ceil(len(indices) / batch)
    epoch, first = divmod(start, per_epoch)
    while True:
        order = [indices[i] for i in np.random.default_rng([seed, epoch]).permutation(len(indices))]
        for s in range(first * batch, len(order), batch):
            dataset.set_epoch(epoch)
            images, boxes, _, ignore = collate([dataset[i] for i in order[s:s + batch]])
            yield images, boxes, ignore
        epoch, first = epoch + 1, 0


def default_lr(batch: int) -> float:
    """SGD learning rate for ``batch`` images: RetinaNet's 0.01 for 16, scaled linearly. At 0.01 with
    batches of 4-8 the AutoFAE supernet's loss stayed flat for the 300-540 steps measured (docs/asfd.md)."""
    return 0.01 * batch / 16


def weights_lr(lr: Optional[float], batch: int) -> float:
    """``lr`` when given, else :func:`default_lr` of ``batch``; ValueError unless positive."""
    return real(default_lr(batch) if lr is None else lr, "lr", low=0, low_open=True, finite=False)


def warmup_steps(total: int) -> int:
    """Linear learning-rate warm-up length: a tenth of the run, at most 500 steps (mmdetection's)."""
    return min(500, total // 10)


def warmup_factor(step: int, warmup: int) -> float:
    """Factor of the learning rate at ``step`` (0-based): ramps linearly to 1 over ``warmup`` steps."""
    return 1.0 if step >= warmup else (step + 1) / warmup


def batch_loss(forward: Callable, images: torch.Tensor, boxes, ignore, box_loss: str = "smooth_l1") -> Dict[str, torch.Tensor]:
    out = forward(images)
    anchors = asfd_anchors(out["sizes"], device=images.device)
    return asfd_loss(out["logits"], out["deltas"], anchors, boxes, ignore, box_loss=box_loss)


def to_device(images: torch.Tensor, device, channels_last: bool = True) -> torch.Tensor:
    """An image batch on ``device`` (channels-last by default: faster convolutions on CPU and GPU)."""
    images = images.to(device)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def check_device(device) -> torch.device:
    """``device`` as a torch.device; ValueError when it is malformed or CUDA is asked for without one."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"invalid device {device!r} (use cpu or cuda)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but torch sees no CUDA device")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    return dev


# ----------------------------------------------------------------------------------------------
# inference and evaluation


def minival_ap(model, samples, size: int = 640, batch: int = 4, device: str = "cpu") -> float:
    """AP (IoU 0.5, WIDER's evaluation code) on training samples (``FaceSample`` list), every
    non-ignored face counted (no Easy / Medium / Hard split): the mini-validation AP. The images go
    through :class:`pyddsar.Detector` at ``size`` with the model's protocol, as ``pyddsar eval``."""
    import warnings

    from ..evaluation import WiderGroundTruth, evaluate
    from ..evaluation.model_eval import image_key, predict_paths
    from ..inference import Detector

    samples = list(samples)
    if not samples:
        raise ValueError("mini-validation needs at least one sample")
    size = integer(size, "size", low=32, multiple_of=32)
    was = model.training
    try:
        preds = predict_paths(Detector(model, device=device, input_size=size), [s.image_path for s in samples], batch)
    finally:
        model.train(was)
    keys = [image_key(s.image_path) for s in samples]
    boxes = [np.hstack([s.boxes[:, :2], s.boxes[:, 2:] - s.boxes[:, :2]]).astype(np.float64) for s in samples]
    keepers = [np.nonzero(~np.asarray(s.ignore, bool))[0] for s in samples]
    gt = WiderGroundTruth([k.split("/")[0] for k in keys], [k.split("/")[1] for k in keys], boxes,
                          {sub: keepers for sub in ("easy", "medium", "hard")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate(preds, gt)
    ap = res.ap["hard"]
    return float(ap) if math.isfinite(ap) else 0.0
