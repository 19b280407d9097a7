"""Image-level face detection with a pyddsar detector (SPEC section 4, inference protocol): the one
inference path of the package (``pyddsar detect``, ``eval``, ``bench`` and ASFD's mini-validation
all run :class:`Detector`).

Preprocessing follows insightface and SCRFD's test pipeline (``Resize(keep_ratio=True)``,
``Pad(size=(640, 640), pad_val=0)``): the longer side is scaled to ``input_size`` (bilinear, the other
side truncated to an integer; smaller images are scaled up), the image is placed at the top-left of
an ``input_size`` square padded with zeros, converted to the network's channel order and normalised
``(x - mean) / std``, all as the model's :class:`~pyddsar.model_file.Preprocessing` says (a model
file's own, else :func:`~pyddsar.model_file.default_preprocessing`). Post-processing (also from it;
SCRFD's: scores > 0.02, the 5000 best, NMS at IoU 0.45, at most 750); a box with negative predicted
width or height is made empty before NMS. Boxes and landmarks are mapped back to the original image
(not clipped to it).

Accepted images and the letterbox: :mod:`pyddsar.preprocess` (shared with the torch-free
:class:`~pyddsar.onnx_detector.OnnxDetector`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import List, NamedTuple, Optional, Sequence

import numpy as np
import torch

from . import ops
from ._validate import integer, real
from .heap import keep_heap
from .preprocess import letterbox, to_bgr8
from .preprocess import normalise as _normalise

class Detections(NamedTuple):
    """``boxes`` [N, 4] float32 (x1, y1, x2, y2), ``scores`` [N] float32 by decreasing score,
    ``landmarks`` [N, 5, 2] float32 (eyes, nose, mouth corners) or None, in original image pixels."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: Optional[np.ndarray]

    def __len__(self):  # number of faces
        return int(self.boxes.shape[0])


def normalise(batch_bgr: np.ndarray, mean: float = 127.5, std: float = 128.0, rgb: bool = True) -> torch.Tensor:
    """[B, S, S, 3] uint8 BGR -> [B, 3, S, S] float32 tensor (RGB when ``rgb``), (x - mean) / std:
    :func:`pyddsar.preprocess.normalise`'s values, in channels-last memory: torch's CPU convolutions
    run faster on it, and it is the layout (and so the rounding) the detectors were checked with."""
    return torch.from_numpy(_normalise(batch_bgr, mean, std, rgb)).contiguous(memory_format=torch.channels_last)


