"""`pyddsar detect IMAGE_OR_FOLDER... --weights FILE [--model NAME] [--out DIR] [--json] [--threshold T]
[--batch-size N] [--no-progress]`.

``--weights`` is recognised by content: an ONNX file (insightface SCRFD, its config read from the graph),
a pyddsar model file (written by :func:`pyddsar.model_file.save_model`: config, preprocessing and a
checksum, so no other flag is needed), or a plain torch dict ``{"config", "state_dict"}`` (then
``--model`` is required). ``--model`` is optional otherwise and, when given, must match the weights.
A folder stands for its image files (sorted by name); images are detected ``--batch-size`` at a time
(:meth:`pyddsar.Detector.detect_batch`), each result is printed as soon as its batch is done, and a
progress bar is drawn on stderr.
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


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def load_model(name, weights: str):
    """A detector from ``weights``, recognised by content; ``name`` (a preset or None) must match it.

    Returns the model; the preprocessing of a pyddsar model file is in ``load_weights``."""
    return load_weights(weights, name)[0]


def load_weights(weights: str, name=None):
    """-> (model, Preprocessing or None). ``.onnx``: an insightface SCRFD file (its config is read from
    the graph); a pyddsar model file (:func:`pyddsar.model_file.save_model`): config, weights and
    preprocessing from the file, checksum verified; a plain torch dict ``{"config", "state_dict"}``
    needs ``name``. ValueError when the file is missing, corrupt, foreign or for another model."""
    from .models import build_detector, load_scrfd_onnx, presets
    from .models.presets import config_from_dict, matches_preset

    if name is not None and name not in presets:
        raise ValueError(f"unknown model {name!r}; use one of {', '.join(presets)}")
    if not os.path.isfile(weights):
        raise ValueError(f"weights file not found: {weights}")
    if _is_onnx(weights):
        return load_scrfd_onnx(weights, expect=name), None
    import torch

    from . import model_file

    try:
        ckpt = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception:
        raise ValueError(f"{weights} is neither an ONNX file nor a readable pyddsar model file "
                         "(truncated, corrupt or another format)") from None
    if isinstance(ckpt, dict) and ckpt.get("format") == model_file.FORMAT:
        model, pre = model_file.load_model(weights)  # checksum and config checks
        cfg = model.config
        if name is not None and not matches_preset(cfg, name):
            raise ValueError(f"{weights} holds weights for {cfg.name!r}, not for {name!r}")
        return model, pre
    if not isinstance(ckpt, dict) or "config" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{weights}: neither an ONNX file nor a pyddsar model file (see pyddsar.model_file.save_model)")
    if name is None:
        raise ValueError(f"{weights} is a plain checkpoint without a checksum: give --model, or convert it "
                         "with pyddsar.model_file.save_model")
    cfg = config_from_dict(ckpt["config"])
    if not matches_preset(cfg, name):
        raise ValueError(f"{weights} holds weights for {cfg.name!r}, not for {name!r}")
    model = build_detector(cfg)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"{weights}: weights do not fit {name!r}: {str(e).splitlines()[0]}") from None
    return model.eval(), None


def expand_images(paths):
    """Image paths from files and folders (a folder: its image files, sorted by name, not recursive)."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(os.path.join(p, f) for f in os.listdir(p)
                           if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(p, f)))
            if not found:
                raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {p}")
            out.extend(found)
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise ValueError(f"image file or folder not found: {p}")
    return out


class Progress:
    """A one-line progress bar on a stream (stderr): count, bar, images/s."""

    def __init__(self, total: int, stream=None, enabled: bool = True, width: int = 30):
        import time

        self.total, self.done, self.width = total, 0, width
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def update(self, n: int = 1) -> None:
        import time

        self.done += n
        if not self.enabled:
            return
        frac = self.done / max(1, self.total)
        fill = int(round(frac * self.width))
        rate = self.done / max(1e-9, time.perf_counter() - self.t0)
        end = "\n" if self.done >= self.total else ""
        self.stream.write(f"\r[{'#' * fill}{'.' * (self.width - fill)}] {self.done}/{self.total} images, "
                          f"{rate:.1f} img/s{end}")
        self.stream.flush()


def to_record(path, img, d, keep) -> dict:
    """The JSON object of one image (SPEC section 7)."""
    lms = d.landmarks[keep] if d.landmarks is not None else None
    return {
        "image": path, "width": int(img.shape[1]), "height": int(img.shape[0]),
        "detections": [
            {"box": [round(float(v), 2) for v in b], "score": round(float(s), 5),
             "landmarks": None if lms is None else [[round(float(x), 2), round(float(y), 2)] for x, y in lms[j]]}
            for j, (b, s) in enumerate(zip(d.boxes[keep], d.scores[keep]))
        ],
    }


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
    if args.batch_size <= 0:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
    paths = expand_images(args.images)
    from .evaluation.model_eval import protocol_kwargs

    model, pre = load_weights(args.weights, args.model)
    det = Detector(model, device=args.device, **protocol_kwargs(pre))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    bar = Progress(len(paths), enabled=not args.no_progress)
    for i in range(0, len(paths), args.batch_size):
        chunk = paths[i:i + args.batch_size]
        imgs = [to_bgr8(p) for p in chunk]
        for path, img, d in zip(chunk, imgs, det.detect_batch(imgs, batch_size=args.batch_size)):
            keep = d.scores >= args.threshold
            if args.out:
                import cv2

                stem = os.path.splitext(os.path.basename(path))[0]
                target = os.path.join(args.out, stem + ".jpg")
                if not cv2.imwrite(target, draw(img, d, args.threshold)):
                    raise ValueError(f"cannot write {target}")
            if args.json:
                print(json.dumps(to_record(path, img, d, keep)))
            else:
                print(f"{path}: {int(keep.sum())} faces (score >= {args.threshold})")
            sys.stdout.flush()
        bar.update(len(chunk))
    return 0


def add_parser(sub) -> None:
    d = sub.add_parser("detect", help="detect faces in images (files or folders) with a detector and its weights")
    d.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    d.add_argument("--model", default=None,
                   help="detector preset the weights must match (optional: the config comes from the weights file)")
    d.add_argument("--weights", required=True,
                   help="insightface SCRFD .onnx or pyddsar model file (pyddsar.model_file.save_model), by content")
    d.add_argument("--out", help="folder for images with boxes, scores and landmarks drawn")
    d.add_argument("--json", action="store_true", help="print JSON Lines, one object per image, as each is done")
    d.add_argument("--threshold", type=float, default=0.5, help="minimum score reported and drawn (default 0.5)")
    d.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    d.add_argument("--device", default="cpu")
    d.set_defaults(func=_cmd_detect)
