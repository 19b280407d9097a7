"""SCRFD's training augmentation (SPEC section 4), opencv + numpy, seeded; docs/training.md
("Augmentation") gives each step's definition with its SCRFD source line.

The steps and their order are those of SCRFD's configs (``configs/scrfd/scrfd_2.5g.py`` train
pipeline): ``RandomSquareCrop`` -> ``Resize`` (bilinear, to ``size`` x ``size``) -> ``RandomFlip`` ->
``PhotoMetricDistortion`` -> ``Normalize`` ((x - 127.5) / 128, RGB) -> CHW. As in SCRFD the image is
float32 from the crop on and never clipped; boxes and landmarks are float32 and clipped to the crop
and the image only with ``clip_border=True`` (SCRFD's ``bbox_clip_border``, False in the 2.5G and
10G configs). A face without landmarks has NaN landmarks; NaN stays NaN through every step, so crops
and flips never change which faces have landmarks.

Random draws come from one ``numpy.random.Generator`` in a fixed order (crop scale and positions,
flip, then the photometric draws in SCRFD's order), so the output depends on the generator's seed
only. The arithmetic is arranged for speed (fused passes, flip and channel swap folded into the
final CHW copy) but every float operation is the one SCRFD performs, so the result is bit-identical
to a step-by-step statement of SCRFD's transforms (tests/test_data_augment.py holds one).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

from .._validate import integer

__all__ = ["DEFAULT_SCALES", "FLIP_ORDER", "CROP_TRIES", "TrainAugment", "augment", "collate", "denormalise"]

DEFAULT_SCALES = (0.3, 0.45, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)  # RandomSquareCrop crop_choice
FLIP_ORDER = (1, 0, 2, 4, 3)  # landmark order after a horizontal flip (eyes and mouth corners swap)
CROP_TRIES = 250  # crop positions tried per drawn scale before the scale is drawn again
PAD_VALUE = 128.0  # the crop's fill outside the image
MEAN, STD = 127.5, 128.0
_INV_STD = np.float32(1.0 / STD)  # 2**-7: multiplying by it is exact, as dividing by 128 is


# ---------------------------------------------------------------------------------------- crop
def _offset(rng: np.random.Generator, length: int, side: int) -> int:
    """A crop offset along one axis: SCRFD draws with numpy's randint, whose upper bound is
    exclusive, and draws nothing when the crop and the image have the same length."""
    if length == side:
        return 0
    if length > side:
        return int(rng.integers(0, length - side))
    return int(rng.integers(length - side, 0))


def _offset_range(length: int, side: int) -> Tuple[int, int]:
    """Smallest and largest offset :func:`_offset` can return."""
    if length == side:
        return 0, 0
    if length > side:
        return 0, length - side - 1
    return length - side, -1


def _can_hold(centres: np.ndarray, w: int, h: int, sides: Sequence[int]) -> bool:
    """Whether some crop of one of ``sides`` at some drawable offset holds one of ``centres`` strictly
    inside: if not, SCRFD's search would never end."""
    for side in sides:
        ok = np.ones(len(centres), bool)
        for axis, length in ((0, w), (1, h)):
            lo, hi = _offset_range(length, side)
            c = centres[:, axis]
            # integer offsets o with c - side < o < c
            first = np.maximum(lo, np.floor(c - side) + 1)
            last = np.minimum(hi, np.ceil(c) - 1)
            ok &= first <= last
        if ok.any():
            return True
    return False


def _square_crop(rng: np.random.Generator, w: int, h: int, centres: np.ndarray, scales: Sequence[float]):
    """SCRFD's RandomSquareCrop search: returns ``(left, top, side, inside)`` where ``inside`` marks
    the faces whose centre lies strictly inside the crop. ``centres`` are the non-ignored faces'; the
    search ends at the first crop holding one of them. With no such face, or none that any crop can
    hold, the first drawn crop is taken (SCRFD would search forever)."""
    short = min(w, h)
    max_scale = max(scales)
    grows = max_scale <= 1.0  # SCRFD's retries grow the scale by 1.2 instead of drawing it again
    searching = len(centres) > 0 and (grows or _can_hold(
        centres, w, h, [max(1, int(float(s) * short)) for s in set(scales)]))
    scale, first = 0.0, True
    while True:
        if first or not grows:
            scale = float(scales[int(rng.integers(len(scales)))])
        else:
            scale *= 1.2
        side = max(1, int(scale * short))
        for _ in range(CROP_TRIES):
            left, top = _offset(rng, w, side), _offset(rng, h, side)
            if not searching:
                return left, top, side
            cx, cy = centres[:, 0], centres[:, 1]
            if np.any((cx > left) & (cy > top) & (cx < left + side) & (cy < top + side)):
                return left, top, side
        first = False


