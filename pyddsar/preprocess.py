"""Image preprocessing shared by every inference path (:class:`pyddsar.Detector`, the torch-free
:class:`pyddsar.onnx_detector.OnnxDetector`, the benchmarks): reading and converting images, the
letterbox and the normalisation. numpy and OpenCV only, so the onnxruntime path never imports torch.

The letterbox is insightface's (``SCRFD.detect``) and SCRFD's test pipeline's (``Resize(keep_ratio)``
+ ``Pad(pad_val=0)``): the longer side scaled to ``size`` (bilinear; smaller images are scaled up),
the shorter side truncated to an integer with insightface's float arithmetic (``int(size / (h / w))``,
at least 1), the image at the top-left of a ``size`` square of zeros.

Accepted images: a path (read with OpenCV) or a numpy array HxW (grayscale), HxWx1, HxWx3
(BGR, as OpenCV reads) or HxWx4 (BGRA: alpha dropped); uint8, uint16 (16-bit: divided by 257 to 8-bit) or
float (values in 0..255, clipped). Sides must be MIN_SIDE..MAX_SIDE pixels; anything else raises
ValueError.
"""

from __future__ import annotations

import os

import numpy as np

MAX_SIDE = 32767  # OpenCV's resize limit per side; a 10000x10000 image is downscaled like any other
MIN_SIDE = 2


def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover
        raise ValueError("image input needs OpenCV: pip install opencv-python-headless") from None
    return cv2


def read_image(path) -> np.ndarray:
    """Read an image file as OpenCV does (any depth / channels), ValueError when missing or unreadable."""
    cv2 = _cv2()
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise ValueError(f"image file not found: {p}")
    data = np.fromfile(p, dtype=np.uint8)
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as e:  # e.g. a header claiming more pixels than OpenCV decodes
        raise ValueError(f"cannot decode {p}: {str(e).strip().splitlines()[-1]}") from None
    if img is None:
        raise ValueError(f"cannot decode {p} as an image")
    return img


def to_bgr8(image) -> np.ndarray:
    """Convert an accepted image (see the module doc) to a contiguous HxWx3 uint8 BGR array."""
    cv2 = _cv2()
    if isinstance(image, (str, os.PathLike)):
        image = read_image(image)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"an image must be a numpy array or a path, got {type(image).__name__}")
    img = image
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ValueError(f"an image must be HxW, HxWx1, HxWx3 or HxWx4, got shape {img.shape}")
    h, w = img.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"image of {w}x{h} pixels is too small (each side must be at least {MIN_SIDE})")
    if max(h, w) > MAX_SIDE:
        raise ValueError(f"image of {w}x{h} pixels is too large (each side must be at most {MAX_SIDE})")
    if img.dtype == np.uint8:
        pass
    elif img.dtype == np.uint16:
        img = (img.astype(np.uint32) * 255 + 32767) // 65535
        img = img.astype(np.uint8)
    elif img.dtype.kind == "f":
        if not np.isfinite(img).all():
            raise ValueError("image has NaN or infinite values")
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    else:
        raise ValueError(f"image dtype {img.dtype} not supported (use uint8, uint16 or float)")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(img)


def letterbox(img: np.ndarray, size: int):
    """(size x size uint8 canvas, scale) for an HxWx3 uint8 image: see the module doc."""
    cv2 = _cv2()
    h, w = img.shape[:2]
    ratio = float(h) / w  # insightface's float arithmetic, so both pick the same side lengths
    if ratio > 1.0:
        nh, nw = size, max(1, int(size / ratio))
    else:
        nw, nh = size, max(1, int(size * ratio))
    out = np.zeros((size, size, 3), np.uint8)
    out[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, nh / h


def normalise(batch_bgr: np.ndarray, mean: float = 127.5, std: float = 128.0, rgb: bool = True) -> np.ndarray:
    """[B, S, S, 3] uint8 BGR -> [B, 3, S, S] float32 ``(x - mean) / std`` (RGB when ``rgb``)."""
    inv = 1.0 / std
    if float(np.float32(inv)) * std == 1.0 and np.float32(mean) == mean:  # 1/std exact (std a power of 2)
        cv2 = _cv2()
        # OpenCV's (x - mean) * (1 / std) in C++: the same float32 values as below, 3x faster than numpy
        return cv2.dnn.blobFromImages(list(batch_bgr), inv, batch_bgr.shape[2:0:-1], (mean, mean, mean), swapRB=rgb)
    x = batch_bgr[..., ::-1] if rgb else batch_bgr
    x = np.subtract(x, np.float32(mean), dtype=np.float32)
    x /= np.float32(std)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
