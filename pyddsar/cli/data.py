"""``pyddsar data ...``: synthetic WIDER-format data sets and augmentation previews."""

from __future__ import annotations

import json
import time

from .._validate import integer
from . import _args


def _cmd_synthetic(args) -> int:
    from ..data.synthetic import write_dataset

    t0 = time.perf_counter()
    counts = write_dataset(args.out, args.train, args.val, args.seed, image_size=tuple(args.size))
    counts["seconds"] = round(time.perf_counter() - t0, 3)
    if args.json:
        print(json.dumps(counts))
    else:
        print(f"wrote {counts['train_images']} train images ({counts['train_faces']} faces) and "
              f"{counts['val_images']} val images ({counts['val_faces']} faces) to {args.out} "
              f"in {counts['seconds']:.1f} s; evaluation ground truth in {args.out}/ground_truth")
    return 0


def preview_grid(data: str, out: str, n: int = 16, seed: int = 0, split: str = "train", size: int = 320) -> int:
    """Write a PNG grid of ``n`` augmented samples (boxes green, ignored boxes red, landmarks as dots)."""
    import cv2
    import numpy as np

    from ..data import FaceDataset
    from ..data.augment import TrainAugment

    n = integer(n, "--n", low=1, high=1024)
    ds = FaceDataset.from_folder(data, split, transform=TrainAugment(size=size, normalise=False), seed=seed)
    if len(ds) == 0:
        raise ValueError(f"{data}: no images to preview")
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full((rows * (size + 4), cols * (size + 4), 3), 255, np.uint8)
    colours = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 255), (0, 255, 255)]  # RGB per landmark
    for k in range(n):
        img, boxes, lms, ign = ds[k % len(ds)] if k < len(ds) else ds[(k * 7919) % len(ds)]
        img = np.ascontiguousarray(img)
        for b, ig in zip(boxes, ign):
            cv2.rectangle(img, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (255, 0, 0) if ig else (0, 255, 0), 1)
        if lms is not None:
            for face in lms:
                for j, p in enumerate(face):
                    if p[0] >= 0:
                        cv2.circle(img, (int(p[0]), int(p[1])), 2, colours[j], -1)
        r, c = divmod(k, cols)
        grid[r * (size + 4):r * (size + 4) + size, c * (size + 4):c * (size + 4) + size] = img
    if not cv2.imwrite(out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"cannot write {out}")
    return n


def _cmd_preview(args) -> int:
    n = preview_grid(args.data, args.out, args.n, args.seed, args.split, args.size)
    print(f"wrote {args.out} ({n} augmented samples)")
    return 0


def add_parser(sub) -> None:
    d = sub.add_parser("data", help="data sets: synthetic WIDER-format data, augmentation preview")
    dsub = d.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("synthetic", help="write a synthetic WIDER-format data set (images, txt, label.txt, .mat)")
    s.add_argument("--out", required=True)
    s.add_argument("--train", type=int, default=200)
    s.add_argument("--val", type=int, default=50)
    s.add_argument("--seed", type=int, default=0)
    _args.add_size(s, (640, 480), "image", legacy_pair=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_synthetic)
    p = dsub.add_parser("preview", help="PNG grid of augmented training samples with their boxes")
    p.add_argument("--data", required=True, help="data set folder (synthetic or WIDER layout)")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train")
    p.add_argument("--size", type=_args.square_side, default=320,
                   help="augmentation output side per tile (default 320; training uses 640)")
    p.set_defaults(func=_cmd_preview)