def fix_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes whose predicted distances are negative (x2 < x1 or y2 < y1) become zero-width/height at
    x1/y1 (IoU 0 with everything), as :func:`pyddsar.ops.postprocess` requires ordered corners."""
    return torch.cat([boxes[:, :2], torch.maximum(boxes[:, 2:], boxes[:, :2])], 1)


class Detector:
    """Detect faces in images with a pyddsar detector: a model with ``predict_raw``, the path of a
    pyddsar model file (its stored preprocessing is used) or of an insightface SCRFD ``.onnx`` file.

    ``preprocessing``: a :class:`~pyddsar.model_file.Preprocessing` (None: the model file's, else the
    model's default); keyword overrides of its fields (``input_size``, ``score_threshold``,
    ``nms_threshold``, ``pre_nms_topk`` and ``max_detections``, None = no limit, ``mean``, ``std``,
    ``rgb``) replace single values."""

    def __init__(self, model, device="cpu", half: bool = False, preprocessing=None, **overrides):
        from .model_file import Preprocessing, default_preprocessing

        if isinstance(model, (str, os.PathLike)):
            from .model_file import load_model

            model, stored = load_model(os.fspath(model))
            preprocessing = preprocessing or stored
        if not isinstance(model, torch.nn.Module) or not hasattr(model, "predict_raw"):
            raise ValueError(f"Detector needs a pyddsar detector model or a model / .onnx path, got {type(model).__name__}")
        if preprocessing is not None and not isinstance(preprocessing, Preprocessing):
            raise ValueError(f"preprocessing must be a pyddsar.model_file.Preprocessing, got {type(preprocessing).__name__}")
        unknown = sorted(set(overrides) - set(Preprocessing.__dataclass_fields__))
        if unknown:
            raise ValueError(f"Detector got unknown keywords {unknown}; preprocessing fields are "
                             f"{', '.join(Preprocessing.__dataclass_fields__)}")
        pre = replace(preprocessing or default_preprocessing(model), **overrides)
        input_size, score_threshold, nms_threshold = pre.input_size, pre.score_threshold, pre.nms_threshold
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"invalid device {device!r}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available")
        if half and self.device.type != "cuda":
            raise ValueError("half=True (fp16) needs a CUDA device")
        input_size = integer(input_size, "input_size", low=1, multiple_of=32)
        score_threshold = real(score_threshold, "score_threshold", low=0, high=1)
        nms_threshold = real(nms_threshold, "nms_threshold", low=0, high=1)
        if self.device.type == "cpu":
            keep_heap()  # freed activations stay mapped between calls (pyddsar/heap.py: no page faults)
        self.model = model.to(self.device).eval()
        self.half = bool(half)
        if self.half:
            self.model.half()
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        real(pre.mean, "preprocessing mean")
        real(pre.std, "preprocessing std", low=0, low_open=True)
        self.preprocessing = pre
        self.pre_nms_topk = pre.pre_nms_topk
        self.max_detections = pre.max_detections
        self.input_size = input_size

    @property
    def use_kps(self) -> bool:
        return bool(getattr(self.model, "use_kps", False))

    def detect(self, image) -> Detections:
        """Faces in one image (a path or a numpy array, see the module doc)."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence, batch_size: int = 8) -> List[Detections]:
        """Faces in each image of ``images`` (paths or arrays of any, possibly different, sizes).

        Every image is letterboxed into the same ``input_size`` square (a multiple of 32: longer side
        scaled to it, bottom/right padded with zeros), so images of different sizes and orientations
        stack into one batch of ``batch_size``; each image's result is the one :meth:`detect` gives
        (up to float rounding of batched convolutions)."""
        if isinstance(images, (str, os.PathLike, np.ndarray)):
            raise ValueError("detect_batch takes a list of images; use detect() for one")
        batch_size = integer(batch_size, "batch_size", low=1)
        images = list(images)
        out: List[Detections] = []
        for i in range(0, len(images), batch_size):
            out.extend(self._run([to_bgr8(im) for im in images[i:i + batch_size]]))
        return out

    # -- the three stages (timed separately by `pyddsar bench`) --------------------------------------
    def preprocess(self, imgs: Sequence[np.ndarray]):
        """BGR uint8 images -> (input tensor [B, 3, S, S] on the device, letterbox scales)."""
        boxes_in, scales = zip(*(letterbox(im, self.input_size) for im in imgs))
        p = self.preprocessing
        x = normalise(np.stack(boxes_in), p.mean, p.std, p.rgb).to(self.device)
        if self.half:
            x = x.half()
        return x, list(scales)

    @torch.no_grad()
    def forward(self, x: torch.Tensor):
        """The network and box decoding: :class:`pyddsar.models.RawPredictions`."""
        return self.model.predict_raw(x)

    @torch.no_grad()
    def postprocess(self, raw, scales) -> List[Detections]:
        """Threshold, top-k, NMS per image; boxes and landmarks mapped back by each image's scale."""
        res = []
        boxes_all = raw.boxes.float()
        scores_all = raw.scores.float()
        for b, s in enumerate(scales):
            scores = scores_all[b]
            # the threshold first: only candidates are fixed and checked (a cheaper, identical result)
            cand = torch.nonzero(scores > self.score_threshold).flatten()
            bx, sc, idx = ops.postprocess(fix_boxes(boxes_all[b, cand]), scores[cand], self.score_threshold,
                                          self.pre_nms_topk, self.nms_threshold, self.max_detections)
            idx = cand[idx]
            lm = None
            if raw.kps is not None:
                lm = (raw.kps[b][idx].float() / s).cpu().numpy().astype(np.float32)
            res.append(Detections((bx / s).cpu().numpy().astype(np.float32), sc.cpu().numpy().astype(np.float32), lm))
        return res

    def _run(self, imgs: List[np.ndarray]) -> List[Detections]:
        x, scales = self.preprocess(imgs)
        return self.postprocess(self.forward(x), scales)
