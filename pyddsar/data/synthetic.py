"""Synthetic WIDER-format face data (the data set of the tests and of the quick demo).

:func:`write_dataset` draws faces (a skin-tone ellipse with eyes, brows, nose and mouth, turned by
an in-plane rotation and a yaw that shifts and squeezes the features, 8 to 400 px tall, some of
them partly covered by occluders) on textured backgrounds, many per image, and writes::

    out/WIDER_train/images/<event>/<name>.jpg       out/WIDER_val/images/<event>/<name>.jpg
    out/WIDER_train/label.txt                       out/WIDER_val/label.txt      (boxes + 5 landmarks)
    out/wider_face_split/wider_face_{train,val}_bbx_gt.txt
    out/ground_truth/wider_face_val.mat, wider_{easy,medium,hard}_val.mat     (evaluation)
    out/synthetic.json                              (the generator's parameters)

Easy / Medium / Hard keep lists hold the faces at least 64 px / 24 px tall / all faces
(SPEC section 7; "px" is the box height). Every image is drawn from its own generator seeded with
``(seed, split, index)``, so the output depends only on the arguments.
"""

from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Tuple

import numpy as np

from .._atomic import atomic_open, write_bytes, write_text

__all__ = ["write_dataset", "draw_image", "EVENTS", "EASY_MIN", "MEDIUM_MIN"]

MAX_SIDE = 4096
EVENTS = ("0--Crowd", "1--Group", "2--Portrait", "3--Street")
EASY_MIN, MEDIUM_MIN = 64, 24  # face height in pixels
MIN_FACE, MAX_FACE = 8, 400
LANDMARK_MIN = 12  # faces smaller than this have no landmarks (NaN; -1 in label.txt), like WIDER's tiny faces

_SKIN = np.array([[224, 172, 105], [241, 194, 125], [198, 134, 66], [141, 85, 36], [255, 219, 172],
                  [232, 190, 172], [161, 102, 94], [94, 60, 40]], dtype=np.float64)  # RGB


