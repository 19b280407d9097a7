"""The pieces that the ASFD searches (SPEC section 6) train and evaluate with on pyddsar data sets.

* Data: :func:`load_train_dataset` (the train split with SCRFD-style square crops),
  :func:`split_indices` (the 9:9:2 cut), :func:`batches` (seeded, resumable batch streams).
* Optimisation: :func:`batch_loss` (focal + smooth-L1 / GIoU, :mod:`pyddsar.asfd.loss`),
  :func:`default_lr`, :func:`weights_lr`, :func:`warmup_steps`, :func:`warmup_factor`.
* :func:`minival_ap` letterboxes training samples to ``size`` (long side scaled to ``size``, grey
  padding), runs ASFD's test protocol (``ASFD_TEST_PROTOCOL``: score 0.05, top 2000, NMS 0.4, 750
  kept), maps the boxes back and returns one AP (IoU 0.5, WIDER's evaluation code) over all their
  non-ignored faces: the mini-validation AP of the neck search and of the scaling fitness.

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

from .loss import asfd_loss
from .retinanet import ASFD_TEST_PROTOCOL, InferenceProtocol, asfd_anchors, asfd_postprocess, decode_boxes

MEAN, STD = 127.5, 128.0


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
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be a batch number >= 0, got {start!r}")
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
    value = default_lr(batch) if lr is None else lr
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    return float(value)


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


def letterbox(image_rgb: np.ndarray, size: int) -> Tuple[np.ndarray, float]:
    """RGB uint8 [H, W, 3] -> normalised float32 [3, size, size] (long side scaled to ``size``,
    top-left aligned, grey padding) and the scale factor."""
    import cv2

    h, w = image_rgb.shape[:2]
    scale = size / float(max(h, w))
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    canvas = np.full((size, size, 3), 128, dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(image_rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return ((canvas.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1).copy(), scale


@torch.no_grad()
def detect(forward: Callable, images: torch.Tensor,
           protocol: InferenceProtocol = ASFD_TEST_PROTOCOL) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Per image ``(boxes [K, 4], scores [K])`` of a forward callable, post-processed by ``protocol``."""
    out = forward(images)
    anchors = asfd_anchors(out["sizes"], device=images.device)
    res = []
    for lo, de in zip(out["logits"], out["deltas"]):
        b, s, _ = asfd_postprocess(decode_boxes(anchors, de.float()), torch.sigmoid(lo[:, 0].float()), protocol)
        res.append((b, s))
    return res


def _key(path: str) -> str:
    return f"{os.path.basename(os.path.dirname(path))}/{os.path.splitext(os.path.basename(path))[0]}"


def predict_paths(model, paths: Sequence[str], size: int = 640, batch: int = 4, device: str = "cpu",
                  forward: Optional[Callable] = None,
                  protocol: InferenceProtocol = ASFD_TEST_PROTOCOL) -> Dict[str, np.ndarray]:
    """``{"event/name": [K, 5] x y w h score}`` for image files, letterboxed to ``size``."""
    import cv2

    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f"size must be an int >= 32, got {size!r}")
    fwd = forward or model
    was = model.training if model is not None else None
    if model is not None:
        model.eval()
    out: Dict[str, np.ndarray] = {}
    try:
        for s in range(0, len(paths), batch):
            chunk, arrays, scales = list(paths[s:s + batch]), [], []
            for p in chunk:
                img = cv2.imread(p, cv2.IMREAD_COLOR)
                if img is None:
                    raise ValueError(f"cannot read image {p}")
                a, sc = letterbox(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), size)
                arrays.append(a)
                scales.append(sc)
            x = torch.from_numpy(np.stack(arrays)).to(device)
            for p, sc, (b, sco) in zip(chunk, scales, detect(fwd, x, protocol)):
                b = b.double().cpu().numpy() / sc
                out[_key(p)] = np.hstack([b[:, :2], b[:, 2:] - b[:, :2], sco.double().cpu().numpy()[:, None]])
    finally:
        if model is not None and was:
            model.train()
    return out


def minival_ap(model, samples, size: int = 640, batch: int = 4, device: str = "cpu",
               forward: Optional[Callable] = None) -> float:
    """AP (IoU 0.5, WIDER's evaluation code) on training samples (``FaceSample`` list), every
    non-ignored face counted (no Easy / Medium / Hard split): the mini-validation AP."""
    import warnings

    from ..evaluation import WiderGroundTruth, evaluate

    samples = list(samples)
    if not samples:
        raise ValueError("mini-validation needs at least one sample")
    preds = predict_paths(model, [s.image_path for s in samples], size, batch, device, forward)
    keys = [_key(s.image_path) for s in samples]
    boxes = [np.hstack([s.boxes[:, :2], s.boxes[:, 2:] - s.boxes[:, :2]]).astype(np.float64) for s in samples]
    keepers = [np.nonzero(~np.asarray(s.ignore, bool))[0] for s in samples]
    gt = WiderGroundTruth([k.split("/")[0] for k in keys], [k.split("/")[1] for k in keys], boxes,
                          {sub: keepers for sub in ("easy", "medium", "hard")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate(preds, gt)
    ap = res.ap["hard"]
    return float(ap) if math.isfinite(ap) else 0.0
