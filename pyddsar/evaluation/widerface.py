"""WIDER Face Easy / Medium / Hard average precision (SPEC section 5).

The numbers match the evaluation script that RetinaFace / SCRFD users run
(``widerface_evaluate/evaluation.py``); this module is an independent, vectorised
implementation of the same procedure:

* prediction scores are rescaled over the *whole* set of predictions with
  ``(s - lo) / (hi - lo)``, ``lo = min(1, smallest score)`` and ``hi = max(0, largest score)``;
* per image, every prediction (in the given order) is matched to the ground-truth face of largest
  IoU (first one on ties, IoU with the +1 pixel convention: a box ``x y w h`` spans ``w + 1`` pixels).
  At IoU >= 0.5 a match with a face outside the subset's keep list removes the prediction from the
  proposals; a match with a kept face recalls that face (once);
* for 1000 thresholds ``1 - (t + 1) / 1000`` the proposals and recalled faces up to the *last*
  prediction whose score reaches the threshold are summed over all images with ground truth and
  predictions; precision = recalled / proposals, recall = recalled / number of kept faces;
* AP = area under the precision envelope (VOC style, sentinels 0 and 1 on recall).

Behaviour on bad input is defined (and warned about) where the reference script would crash or
produce NaN: see :func:`evaluate`.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from .._atomic import write_text
from .._validate import integer, real
__all__ = [
    "SUBSETS",
    "WiderGroundTruth",
    "WiderEvalResult",
    "load_ground_truth",
    "read_predictions",
    "write_predictions",
    "evaluate",
    "iou_plus_one",
    "write_pr_plot",
    "write_ap_json",
]

SUBSETS = ("easy", "medium", "hard")
_MAT_FILES = {"all": "wider_face_val.mat", "easy": "wider_easy_val.mat", "medium": "wider_medium_val.mat",
              "hard": "wider_hard_val.mat"}


@dataclass(frozen=True)
class WiderGroundTruth:
    """Evaluation ground truth, one entry per image in .mat order.

    ``boxes[i]`` is float64 ``[M, 4]`` ``x y w h``; ``keep[subset][i]`` holds the 0-based indices of
    the faces that count in that subset (the others are ignored there)."""

    events: List[str]
    names: List[str]
    boxes: List[np.ndarray]
    keep: Dict[str, List[np.ndarray]]

    @property
    def keys(self) -> List[str]:
        return [f"{e}/{n}" for e, n in zip(self.events, self.names)]

    def num_faces(self, subset: str) -> int:
        return int(sum(len(k) for k in self.keep[subset]))


def _strip_jpg(name: str) -> str:
    return name[:-4] if name.lower().endswith(".jpg") else name


def _loadmat(path: str):
    from ..data.widerface_gt import load_mat

    return load_mat(path)


def load_ground_truth(gt_dir: str) -> WiderGroundTruth:
    """Read ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat`` from ``gt_dir``."""
    if not os.path.isdir(gt_dir):
        raise ValueError(f"ground-truth folder not found: {gt_dir}")
    main = _loadmat(os.path.join(gt_dir, _MAT_FILES["all"]))
    for key in ("event_list", "file_list", "face_bbx_list"):
        if key not in main:
            raise ValueError(f"{os.path.join(gt_dir, _MAT_FILES['all'])}: no '{key}' entry")
    events, names, boxes = [], [], []
    ev, fl, bl = main["event_list"], main["file_list"], main["face_bbx_list"]
    per_event = []
    for e in range(len(ev)):
        event = str(ev[e][0][0])
        files, bbx = fl[e][0], bl[e][0]
        if len(files) != len(bbx):
            raise ValueError(f"{gt_dir}: event {event} has {len(files)} files but {len(bbx)} box lists")
        per_event.append(len(files))
        for i in range(len(files)):
            events.append(event)
            names.append(_strip_jpg(str(files[i][0][0])))
            b = np.asarray(bbx[i][0], dtype=np.float64)
            boxes.append(b.reshape(-1, 4) if b.size else np.zeros((0, 4)))
    keep: Dict[str, List[np.ndarray]] = {}
    for subset in SUBSETS:
        path = os.path.join(gt_dir, _MAT_FILES[subset])
        m = _loadmat(path)
        if "gt_list" not in m:
            raise ValueError(f"{path}: no 'gt_list' entry; expected WIDER's wider_{subset}_val.mat")
        gl = m["gt_list"]
        if len(gl) != len(per_event):
            raise ValueError(f"{path}: {len(gl)} events, {_MAT_FILES['all']} has {len(per_event)}")
        lists, k = [], 0
        for e in range(len(gl)):
            sub = gl[e][0]
            if len(sub) != per_event[e]:
                raise ValueError(f"{path}: event {events[k] if k < len(events) else e} has {len(sub)} keep lists, "
                                 f"expected {per_event[e]}")
            for j in range(len(sub)):
                idx = np.asarray(sub[j][0]).astype(np.int64).reshape(-1) - 1
                n = len(boxes[k])
                if idx.size and (idx.min() < 0 or idx.max() >= n):
                    raise ValueError(f"{path}: image {events[k]}/{names[k]} keeps face {idx.max() + 1} of {n}")
                lists.append(idx)
                k += 1
        keep[subset] = lists
    return WiderGroundTruth(events, names, boxes, keep)


# ----------------------------------------------------------------------------- predictions


def _read_pred_file(path: str) -> Tuple[str, np.ndarray]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.rstrip("\r\n") for ln in f]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read prediction file {path}: {e}") from None
    if not lines or not lines[0].strip():
        raise ValueError(f"{path}:1: expected the image name on the first line")
    name = _strip_jpg(lines[0].strip().split("/")[-1])
    rows = []
    for lineno, line in enumerate(lines[2:], 3):
        parts = line.split()
        if not parts:
            continue
        try:
            vals = [float(v) for v in parts[:5]]
        except ValueError:
            raise ValueError(f"{path}:{lineno}: expected 'x y w h score', got {line!r}") from None
        if len(vals) < 5:
            raise ValueError(f"{path}:{lineno}: expected 5 numbers 'x y w h score', got {line!r}")
        rows.append(vals)
    if len(lines) >= 2:
        try:
            count = int(float(lines[1].strip()))
        except (ValueError, OverflowError):  # "inf" / "nan" too
            raise ValueError(f"{path}:2: expected the number of boxes, got {lines[1]!r}") from None
        if count != len(rows):
            warnings.warn(f"{path}: announces {count} boxes but holds {len(rows)}; using the {len(rows)} box lines",
                          stacklevel=3)
    return name, np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def read_predictions(pred_dir: str) -> Dict[str, np.ndarray]:
    """Read a folder of official prediction files ``event/image_name.txt`` (name line, count line,
    ``x y w h score`` lines) into ``{"event/image_name": float64 [N, 5]}``. As in the reference, the
    image name comes from the file's first line (its last path component, ``.jpg`` removed)."""
    if not os.path.isdir(pred_dir):
        raise ValueError(f"prediction folder not found: {pred_dir}")
    out: Dict[str, np.ndarray] = {}
    for event in sorted(os.listdir(pred_dir)):
        edir = os.path.join(pred_dir, event)
        if not os.path.isdir(edir):
            continue
        for fname in sorted(os.listdir(edir)):
            if not fname.endswith(".txt"):
                continue
            name, boxes = _read_pred_file(os.path.join(edir, fname))
            out[f"{event}/{name}"] = boxes
    return out