def _centres_inside(boxes: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    return ((centre[:, 0] > left) & (centre[:, 1] > top) &
            (centre[:, 0] < left + side) & (centre[:, 1] < top + side))


def _crop_image(img: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    """float32 [side, side, 3]: the image under the crop, PAD_VALUE outside it."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + side, w), min(top + side, h)
    if (x0, y0, x1, y1) == (left, top, left + side, top + side):
        return img[y0:y1, x0:x1].astype(np.float32)
    out = np.full((side, side, 3), PAD_VALUE, np.float32)
    out[y0 - top:y1 - top, x0 - left:x1 - left] = img[y0:y1, x0:x1]
    return out


# ---------------------------------------------------------------------------------- photometric
class _Photometric:
    """The draws of SCRFD's PhotoMetricDistortion for one image, in its order (None: step skipped)."""

    def __init__(self, rng: np.random.Generator, brightness_delta: float, contrast_range, saturation_range,
                 hue_delta: float):
        self.brightness = float(rng.uniform(-brightness_delta, brightness_delta)) if rng.integers(2) else None
        self.contrast_last = rng.integers(2) == 0  # mode 0: contrast after the HSV steps
        self.contrast = None
        if not self.contrast_last and rng.integers(2):
            self.contrast = float(rng.uniform(*contrast_range))
        self.saturation = float(rng.uniform(*saturation_range)) if rng.integers(2) else None
        self.hue = float(rng.uniform(-hue_delta, hue_delta)) if rng.integers(2) else None
        if self.contrast_last and rng.integers(2):
            self.contrast = float(rng.uniform(*contrast_range))
        self.channels = rng.permutation(3) if rng.integers(2) else np.arange(3)

    def before_last_contrast(self, x: np.ndarray) -> np.ndarray:
        """Brightness, first-mode contrast, HSV saturation and hue, in place on float32 HWC ``x``."""
        import cv2

        if self.brightness is not None:
            np.add(x, np.float32(self.brightness), out=x)
        if self.contrast is not None and not self.contrast_last:
            np.multiply(x, np.float32(self.contrast), out=x)
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)  # float: H in degrees; SCRFD converts even when no HSV step runs
        if self.saturation is not None:
            s = hsv[..., 1]
            np.multiply(s, np.float32(self.saturation), out=s)
        if self.hue is not None:
            hue = hsv[..., 0]
            np.add(hue, np.float32(self.hue), out=hue)
            # H was in [0, 360]: only a positive shift can pass 360, only a negative one go below 0
            if self.hue > 0:
                np.subtract(hue, np.float32(360), out=hue, where=hue > 360)
            else:
                np.add(hue, np.float32(360), out=hue, where=hue < 0)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB, dst=x)

    def last_contrast(self) -> Optional[float]:
        return self.contrast if self.contrast_last else None


def _to_chw(x: np.ndarray, flip: bool, channels: Sequence[int], contrast: Optional[float],
            normalise: bool) -> np.ndarray:
    """float32 [3, S, S] from HWC ``x`` (overwritten): multiplied by the last contrast, channel c
    taken from ``channels[c]`` and normalised in one ``cv2.transform`` (its weights are 0 and 1/128,
    whose products are exact, so the sum is SCRFD's (x - 127.5) / 128 to the bit), split into
    planes, mirrored when ``flip``."""
    import cv2

    if contrast is not None:
        np.multiply(x, np.float32(contrast), out=x)
    scale, offset = (1.0 / STD, -MEAN / STD) if normalise else (1.0, 0.0)
    if normalise or tuple(channels) != (0, 1, 2):
        m = np.zeros((3, 4))
        m[np.arange(3), list(channels)] = scale
        m[:, 3] = offset
        x = cv2.transform(x, m)
    s = x.shape[0]
    out = np.empty((3, s, s), np.float32)
    planes = cv2.split(x, [out[0], out[1], out[2]])  # OpenCV writes into the planes of out
    for c in range(3):
        if not np.shares_memory(planes[c], out[c]):  # a binding that returned new arrays instead
            out[c] = planes[c]
        if flip:  # in place, plane by plane: cheaper than mirroring the interleaved image
            mirrored = cv2.flip(out[c], 1, dst=out[c])
            if not np.shares_memory(mirrored, out[c]):
                out[c] = mirrored
    return out


