"""``FaceDataset``: images + face boxes (+ landmarks, ignore flags) from WIDER-style annotations.

Importable without torch: a ``FaceDataset`` has ``__len__`` and ``__getitem__``, which is all
``torch.utils.data.DataLoader`` needs (``collate`` in :mod:`pyddsar.data.augment` stacks batches).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np

from .widerface_gt import read_gt

__all__ = ["FaceSample", "FaceDataset"]


@dataclass(frozen=True)
class FaceSample:
    image_path: str
    boxes: np.ndarray  # float32 [N, 4] x1 y1 x2 y2, pixels
    landmarks: Optional[np.ndarray]  # float32 [N, 5, 2], NaN where a face has none; None: no landmarks at all
    ignore: np.ndarray  # bool [N]


def _find_image(images_dir: str, name: str) -> str:
    base = os.path.join(images_dir, name)
    if os.path.splitext(name)[1].lower() in (".jpg", ".jpeg", ".png", ".bmp"):
        return base
    for ext in (".jpg", ".png", ".jpeg"):
        if os.path.exists(base + ext):
            return base + ext
    return base + ".jpg"


class FaceDataset:
    """A list of :class:`FaceSample`. ``dataset[i]`` is the sample itself, or, with a ``transform``
    (such as :class:`pyddsar.data.augment.TrainAugment`), ``transform(image_rgb, sample, rng)`` with
    ``rng = numpy.random.default_rng([seed, epoch, i])`` (call :meth:`set_epoch` each epoch): the
    result depends on the seed, the epoch and the index only, not on workers or processes.

    Images that are missing or empty are dropped at construction; images that fail to decode are
    dropped when first loaded (the next index is used instead). Both are counted in ``skipped`` (a
    list of ``(path, reason)``) and warned about, never silently.
    """

    def __init__(self, samples: Sequence[FaceSample], transform: Optional[Callable] = None, seed: int = 0,
                 verify: bool = False):
        self.skipped: List[tuple] = []
        kept = []
        for s in samples:
            reason = None
            if not os.path.isfile(s.image_path):
                reason = "missing"
            elif os.path.getsize(s.image_path) == 0:
                reason = "empty file"
            elif verify and self._decode(s.image_path) is None:
                reason = "cannot decode"
            if reason:
                self.skipped.append((s.image_path, reason))
            else:
                kept.append(s)
        if self.skipped:
            warnings.warn(f"FaceDataset: skipped {len(self.skipped)} of {len(samples)} images "
                          f"(e.g. {self.skipped[0][0]}: {self.skipped[0][1]})", stacklevel=2)
        self.samples: List[FaceSample] = kept
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self._bad = set()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_annotations(cls, annotations: str, images_dir: str, format: str = "auto", **kwargs) -> "FaceDataset":
        """From ``wider_face_*_bbx_gt.txt`` (format ``txt``), ``label.txt`` (``label``, with landmarks)
        or ``wider_face_val.mat`` (``mat``); image paths are ``images_dir/<name>``.

        Faces flagged invalid in the official txt, and zero-size or inverted boxes, get ``ignore``.
        Landmarks (``label``) are NaN where the file has none (-1), real coordinates elsewhere, even
        outside the image."""
        entries = read_gt(annotations, format)
        samples, bad_boxes = [], 0
        for g in entries:
            b = np.asarray(g.boxes, dtype=np.float32).reshape(-1, 4)
            ign = (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
            bad_boxes += int(ign.sum())
            if g.invalid is not None and len(g.invalid) == len(b):
                ign |= g.invalid
            lm = None
            if g.landmarks is not None:
                lm = np.asarray(g.landmarks, dtype=np.float32).reshape(-1, 5, 2)
                if len(lm) != len(b):
                    raise ValueError(f"{annotations}: {g.path} has {len(b)} boxes but {len(lm)} landmark sets")
            samples.append(FaceSample(_find_image(images_dir, g.path), b, lm, ign.astype(bool)))
        if bad_boxes:
            warnings.warn(f"{annotations}: {bad_boxes} zero-size or inverted boxes are marked ignore", stacklevel=2)
        return cls(samples, **kwargs)

    @classmethod
    def from_folder(cls, root: str, split: str = "train", prefer_landmarks: bool = True, **kwargs) -> "FaceDataset":
        """Recognise a data set folder:

        * the layout of :func:`pyddsar.data.synthetic.write_dataset` and the standard WIDER one:
          ``root/WIDER_<split>/images`` with ``root/WIDER_<split>/label.txt`` (used first when
          ``prefer_landmarks``) or ``root/wider_face_split/wider_face_<split>_bbx_gt.txt``;
        * the RetinaFace layout ``root/<split>/images`` + ``root/<split>/label.txt``;
        * a split folder itself: ``root/images`` + ``root/label.txt``.
        """
        cands = []
        wider = os.path.join(root, f"WIDER_{split}")
        lab = os.path.join(wider, "label.txt")
        txt = os.path.join(root, "wider_face_split", f"wider_face_{split}_bbx_gt.txt")
        order = [(lab, "label"), (txt, "txt")] if prefer_landmarks else [(txt, "txt"), (lab, "label")]
        cands += [(a, f, os.path.join(wider, "images")) for a, f in order]
        cands.append((os.path.join(root, split, "label.txt"), "label", os.path.join(root, split, "images")))
        cands.append((os.path.join(root, "label.txt"), "label", os.path.join(root, "images")))
        for ann, fmt, img in cands:
            if os.path.isfile(ann) and os.path.isdir(img):
                return cls.from_annotations(ann, img, fmt, **kwargs)
        raise ValueError(f"{root}: no {split} data found; expected WIDER_{split}/images with WIDER_{split}/label.txt "
                         f"or wider_face_split/wider_face_{split}_bbx_gt.txt, or {split}/images + {split}/label.txt")

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @staticmethod
    def _decode(path: str) -> Optional[np.ndarray]:
        import cv2

        rgb = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10 decodes to RGB: no extra pass
        img = cv2.imread(path, cv2.IMREAD_COLOR if rgb is None else rgb)
        if img is None or img.size == 0:
            return None
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if rgb is None else img

    def load_image(self, index: int) -> Optional[np.ndarray]:
        """RGB uint8 [H, W, 3], or None (counted in ``skipped``, with a warning) when it cannot be decoded."""
        path = self.samples[index].image_path
        img = self._decode(path)
        if img is None and path not in self._bad:
            self._bad.add(path)
            self.skipped.append((path, "cannot decode"))
            warnings.warn(f"FaceDataset: cannot decode {path}; skipped", stacklevel=3)
        return img

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        if self.transform is None:
            return self.samples[index]
        for k in range(len(self)):
            i = (index + k) % len(self)
            img = self.load_image(i)
            if img is not None:
                rng = np.random.default_rng([self.seed, self.epoch, i])
                return self.transform(img, self.samples[i], rng)
        raise ValueError("FaceDataset: no image could be decoded")