def write_predictions(out_dir: str, predictions: Mapping[str, np.ndarray], sort: bool = True) -> int:
    """Write ``{"event/image_name": [N, 5] x y w h score}`` as official prediction files
    ``out_dir/event/image_name.txt``; rows sorted by decreasing score when ``sort``. Returns the
    number of files written."""
    n = 0
    for key, arr in predictions.items():
        if "/" not in key:
            raise ValueError(f"prediction key {key!r} must be 'event/image_name'")
        event, name = key.rsplit("/", 1)
        name = _strip_jpg(name)
        a = np.asarray(arr, dtype=np.float64).reshape(-1, 5)
        if sort and len(a):
            a = a[np.argsort(-a[:, 4], kind="stable")]
        os.makedirs(os.path.join(out_dir, event), exist_ok=True)
        lines = [f"{name}.jpg", str(len(a))]
        lines += [f"{r[0]:.3f} {r[1]:.3f} {r[2]:.3f} {r[3]:.3f} {r[4]:.6f}" for r in a]
        path = os.path.join(out_dir, event, name + ".txt")
        write_text(path, "\n".join(lines) + "\n")
        n += 1
    return n


# ----------------------------------------------------------------------------- core


def iou_plus_one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``x1 y1 x2 y2`` boxes with the +1 pixel convention ([N, K]); 0 where the boxes do not
    overlap by at least one pixel in both directions."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    inter = iw * ih
    ok = (iw > 0) & (ih > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(ok, inter / (area_a[:, None] + area_b[None, :] - inter), 0.0)
    return iou


def _to_xyxy(xywh: np.ndarray) -> np.ndarray:
    out = xywh[:, :4].copy()
    out[:, 2] += out[:, 0]
    out[:, 3] += out[:, 1]
    return out


def _voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # NaN propagates downwards, as the loop form does
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@dataclass(frozen=True)
class WiderEvalResult:
    """AP per subset, the precision / recall curves (1000 points each, thresholds high to low) and
    the warnings raised while evaluating."""

    ap: Dict[str, float]
    precision: Dict[str, np.ndarray]
    recall: Dict[str, np.ndarray]
    thresholds: np.ndarray
    num_faces: Dict[str, int]
    num_images: int
    notes: List[str] = field(default_factory=list)

    @property
    def easy(self) -> float:
        return self.ap["easy"]

    @property
    def medium(self) -> float:
        return self.ap["medium"]

    @property
    def hard(self) -> float:
        return self.ap["hard"]

    def __str__(self) -> str:
        return "\n".join(f"{s.capitalize()} AP: {self.ap[s]:.4f}" for s in SUBSETS)

    def to_dict(self) -> dict:
        return {
            "easy": self.ap["easy"], "medium": self.ap["medium"], "hard": self.ap["hard"],
            "num_faces": dict(self.num_faces), "num_images": self.num_images, "notes": list(self.notes),
        }


def _normalise_scores(preds: Dict[str, np.ndarray], notes: List[str]) -> None:
    lo, hi = 1.0, 0.0
    for v in preds.values():
        if len(v):
            lo = min(lo, float(v[:, 4].min()))
            hi = max(hi, float(v[:, 4].max()))
    diff = hi - lo
    if diff == 0:
        notes.append("all prediction scores are equal and lie outside (0, 1): every score is set to 1 "
                     "(the reference script would divide by zero)")
    for k, v in preds.items():
        if len(v):
            v[:, 4] = 1.0 if diff == 0 else (v[:, 4] - lo) / diff


def _prepare_predictions(predictions, gt: WiderGroundTruth, notes: List[str]) -> List[Optional[np.ndarray]]:
    if isinstance(predictions, (str, os.PathLike)):
        predictions = read_predictions(os.fspath(predictions))
    preds: Dict[str, np.ndarray] = {}
    for key, arr in predictions.items():
        a = np.array(arr, dtype=np.float64, copy=True)
        if a.size == 0:
            a = a.reshape(0, 5)
        if a.ndim != 2 or a.shape[1] < 5:
            raise ValueError(f"predictions for {key!r}: expected an [N, 5] array 'x y w h score', got shape {a.shape}")
        if not np.isfinite(a[:, :5]).all():
            raise ValueError(f"predictions for {key!r}: NaN or infinite values")
        preds[_strip_jpg(str(key))] = a[:, :5]
    # score normalisation over every prediction given, unknown images included (as the reference)
    _normalise_scores(preds, notes)
    by_key = {k: i for i, k in enumerate(gt.keys)}
    by_name: Dict[str, int] = {}
    for i, n in enumerate(gt.names):
        by_name.setdefault(n, i)
    per_image: List[Optional[np.ndarray]] = [None] * len(gt.names)
    unknown = []
    for key, a in preds.items():
        i = by_key.get(key)
        if i is None:
            i = by_name.get(key.rsplit("/", 1)[-1])
        if i is None:
            unknown.append(key)
            continue
        per_image[i] = a
    if unknown:
        notes.append(f"{len(unknown)} prediction entries name images that are not in the ground truth "
                     f"(ignored except for score normalisation), e.g. {unknown[0]!r}")
    missing = [k for k, p in zip(gt.keys, per_image) if p is None]
    if missing:
        notes.append(f"no predictions for {len(missing)} of {len(gt.names)} ground-truth images "
                     f"(counted as no detections), e.g. {missing[0]!r}")
    inverted = sum(int(((p[:, 2] < 0) | (p[:, 3] < 0)).sum()) for p in per_image if p is not None)
    if inverted:
        notes.append(f"{inverted} predicted boxes have a negative width or height (kept, IoU as the reference "
                     "computes it)")
    unsorted = sum(1 for p in per_image if p is not None and len(p) > 1 and np.any(np.diff(p[:, 4]) > 0))
    if unsorted:
        notes.append(f"{unsorted} images have predictions not sorted by decreasing score; like the reference, "
                     "each threshold uses all predictions up to the last one that reaches it")
    return per_image


def evaluate(predictions: Union[str, os.PathLike, Mapping[str, np.ndarray]],
             gt: Union[str, os.PathLike, WiderGroundTruth],
             iou_thresh: float = 0.5, thresh_num: int = 1000) -> WiderEvalResult:
    """WIDER Face Easy / Medium / Hard AP.

    ``predictions``: a folder of official prediction files, or ``{"event/image_name" or
    "image_name": [N, 5] x y w h score}`` (rows in decreasing score order, as detectors write them).
    ``gt``: the folder with ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat`` or a
    :class:`WiderGroundTruth`.

    Defined behaviour on bad input (each case adds a line to ``result.notes`` and a warning):
    ground-truth images without predictions count as images without detections (the reference
    raises KeyError); predictions for images not in the ground truth are not evaluated but take part
    in score normalisation (as in the reference); when all scores are equal and normalisation would
    divide by zero, every score becomes 1; boxes with negative width or height are kept and get the
    IoU the reference formula gives; images without faces or without predictions add nothing but
    their kept-face count. NaN / infinite values raise ValueError.
    """
    if not isinstance(gt, WiderGroundTruth):
        gt = load_ground_truth(os.fspath(gt))
    thresh_num = integer(thresh_num, "thresh_num", low=1, high=100000)
    iou_thresh = real(iou_thresh, "iou_thresh", low=0, high=1, low_open=True)
    notes: List[str] = []
    per_image = _prepare_predictions(predictions, gt, notes)
    t = np.arange(thresh_num)
    thresholds = 1 - (t + 1) / thresh_num
    neg_thr = -thresholds  # increasing
    pr = {s: np.zeros((thresh_num, 2)) for s in SUBSETS}
    for i, p in enumerate(per_image):
        g = gt.boxes[i]
        if p is None or len(p) == 0 or len(g) == 0:
            continue
        iou = iou_plus_one(_to_xyxy(p), _to_xyxy(g))
        best = iou.argmax(axis=1)
        matched = iou[np.arange(len(p)), best] >= iou_thresh
        # r(t) = last prediction index whose score reaches threshold t: the suffix maximum of the
        # scores is non-increasing, so r(t) + 1 = number of suffix maxima >= threshold
        smax = np.maximum.accumulate(p[::-1, 4])[::-1]
        count = np.searchsorted(-smax, neg_thr, side="right")  # r + 1, 0 when none reaches it
        for s in SUBSETS:
            kept = np.zeros(len(g), dtype=bool)
            kept[gt.keep[s][i]] = True
            hit_kept = matched & kept[best]
            proposal = ~(matched & ~kept[best])
            first = np.zeros(len(p), dtype=bool)
            idx = np.nonzero(hit_kept)[0]
            if idx.size:
                _, first_pos = np.unique(best[idx], return_index=True)
                first[idx[first_pos]] = True
            cum_recall = np.concatenate(([0], np.cumsum(first)))
            cum_prop = np.concatenate(([0], np.cumsum(proposal)))
            pr[s][:, 0] += cum_prop[count]
            pr[s][:, 1] += cum_recall[count]
    ap, prec, rec, nf = {}, {}, {}, {}
    for s in SUBSETS:
        nf[s] = gt.num_faces(s)
        with np.errstate(divide="ignore", invalid="ignore"):
            prec[s] = pr[s][:, 1] / pr[s][:, 0]
            rec[s] = pr[s][:, 1] / nf[s]
        ap[s] = _voc_ap(rec[s], prec[s])
        if not np.isfinite(ap[s]):
            notes.append(f"{s} AP is not finite: some threshold has no proposals or the subset has no faces "
                         "(the reference gives the same)")
    for n in notes:
        warnings.warn(n, stacklevel=2)
    return WiderEvalResult(ap, prec, rec, thresholds, nf, len(gt.names), notes)


def write_pr_plot(path: str, result: WiderEvalResult, title: str = "WIDER Face precision-recall") -> None:
    """PNG of precision against recall for the three subsets, one line each with its AP in the
    legend, as the official WIDER evaluation draws them."""
    from ..plots import pr_figure, save_png

    curves = {s: (np.nan_to_num(result.recall[s]), np.nan_to_num(result.precision[s]), result.ap[s]) for s in SUBSETS}
    save_png(pr_figure(curves, title=title), path)


def write_ap_json(path: str, result: WiderEvalResult) -> None:
    """``result.to_dict()`` as JSON (`pyddsar eval --out`'s ap.json), written atomically: a crash or a
    kill mid-write leaves the previous file, never a half-written one."""
    write_text(path, json.dumps(result.to_dict(), indent=1) + "\n")