# ------------------------------------------------------------------------------------ checks
def _check_range(name: str, r) -> Tuple[float, float]:
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {r!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
        raise ValueError(f"{name} must satisfy 0 <= low <= high, got {r!r}")
    return lo, hi


def _check_options(size, scales, flip_prob, brightness_delta, contrast_range, saturation_range, hue_delta):
    size = integer(size, "size", low=1)
    scales = tuple(float(s) for s in scales)
    if not scales:
        raise ValueError("scales must not be empty")
    if not all(math.isfinite(s) and s > 0 for s in scales):
        raise ValueError(f"scales must be positive and finite, got {scales}")
    if not 0.0 <= float(flip_prob) <= 1.0:
        raise ValueError(f"flip_prob must lie in [0, 1], got {flip_prob!r}")
    for name, v in (("brightness_delta", brightness_delta), ("hue_delta", hue_delta)):
        if not (math.isfinite(float(v)) and float(v) >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
    return (size, scales, float(flip_prob), float(brightness_delta), _check_range("contrast_range", contrast_range),
            _check_range("saturation_range", saturation_range), float(hue_delta))


def _check_annotations(image, boxes, landmarks, ignore):
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4] x1 y1 x2 y2, got shape {boxes.shape}")
    if not np.isfinite(boxes).all():
        raise ValueError("boxes must be finite")
    n = len(boxes)
    if ignore is None:
        ignore = np.zeros(n, bool)
    else:
        ignore = np.asarray(ignore)
        if ignore.shape != (n,):
            raise ValueError(f"ignore must be [{n}] (one flag per box), got shape {ignore.shape}")
        ignore = ignore.astype(bool)
    lms = None
    if landmarks is not None:
        lms = np.asarray(landmarks, dtype=np.float32)
        if lms.size == 0 and n == 0:
            lms = lms.reshape(0, 5, 2)
        if lms.shape != (n, 5, 2):
            raise ValueError(f"landmarks must be [{n}, 5, 2] (NaN where a face has none), got shape {lms.shape}")
        if np.isinf(lms).any():
            raise ValueError("landmarks must be finite or NaN (missing), not infinite")
    return img, boxes, lms, ignore


# ------------------------------------------------------------------------------------ pipeline
def augment(image: np.ndarray, boxes: np.ndarray, landmarks: Optional[np.ndarray] = None,
            ignore: Optional[np.ndarray] = None, rng: Optional[np.random.Generator] = None, size: int = 640,
            scales: Sequence[float] = DEFAULT_SCALES, photometric: bool = True, flip_prob: float = 0.5,
            normalise: bool = True, clip_border: bool = False, brightness_delta: float = 32,
            contrast_range=(0.5, 1.5), saturation_range=(0.5, 1.5), hue_delta: float = 18,
            ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], np.ndarray]:
    """Augment one RGB uint8 image [H, W, 3] with boxes [N, 4] x1 y1 x2 y2 (pixels), landmarks
    [N, 5, 2] (NaN where a face has none) and ignore flags [N].

    Returns ``(image, boxes, landmarks, ignore)`` for the K faces kept: image float32 [3, size, size]
    normalised, or with ``normalise=False`` an RGB uint8 [size, size, 3] for viewing (the float
    image clipped to 0..255 and rounded); boxes float32 [K, 4] (outside [0, size] where a face
    leaves the crop, unless ``clip_border``); landmarks float32 [K, 5, 2] or None; ignore bool [K].
    ``photometric=False`` leaves out the distortion (its draws come last, so the crop and flip of a
    seed stay the same)."""
    import cv2

    img, boxes, lms, ignore = _check_annotations(image, boxes, landmarks, ignore)
    size, scales, flip_prob, brightness_delta, contrast_range, saturation_range, hue_delta = _check_options(
        size, scales, flip_prob, brightness_delta, contrast_range, saturation_range, hue_delta)
    if rng is None:
        rng = np.random.default_rng()

    # RandomSquareCrop
    h, w = img.shape[:2]
    faces = boxes[~ignore]
    left, top, side = _square_crop(rng, w, h, (faces[:, :2] + faces[:, 2:]) / 2, scales)
    keep = _centres_inside(boxes, left, top, side)
    boxes, ignore = boxes[keep], ignore[keep]
    if lms is not None:
        lms = lms[keep]
    if clip_border:
        boxes[:, 2:] = np.minimum(boxes[:, 2:], np.float32([left + side, top + side]))
        boxes[:, :2] = np.maximum(boxes[:, :2], np.float32([left, top]))
        if lms is not None:
            lms = np.clip(lms, np.float32([left, top]), np.float32([left + side, top + side]))
    boxes -= np.float32([left, top, left, top])
    if lms is not None:
        lms -= np.float32([left, top])
    crop = _crop_image(img, left, top, side)

    # Resize (mmcv.imresize: cv2 bilinear; the scale factor is stored as float32)
    x = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
    f = np.float32(size / side)
    boxes *= f
    if lms is not None:
        lms *= f
    if clip_border:
        np.clip(boxes, 0, np.float32(size), out=boxes)
        if lms is not None:
            np.clip(lms, 0, np.float32(size), out=lms)

    # RandomFlip (the image itself is mirrored in the final copy: every later step is per pixel)
    flip = bool(rng.random() < flip_prob)
    if flip:
        boxes = np.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], axis=1)
        if lms is not None:
            lms = lms[:, FLIP_ORDER]
            lms[..., 0] = size - lms[..., 0]

    # PhotoMetricDistortion
    channels, contrast = (0, 1, 2), None
    if photometric:
        pm = _Photometric(rng, brightness_delta, contrast_range, saturation_range, hue_delta)
        x = pm.before_last_contrast(x)
        channels, contrast = tuple(int(c) for c in pm.channels), pm.last_contrast()

    boxes = np.ascontiguousarray(boxes, dtype=np.float32).reshape(-1, 4)
    if lms is not None:
        lms = np.ascontiguousarray(lms, dtype=np.float32)
    chw = _to_chw(x, flip, channels, contrast, normalise)
    if not normalise:
        view = np.clip(chw.transpose(1, 2, 0), 0, 255).round().astype(np.uint8)
        return np.ascontiguousarray(view), boxes, lms, ignore
    return chw, boxes, lms, ignore


