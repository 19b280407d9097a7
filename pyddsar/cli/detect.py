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


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


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


def Progress(total: int, stream=None, enabled: bool = True):
    """A tqdm bar on a stream (stderr): count of images, bar, images/s."""
    from tqdm import tqdm

    return tqdm(total=total, file=stream if stream is not None else sys.stderr, disable=not enabled, unit="img",
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} images [{elapsed}<{remaining}, {rate_fmt}]")


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
    from ..inference import Detector
    from ..preprocess import to_bgr8

    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.batch_size <= 0:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
    paths = expand_images(args.images)
    from ..evaluation.model_eval import protocol_kwargs

    from ..model_file import load_model

    model, pre = load_model(args.weights, args.model)
    det = Detector(model, device=args.device, **protocol_kwargs(pre))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    bar = Progress(len(paths), enabled=not args.no_progress)
    failed = 0
    for i in range(0, len(paths), args.batch_size):
        chunk, imgs = [], []
        for p in paths[i:i + args.batch_size]:
            try:  # an unreadable image is reported and skipped; the others are still detected
                imgs.append(to_bgr8(p))
                chunk.append(p)
            except ValueError as e:
                failed += 1
                print(f"pyddsar detect: skipped {p}: {e}", file=sys.stderr)
        for path, img, d in zip(chunk, imgs, det.detect_batch(imgs, batch_size=args.batch_size) if imgs else []):
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
        bar.update(min(args.batch_size, len(paths) - i))
    bar.close()
    if failed:
        print(f"pyddsar detect: {failed} of {len(paths)} images could not be read", file=sys.stderr)
        return 1
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
