"""`pyddsar detect IMAGE... --model NAME --weights FILE [--out DIR] [--json] [--threshold T]`.

``--weights`` is recognised by content: an ONNX file (insightface SCRFD, imported and checked against
``--model``) or a torch file holding ``{"config": DetectorConfig.to_dict(), "state_dict": ...}``.
With ``--out`` each image is written to DIR/<name>.jpg with boxes, scores and landmarks drawn; with
``--json`` one JSON object per image is printed (SPEC section 7), otherwise one summary line per image.
"""

from __future__ import annotations

import json
import os
import sys


def _is_onnx(path: str) -> bool:
    try:
        import onnx

        onnx.load(path, load_external_data=False)
        return True
    except Exception:
        return False


def load_model(name: str, weights: str):
    """A detector with ``weights`` for preset ``name`` (ValueError when they do not belong together)."""
    from .models import SCRFD, DetectorConfig, load_scrfd_onnx, presets

    if name not in presets:
        raise ValueError(f"unknown model {name!r}; use one of {', '.join(presets)}")
    if not os.path.isfile(weights):
        raise ValueError(f"weights file not found: {weights}")
    if _is_onnx(weights):
        return load_scrfd_onnx(weights, expect=name)
    import torch

    try:
        ckpt = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception:
        raise ValueError(f"{weights} is neither an ONNX file nor a pyddsar model file") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{weights}: a pyddsar model file holds 'config' and 'state_dict'")
    cfg = DetectorConfig.from_dict(ckpt["config"])
    base = presets[name]
    if cfg.replace(name=name, fused=base.fused) != base:
        raise ValueError(f"{weights} holds weights for {cfg.name!r}, not for {name!r}")
    model = SCRFD(cfg)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"{weights}: weights do not fit {name!r}: {str(e).splitlines()[0]}") from None
    return model.eval()


def draw(img, det, threshold):
    import cv2

    out = img.copy()
    for i in range(len(det)):
        if det.scores[i] < threshold:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in det.boxes[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 0), 2)
        cv2.putText(out, f"{det.scores[i]:.2f}", (x1, max(0, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
        if det.landmarks is not None:
            for (x, y), c in zip(det.landmarks[i], [(255, 0, 0), (0, 0, 255), (0, 255, 255), (255, 0, 255), (255, 255, 0)]):
                cv2.circle(out, (int(round(x)), int(round(y))), 2, c, -1)
    return out


def _cmd_detect(args) -> int:
    from .inference import Detector, to_bgr8

    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}")
    det = Detector(load_model(args.model, args.weights), device=args.device)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    for path in args.images:
        img = to_bgr8(path)
        d = det.detect(img)
        keep = d.scores >= args.threshold
        if args.out:
            import cv2

            stem = os.path.splitext(os.path.basename(path))[0]
            target = os.path.join(args.out, stem + ".jpg")
            if not cv2.imwrite(target, draw(img, d, args.threshold)):
                raise ValueError(f"cannot write {target}")
        if args.json:
            lms = d.landmarks[keep] if d.landmarks is not None else None
            rec = {
                "image": path, "width": int(img.shape[1]), "height": int(img.shape[0]),
                "detections": [
                    {"box": [round(float(v), 2) for v in b], "score": round(float(s), 5),
                     "landmarks": None if lms is None else [[round(float(x), 2), round(float(y), 2)] for x, y in lms[j]]}
                    for j, (b, s) in enumerate(zip(d.boxes[keep], d.scores[keep]))
                ],
            }
            print(json.dumps(rec))
        else:
            print(f"{path}: {int(keep.sum())} faces (score >= {args.threshold})")
        sys.stdout.flush()
    return 0


def add_parser(sub) -> None:
    d = sub.add_parser("detect", help="detect faces in images with a detector and its weights")
    d.add_argument("images", nargs="+", metavar="IMAGE")
    d.add_argument("--model", default="scrfd-2.5g-kps", help="detector preset (pyddsar.models.presets)")
    d.add_argument("--weights", required=True, help="insightface SCRFD .onnx or pyddsar model file (by content)")
    d.add_argument("--out", help="folder for images with boxes, scores and landmarks drawn")
    d.add_argument("--json", action="store_true", help="print JSON Lines, one object per image")
    d.add_argument("--threshold", type=float, default=0.5, help="minimum score reported and drawn (default 0.5)")
    d.add_argument("--device", default="cpu")
    d.set_defaults(func=_cmd_detect)
