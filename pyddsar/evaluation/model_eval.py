"""`pyddsar eval --model M --weights W --data DIR`: run a detector over a dataset's val images with the
inference protocol (SPEC section 4) and evaluate the predictions (WIDER Easy / Medium / Hard AP)."""

from __future__ import annotations

import os
from typing import Dict

import numpy as np


def protocol_kwargs(pre) -> dict:
    """:class:`pyddsar.Detector` keyword arguments of a model file's Preprocessing (None: the model's
    default): the whole of it, normalisation and channel order included."""
    return {} if pre is None else {"preprocessing": pre}


def image_key(path: str) -> str:
    """'event/name' of an image path (WIDER layout: images/<event>/<name>.jpg)."""
    return f"{os.path.basename(os.path.dirname(path))}/{os.path.splitext(os.path.basename(path))[0]}"


def predict_folder(detector, data: str, split: str = "val", batch_size: int = 8, progress=None) -> Dict[str, np.ndarray]:
    """{"event/name": [N, 5] x y w h score} for every image of a dataset split."""
    from ..data import FaceDataset

    dataset = FaceDataset.from_folder(data, split=split)
    return predict_paths(detector, [s.image_path for s in dataset.samples], batch_size, progress)


def predict_paths(detector, paths, batch_size: int = 8, progress=None) -> Dict[str, np.ndarray]:
    """{"event/name": [N, 5] x y w h score} of a :class:`pyddsar.Detector` for image files."""
    paths = list(paths)
    out: Dict[str, np.ndarray] = {}
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        for path, det in zip(chunk, detector.detect_batch(chunk, batch_size=batch_size)):
            b = np.asarray(det.boxes, dtype=np.float64).reshape(-1, 4)
            s = np.asarray(det.scores, dtype=np.float64).reshape(-1, 1)
            out[image_key(path)] = np.hstack([b[:, :2], b[:, 2:] - b[:, :2], s])
        if progress is not None:
            progress(min(start + batch_size, len(paths)), len(paths))
    return out


def evaluate_model(model=None, weights=None, data=None, gt=None, out_dir=None, iou_thresh: float = 0.5,
                   device: str = "cpu", split: str = "val", batch_size: int = 8, progress=None, **detector_kw):
    """Detect over `data`'s `split` images (with the model file's inference protocol; `detector_kw`
    such as ``input_size=`` override it), write the prediction txt files to `out_dir/predictions`
    when `out_dir` is given, and evaluate against the .mat ground truth in `gt`. `progress`, when
    given, is called as ``progress(done, total)`` after each batch of images."""
    from ..inference import Detector
    from .widerface import evaluate, write_predictions

    if not data or not os.path.isdir(data):
        raise ValueError(f"no dataset folder at {data}")
    if not gt or not os.path.isdir(gt):
        raise ValueError(f"no ground-truth folder at {gt}")
    from ..model_file import load_model

    net, pre = load_model(weights, model)
    # the file's own inference protocol (SCRFD's or ASFD's), unless the caller overrides a part of it
    detector = Detector(net, device=device, **{**protocol_kwargs(pre), **detector_kw})
    preds = predict_folder(detector, data, split, batch_size, progress)
    if out_dir:
        write_predictions(os.path.join(out_dir, "predictions"), preds)
    return evaluate(preds, gt, iou_thresh=iou_thresh)
