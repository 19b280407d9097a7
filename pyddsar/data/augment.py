"""Training augmentation of SPEC section 4 (SCRFD's pipeline), opencv + numpy, seeded.

Order: random square crop (side = scale x short side, scale drawn from ``scales``; the part outside
the image is filled with 128; faces whose centre lies inside the crop are kept, clipped to it),
resize to ``size`` x ``size``, photometric distortion (brightness +-32, contrast 0.5-1.5, saturation
0.5-1.5, hue +-18 degrees, each with probability 0.5, contrast before or after the colour steps at
random), horizontal flip (probability 0.5; landmarks mirrored and reordered so that index 0 stays
the image-left eye: 0<->1 and 3<->4), normalisation ``(x - 127.5) / 128`` on RGB, HWC -> CHW float32.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ["DEFAULT_SCALES", "FLIP_ORDER", "TrainAugment", "augment", "collate", "denormalise"]

DEFAULT_SCALES = (0.3, 0.45, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
FLIP_ORDER = (1, 0, 2, 4, 3)
MEAN, STD = 127.5, 128.0


def _random_square_crop(img, boxes, ignore, rng, scales, attempts=50):
    h, w = img.shape[:2]
    short = min(h, w)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    for _ in range(attempts):
        side = max(1, int(float(rng.choice(scales)) * short))
        x0 = int(rng.integers(0, w - side + 1)) if side <= w else int(rng.integers(w - side, 1))
        y0 = int(rng.integers(0, h - side + 1)) if side <= h else int(rng.integers(h - side, 1))
        inside = ((centres[:, 0] > x0) & (centres[:, 0] < x0 + side) &
                  (centres[:, 1] > y0) & (centres[:, 1] < y0 + side))
        if len(boxes) == 0 or np.any(inside & ~ignore):
            break
    return x0, y0, side, inside


def augment(image: np.ndarray, boxes: np.ndarray, landmarks: Optional[np.ndarray] = None,
            ignore: Optional[np.ndarray] = None, rng: Optional[np.random.Generator] = None, size: int = 640,
            scales: Sequence[float] = DEFAULT_SCALES, photometric: bool = True, flip_prob: float = 0.5,
            normalise: bool = True) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], np.ndarray]:
    """Augment one RGB uint8 image [H, W, 3] with boxes [N, 4] x1 y1 x2 y2 (pixels), landmarks
    [N, 5, 2] (negative rows: missing) and ignore [N]. Returns ``(image, boxes, landmarks, ignore)``:
    image float32 [3, size, size] normalised (uint8 [size, size, 3] when ``normalise=False``),
    boxes float32 [K, 4] inside [0, size], landmarks float32 [K, 5, 2] (-1 rows stay -1) or None."""
    import cv2

    if rng is None:
        rng = np.random.default_rng()
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {img.shape}")
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    n = len(boxes)
    ignore = np.zeros(n, bool) if ignore is None else np.asarray(ignore, bool).reshape(n)
    lms = None if landmarks is None else np.asarray(landmarks, dtype=np.float32).reshape(n, 5, 2).copy()
    if not scales:
        raise ValueError("scales must not be empty")

    h, w = img.shape[:2]
    x0, y0, side, inside = _random_square_crop(img, boxes, ignore, rng, scales)
    crop = np.full((side, side, 3), 128, dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
    boxes, ignore = boxes[inside], ignore[inside]
    boxes = boxes - np.array([x0, y0, x0, y0], np.float32)
    boxes = np.clip(boxes, 0, side)
    f = size / side
    boxes *= f
    if lms is not None:
        lms = lms[inside]
        missing = (lms < 0).any(axis=2)  # [K, 5]; points may leave the crop later, so keep this mask
        lms = (lms - np.array([x0, y0], np.float32)) * f
        lms[missing] = -1.0
    out = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR if f >= 1 else cv2.INTER_AREA)

    if photometric:
        out = _photometric(out, rng)
    if rng.random() < flip_prob:
        out = out[:, ::-1]
        boxes = np.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], axis=1)
        if lms is not None:
            missing = missing[:, FLIP_ORDER]
            lms = lms[:, FLIP_ORDER]
            lms[..., 0] = size - lms[..., 0]
            lms[missing] = -1.0
    boxes = np.clip(boxes.astype(np.float32).reshape(-1, 4), 0, size)  # rounding can leave size + 1 ulp
    if not normalise:
        return np.ascontiguousarray(out), boxes, lms, ignore
    chw = ((out.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)
    return np.ascontiguousarray(chw), boxes, lms, ignore


def _photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    x = img.astype(np.float32)
    if rng.random() < 0.5:
        x += rng.uniform(-32, 32)
    contrast_first = rng.random() < 0.5
    if contrast_first and rng.random() < 0.5:
        x *= rng.uniform(0.5, 1.5)
    do_sat, do_hue = rng.random() < 0.5, rng.random() < 0.5
    sat, hue = rng.uniform(0.5, 1.5), rng.uniform(-18, 18)
    if do_sat or do_hue:
        hsv = cv2.cvtColor(np.clip(x, 0, 255) / 255.0, cv2.COLOR_RGB2HSV)  # H in [0, 360)
        if do_sat:
            hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 1)
        if do_hue:
            hsv[..., 0] = np.mod(hsv[..., 0] + hue, 360)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0
    if not contrast_first and rng.random() < 0.5:
        x *= rng.uniform(0.5, 1.5)
    return np.clip(x, 0, 255).astype(np.uint8)


def denormalise(chw: np.ndarray) -> np.ndarray:
    """Inverse of the normalisation: float32 [3, H, W] -> RGB uint8 [H, W, 3]."""
    return np.clip(np.asarray(chw).transpose(1, 2, 0) * STD + MEAN, 0, 255).round().astype(np.uint8)


class TrainAugment:
    """Callable for :class:`pyddsar.data.FaceDataset` (``transform=``): ``(image_rgb, sample, rng)``
    -> ``(image, boxes, landmarks, ignore)`` as :func:`augment` returns them."""

    def __init__(self, size: int = 640, scales: Sequence[float] = DEFAULT_SCALES, photometric: bool = True,
                 flip_prob: float = 0.5, normalise: bool = True):
        self.size, self.scales, self.photometric = int(size), tuple(scales), photometric
        self.flip_prob, self.normalise = flip_prob, normalise

    def __call__(self, image, sample, rng):
        return augment(image, sample.boxes, sample.landmarks, sample.ignore, rng, size=self.size,
                       scales=self.scales, photometric=self.photometric, flip_prob=self.flip_prob,
                       normalise=self.normalise)


def collate(batch):
    """Batch of ``(image, boxes, landmarks, ignore)`` -> ``(images [B, 3, S, S], [boxes], [landmarks],
    [ignore])``: torch tensors when torch is importable (landmarks ``None`` stays None), else numpy."""
    images = np.stack([b[0] for b in batch])
    try:
        import torch
    except ImportError:  # pragma: no cover
        return images, [b[1] for b in batch], [b[2] for b in batch], [b[3] for b in batch]
    return (torch.from_numpy(images), [torch.from_numpy(b[1]) for b in batch],
            [None if b[2] is None else torch.from_numpy(b[2]) for b in batch],
            [torch.from_numpy(b[3]) for b in batch])