def _cv2():
    try:
        import cv2
    except ImportError as e:  # pragma: no cover
        raise ImportError("pyddsar.data.synthetic needs opencv: pip install opencv-python-headless") from e
    return cv2


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    cv2 = _cv2()
    base = rng.uniform(30, 220, 3)
    # smooth noise at two scales plus stripes or blobs
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        lo = rng.normal(0, 40, (max(2, h // 64), max(2, w // 64))).astype(np.float32)
        hi = rng.normal(0, 14, (max(2, h // 8), max(2, w // 8))).astype(np.float32)
        img[:, :, c] = (base[c] + cv2.resize(lo, (w, h), interpolation=cv2.INTER_CUBIC)
                        + cv2.resize(hi, (w, h), interpolation=cv2.INTER_LINEAR))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 12))):
        col = tuple(int(v) for v in rng.uniform(0, 255, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            p1 = tuple(int(v) for v in rng.uniform(0, [w, h]))
            p2 = tuple(int(v) for v in rng.uniform(0, [w, h]))
            cv2.line(img, p1, p2, col, int(rng.integers(1, 8)), cv2.LINE_AA)
        elif kind == 1:
            x, y = rng.uniform(0, [w, h])
            bw, bh = rng.uniform(10, [w / 3, h / 3])
            cv2.rectangle(img, (int(x), int(y)), (int(x + bw), int(y + bh)), col, -1)
        else:
            c = tuple(int(v) for v in rng.uniform(0, [w, h]))
            cv2.circle(img, c, int(rng.uniform(5, min(w, h) / 6)), col, -1, cv2.LINE_AA)
    return img


def _face_geometry(cx, cy, size, angle, yaw):
    """Box (x1, y1, x2, y2) of the rotated head ellipse and the 5 landmarks (image-left eye,
    image-right eye, nose, image-left mouth corner, image-right mouth corner)."""
    a, b = 0.40 * size * (1 - 0.25 * abs(yaw)), 0.5 * size  # semi-axes (width, height)
    t = math.radians(angle)
    c, s = math.cos(t), math.sin(t)
    hw = math.sqrt((a * c) ** 2 + (b * s) ** 2)
    hh = math.sqrt((a * s) ** 2 + (b * c) ** 2)
    box = (cx - hw, cy - hh, cx + hw, cy + hh)
    shift = 0.18 * yaw * size
    local = np.array([[-0.16 * size * (1 - 0.4 * max(yaw, 0)) + shift, -0.10 * size],
                      [0.16 * size * (1 - 0.4 * max(-yaw, 0)) + shift, -0.10 * size],
                      [shift * 1.3, 0.06 * size],
                      [-0.12 * size * (1 - 0.4 * max(yaw, 0)) + shift, 0.22 * size],
                      [0.12 * size * (1 - 0.4 * max(-yaw, 0)) + shift, 0.22 * size]])
    rot = np.array([[c, -s], [s, c]])
    pts = local @ rot.T + [cx, cy]
    return box, pts, (a, b)


def _draw_face(img, rng, cx, cy, size, angle, yaw, pts, axes):
    cv2 = _cv2()
    skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.85, 1.1)
    skin = tuple(float(v) for v in np.clip(skin, 0, 255))
    dark = tuple(float(v) for v in np.clip(np.array(skin) * rng.uniform(0.2, 0.45), 0, 255))
    lw = max(1, int(round(size / 40)))
    center = (int(round(cx * 16)), int(round(cy * 16)))
    ax = (max(1, int(round(axes[0] * 16))), max(1, int(round(axes[1] * 16))))
    # hair behind the head (sometimes)
    if rng.random() < 0.6:
        hair = tuple(float(v) for v in rng.uniform(0, 90, 3))
        cv2.ellipse(img, (center[0], center[1] - int(0.08 * size * 16)), (int(ax[0] * 1.08), int(ax[1] * 0.9)),
                    angle, 180, 360, hair, -1, cv2.LINE_AA, 4)
    cv2.ellipse(img, center, ax, angle, 0, 360, skin, -1, cv2.LINE_AA, 4)
    if size < 6:
        return
    t = math.radians(angle)
    up = np.array([math.sin(t), -math.cos(t)])  # head "up" direction in the image
    eye_r = max(1, int(round(size * 0.045 * 16)))
    for k in (0, 1):
        p = pts[k]
        cv2.circle(img, (int(p[0] * 16), int(p[1] * 16)), eye_r, dark, -1, cv2.LINE_AA, 4)
        if size >= 16:  # brows
            q = p + up * size * 0.09
            d = np.array([math.cos(t), math.sin(t)]) * size * 0.07
            cv2.line(img, tuple(int(v * 16) for v in q - d), tuple(int(v * 16) for v in q + d), dark, lw,
                     cv2.LINE_AA, 4)
    if size >= 12:
        n = pts[2]
        cv2.line(img, (int(n[0] * 16), int((n - up * size * 0.1)[1] * 16)), (int(n[0] * 16), int(n[1] * 16)),
                 dark, lw, cv2.LINE_AA, 4)
    mouth = tuple(float(v) for v in np.clip(np.array([170, 40, 50]) * rng.uniform(0.6, 1.1), 0, 255))
    m1, m2 = pts[3], pts[4]
    mid = (m1 + m2) / 2 - up * size * 0.03 * rng.uniform(-1, 1)
    poly = np.array([m1, mid, m2]) * 16
    cv2.polylines(img, [poly.astype(np.int32).reshape(-1, 1, 2)], False, mouth, max(lw, int(size / 25)),
                  cv2.LINE_AA, 4)


def _occlude(img, rng, box):
    cv2 = _cv2()
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    col = tuple(float(v) for v in rng.uniform(0, 255, 3))
    side = rng.integers(4)
    frac = rng.uniform(0.2, 0.45)
    if side == 0:
        r = (x1 - 0.1 * w, y2 - frac * h, x2 + 0.1 * w, y2 + 0.1 * h)  # scarf / mask from below
    elif side == 1:
        r = (x1 - 0.1 * w, y1 - 0.1 * h, x2 + 0.1 * w, y1 + frac * h)  # hat
    elif side == 2:
        r = (x1 - 0.1 * w, y1 + 0.2 * h, x1 + frac * w, y2)  # something on the left
    else:
        r = (x2 - frac * w, y1 + 0.2 * h, x2 + 0.1 * w, y2)
    cv2.rectangle(img, (int(r[0]), int(r[1])), (int(r[2]), int(r[3])), col, -1)


def _sizes(rng, event: str, n: int, h: int) -> np.ndarray:
    hi = min(MAX_FACE, 0.9 * h)
    if event.startswith("0"):  # crowds: mostly small
        lo_, hi_ = MIN_FACE, min(hi, 90)
    elif event.startswith("2"):  # portraits: large
        lo_, hi_ = min(60, hi), hi
    else:
        lo_, hi_ = MIN_FACE, hi
    return np.exp(rng.uniform(math.log(lo_), math.log(max(hi_, lo_ + 1)), n))


def draw_image(rng: np.random.Generator, width: int, height: int, event: str):
    """Draw one image; returns (RGB uint8 image, boxes [N, 4] x1 y1 x2 y2 float, landmarks [N, 5, 2]
    (NaN for faces under LANDMARK_MIN px), occluded [N] bool)."""
    img = _background(rng, width, height)
    n_target = {"0": int(rng.integers(10, 40)), "1": int(rng.integers(3, 12)), "2": int(rng.integers(1, 3)),
                "3": int(rng.integers(2, 15))}[event[0]]
    sizes = np.sort(_sizes(rng, event, n_target, height))[::-1]  # big ones first
    boxes, lms, occ = [], [], []
    for size in sizes:
        for _attempt in range(8):
            angle = float(rng.normal(0, 12))
            yaw = float(np.clip(rng.normal(0, 0.35), -0.9, 0.9))
            cx = rng.uniform(0.45 * size, width - 0.45 * size)
            cy = rng.uniform(0.55 * size, height - 0.55 * size)
            box, pts, axes = _face_geometry(cx, cy, size, angle, yaw)
            if box[0] < 0 or box[1] < 0 or box[2] > width - 1 or box[3] > height - 1:
                continue
            if boxes:
                b = np.array(boxes)
                iw = np.minimum(b[:, 2], box[2]) - np.maximum(b[:, 0], box[0])
                ih = np.minimum(b[:, 3], box[3]) - np.maximum(b[:, 1], box[1])
                if np.any((iw > -2) & (ih > -2)):
                    continue
            _draw_face(img, rng, cx, cy, size, angle, yaw, pts, axes)
            o = size >= 16 and rng.random() < 0.2
            if o:
                _occlude(img, rng, box)
            boxes.append(box)
            lms.append(pts if (box[3] - box[1]) >= LANDMARK_MIN else np.full((5, 2), np.nan))
            occ.append(o)
            break
    boxes_a = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    return img, boxes_a, np.array(lms, dtype=np.float64).reshape(-1, 5, 2), np.array(occ, dtype=bool)


def _int_xywh(box) -> Tuple[int, int, int, int]:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return x1, y1, max(1, x2 - x1), max(1, y2 - y1)


def _cell(items) -> np.ndarray:
    out = np.empty((len(items), 1), dtype=object)
    for i, it in enumerate(items):
        out[i, 0] = it
    return out


def _write_mats(gt_dir: str, records: List[dict]) -> None:
    import scipy.io

    os.makedirs(gt_dir, exist_ok=True)
    events = [e for e in EVENTS if any(r["event"] == e for r in records)]
    per = {e: [r for r in records if r["event"] == e] for e in events}
    common = {
        "event_list": _cell([np.array([e]) for e in events]),
        "file_list": _cell([_cell([np.array([r["name"]]) for r in per[e]]) for e in events]),
        "face_bbx_list": _cell([_cell([np.array(r["xywh"], dtype=np.int32).reshape(-1, 4) for r in per[e]])
                                for e in events]),
    }
    for key in ("blur", "expression", "illumination", "invalid", "occlusion", "pose"):
        common[f"{key}_label_list"] = _cell([_cell([np.array(r[key], dtype=np.uint8).reshape(-1, 1) for r in per[e]])
                                             for e in events])
    with atomic_open(os.path.join(gt_dir, "wider_face_val.mat"), "wb") as f:
        scipy.io.savemat(f, common)
    for subset, lo in (("easy", EASY_MIN), ("medium", MEDIUM_MIN), ("hard", 0)):
        gl = []
        for e in events:
            lists = []
            for r in per[e]:
                k = [i + 1 for i, b in enumerate(r["xywh"]) if b[3] >= lo]
                lists.append(np.array(k, dtype=np.uint16).reshape(-1, 1) if k else np.zeros((0, 0), np.uint8))
            gl.append(_cell(lists))
        mat = dict(common)
        mat["gt_list"] = _cell(gl)
        with atomic_open(os.path.join(gt_dir, f"wider_{subset}_val.mat"), "wb") as f:
            scipy.io.savemat(f, mat)


def _split(out_dir, split, split_id, n, seed, image_size, quality) -> List[dict]:
    cv2 = _cv2()
    w, h = image_size
    records = []
    for i in range(n):
        rng = np.random.default_rng([seed, split_id, i])
        event = EVENTS[i % len(EVENTS)]
        img, boxes, lms, occ = draw_image(rng, w, h, event)
        name = f"{event.split('--')[0]}_{event.split('--')[1]}_synthetic_{split}_{i}"
        path = os.path.join(out_dir, f"WIDER_{split}", "images", event, name + ".jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise OSError(f"cannot encode {path}")
        write_bytes(path, jpeg.tobytes())
        xywh = [_int_xywh(b) for b in boxes]
        m = len(xywh)
        records.append(dict(event=event, name=name, xywh=xywh, landmarks=lms, size=(w, h),
                            blur=[0] * m, expression=[0] * m, illumination=[0] * m, invalid=[0] * m,
                            occlusion=[int(o) for o in occ], pose=[0] * m))
    return records


def _write_txts(out_dir: str, split: str, records: List[dict]) -> None:
    os.makedirs(os.path.join(out_dir, "wider_face_split"), exist_ok=True)
    lines = []
    for r in records:
        lines.append(f"{r['event']}/{r['name']}.jpg")
        lines.append(str(len(r["xywh"])))
        for k, (x, y, bw, bh) in enumerate(r["xywh"]):
            lines.append(f"{x} {y} {bw} {bh} 0 0 0 0 {r['occlusion'][k]} 0 ")
        if not r["xywh"]:
            lines.append("0 0 0 0 0 0 0 0 0 0 ")
    write_text(os.path.join(out_dir, "wider_face_split", f"wider_face_{split}_bbx_gt.txt"), "\n".join(lines) + "\n")
    lab = []
    for r in records:
        lab.append(f"# {r['event']}/{r['name']}.jpg {r['size'][0]} {r['size'][1]}")
        for (x, y, bw, bh), pts in zip(r["xywh"], r["landmarks"]):
            if not np.isfinite(pts).all():  # label.txt writes a missing point as -1 -1 -1
                kp = " ".join(["-1.0 -1.0 -1.0"] * 5)
                lab.append(f"{x} {y} {bw} {bh} {kp} -1.0")
            else:
                kp = " ".join(f"{px:.1f} {py:.1f} 0.0" for px, py in pts)
                lab.append(f"{x} {y} {bw} {bh} {kp} 1.0")
    write_text(os.path.join(out_dir, f"WIDER_{split}", "label.txt"), "\n".join(lab) + "\n")


def write_dataset(out_dir: str, n_train: int = 200, n_val: int = 50, seed: int = 0,
                  image_size: Tuple[int, int] = (640, 480), quality: int = 90) -> Dict[str, int]:
    """Write a synthetic WIDER-format data set to ``out_dir`` (layout in the module docstring).

    ``image_size`` is (width, height). Returns counts: images and faces per split."""
    if n_train < 0 or n_val < 0:
        raise ValueError(f"image counts must be >= 0, got train={n_train}, val={n_val}")
    w, h = (int(v) for v in image_size)
    if w < 32 or h < 32:
        raise ValueError(f"image_size must be at least 32x32, got {w}x{h}")
    if w > MAX_SIDE or h > MAX_SIDE:  # one 20000x20000 image took 10 GB
        raise ValueError(f"image_size must be at most {MAX_SIDE}x{MAX_SIDE}, got {w}x{h}")
    os.makedirs(out_dir, exist_ok=True)
    counts = {}
    for split, split_id, n in (("train", 0, n_train), ("val", 1, n_val)):
        recs = _split(out_dir, split, split_id, n, seed, (w, h), quality)
        os.makedirs(os.path.join(out_dir, f"WIDER_{split}", "images"), exist_ok=True)
        _write_txts(out_dir, split, recs)
        if split == "val":
            _write_mats(os.path.join(out_dir, "ground_truth"), recs)
        counts[f"{split}_images"] = n
        counts[f"{split}_faces"] = sum(len(r["xywh"]) for r in recs)
    write_text(os.path.join(out_dir, "synthetic.json"), json.dumps(
        {"generator": "pyddsar.data.synthetic", "seed": seed, "n_train": n_train, "n_val": n_val,
         "image_size": [w, h], "easy_min": EASY_MIN, "medium_min": MEDIUM_MIN, **counts}, indent=1))
    return counts