def denormalise(chw: np.ndarray) -> np.ndarray:
    """Inverse of the normalisation, for viewing: float32 [3, H, W] -> RGB uint8 [H, W, 3] (clipped, rounded)."""
    chw = np.asarray(chw)
    if chw.ndim != 3 or chw.shape[0] != 3:
        raise ValueError(f"expected a normalised image [3, H, W], got shape {chw.shape}")
    return np.clip(chw.transpose(1, 2, 0) * STD + MEAN, 0, 255).round().astype(np.uint8)


class TrainAugment:
    """Callable for :class:`pyddsar.data.FaceDataset` (``transform=``): ``(image_rgb, sample, rng)``
    -> ``(image, boxes, landmarks, ignore)`` as :func:`augment` returns them, with its options."""

    def __init__(self, size: int = 640, scales: Sequence[float] = DEFAULT_SCALES, photometric: bool = True,
                 flip_prob: float = 0.5, normalise: bool = True, clip_border: bool = False,
                 brightness_delta: float = 32, contrast_range=(0.5, 1.5), saturation_range=(0.5, 1.5),
                 hue_delta: float = 18):
        (self.size, self.scales, self.flip_prob, self.brightness_delta, self.contrast_range,
         self.saturation_range, self.hue_delta) = _check_options(size, scales, flip_prob, brightness_delta,
                                                                 contrast_range, saturation_range, hue_delta)
        self.photometric, self.normalise, self.clip_border = bool(photometric), bool(normalise), bool(clip_border)

    def __call__(self, image, sample, rng):
        return augment(image, sample.boxes, sample.landmarks, sample.ignore, rng, size=self.size,
                       scales=self.scales, photometric=self.photometric, flip_prob=self.flip_prob,
                       normalise=self.normalise, clip_border=self.clip_border,
                       brightness_delta=self.brightness_delta, contrast_range=self.contrast_range,
                       saturation_range=self.saturation_range, hue_delta=self.hue_delta)


def collate(batch):
    """Batch of ``(image, boxes, landmarks, ignore)`` -> ``(images [B, 3, S, S], [boxes], [landmarks],
    [ignore])``: torch tensors when torch is importable (landmarks ``None`` stays None; NaN rows,
    faces without landmarks, stay NaN), else numpy."""
    if not batch:
        raise ValueError("collate needs at least one sample")
    shapes = {np.shape(b[0]) for b in batch}
    if len(shapes) != 1:
        raise ValueError(f"collate needs images of one shape, got {sorted(shapes)}")
    try:
        import torch
    except ImportError:  # pragma: no cover
        return np.stack([b[0] for b in batch]), [b[1] for b in batch], [b[2] for b in batch], [b[3] for b in batch]
    # torch's default_collate stacks straight into shared memory inside a DataLoader worker, saving
    # the copy the worker would otherwise make to send the batch
    images = torch.utils.data.default_collate([torch.from_numpy(np.asarray(b[0])) for b in batch])
    return (images, [torch.from_numpy(b[1]) for b in batch],
            [None if b[2] is None else torch.from_numpy(b[2]) for b in batch],
            [torch.from_numpy(b[3]) for b in batch])
