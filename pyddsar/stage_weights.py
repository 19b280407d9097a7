"""Stage weights lambda_1..lambda_5 of the DDSAR-Score from real faces (paper section 4.2; SPEC section 7).

Decided method: each image at its native resolution gets a 4-level anchor pyramid, strides 4 / 8 / 16 /
32 for stages C2 / C3 / C4 / C5, two square anchors per location of sides {4, 8} / {16, 32} / {64, 128} /
{256, 512} (SCRFD's layout: centres at (x * stride, y * stride)). The faces are assigned with ATSS
(:func:`pyddsar.ops.atss_assign`, top 9 per level, SCRFD's inside test by default); each face goes to
the level holding most of its positive anchors (ties to the finer level). Faces with no positive
anchor are counted apart and reported. lambda_2..lambda_5 = 0.8 x the share of assigned faces per
level, lambda_1 = 0.2, so the five sum to 1.

Image sizes: when not given (the .mat and the official txt carry none), width and height are the
largest box extents (x2, y2) rounded up to the next multiple of 32 (at least 32). Feature maps are
ceil(size / stride) cells. Boxes with x2 < x1 or y2 < y1 (WIDER val has one) are skipped and reported.

``WIDERFACE_LAMBDAS`` is the result on WIDER Face val (``wider_face_val.mat``: 3,226 images, 39,708
faces), shipped as the face counts per level so the lambdas are exact ratios; a test recomputes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

__all__ = ["stage_weights", "StageWeights", "WIDERFACE_COUNTS", "WIDERFACE_LAMBDAS", "LAMBDA_1", "PYRAMID"]

LAMBDA_1 = 0.2
#: (stride, (anchor sides)) for C2..C5.
PYRAMID = ((4, (4.0, 8.0)), (8, (16.0, 32.0)), (16, (64.0, 128.0)), (32, (256.0, 512.0)))

#: Faces of WIDER Face val assigned to C2, C3, C4, C5 by :func:`stage_weights` (scrfd inside test), and
#: the faces with no positive anchor. Computed with ``pyddsar lambdas --gt wider_face_val.mat``.
WIDERFACE_COUNTS = (16730, 15414, 5960, 1055)
WIDERFACE_UNASSIGNED = 548  # plus 1 face with a negative width, skipped


def _lambdas(counts: Sequence[int]) -> Tuple[float, ...]:
    total = sum(counts)
    if total == 0:
        raise ValueError("no face was assigned to any level: the stage weights are undefined")
    return (LAMBDA_1,) + tuple((1.0 - LAMBDA_1) * c / total for c in counts)


@dataclass(frozen=True)
class StageWeights:
    """Result of :func:`stage_weights`."""

    lambdas: Tuple[float, float, float, float, float]  # lambda_1..lambda_5, sum 1
    counts: Tuple[int, int, int, int]  # faces assigned to C2..C5
    num_images: int
    num_faces: int
    unassigned: Tuple[Tuple[int, int], ...] = field(default=())  # (image, face) with no positive anchor
    invalid: Tuple[Tuple[int, int], ...] = field(default=())  # (image, face) with x2 < x1 or y2 < y1, skipped
    inferred_sizes: int = 0  # images whose size came from the box extents

    @property
    def shares(self) -> Tuple[float, ...]:
        total = sum(self.counts)
        return tuple(c / total for c in self.counts)

    def to_dict(self) -> dict:
        return {
            "lambdas": list(self.lambdas),
            "counts": {f"C{i + 2}": c for i, c in enumerate(self.counts)},
            "shares": list(self.shares),
            "num_images": self.num_images,
            "num_faces": self.num_faces,
            "unassigned_faces": len(self.unassigned),
            "unassigned": [list(p) for p in self.unassigned],
            "invalid_faces": len(self.invalid),
            "invalid": [list(p) for p in self.invalid],
            "inferred_sizes": self.inferred_sizes,
        }

    def __str__(self) -> str:
        rows = [f"lambda_1: {self.lambdas[0]:.6f}  (fixed)"]
        for i in range(4):
            rows.append(
                f"lambda_{i + 2}: {self.lambdas[i + 1]:.6f}  (C{i + 2}: {self.counts[i]} faces, "
                f"{100 * self.shares[i]:.2f} %)"
            )
        rows.append(
            f"{self.num_faces} faces in {self.num_images} images; {len(self.unassigned)} faces with no positive "
            f"anchor and {len(self.invalid)} with x2 < x1 or y2 < y1 (not counted); "
            f"{self.inferred_sizes} image sizes inferred from box extents"
        )
        return "\n".join(rows)


def _size_from_boxes(boxes) -> Tuple[int, int]:
    if len(boxes) == 0:
        return 32, 32
    w = max(32, int(math.ceil(float(boxes[:, 2].max()) / 32.0)) * 32)
    h = max(32, int(math.ceil(float(boxes[:, 3].max()) / 32.0)) * 32)
    return w, h


def stage_weights(boxes_per_image, image_sizes=None, *, topk: int = 9, inside: str = "scrfd",
                  progress=None) -> StageWeights:
    """Stage weights from face boxes (see the module docstring for the method).

    ``boxes_per_image``: a sequence with, per image, an ``[M, 4]`` array-like or tensor of
    ``(x1, y1, x2, y2)`` boxes (M may be 0). ``image_sizes``: None, or per image ``(width, height)`` or
    None (then inferred from the boxes). Returns a :class:`StageWeights`; ``.lambdas`` are
    lambda_1..lambda_5. ``progress``, when given, is called as ``progress(done, total)`` after each
    image (`pyddsar lambdas` draws it as a bar).
    """
    import numpy as np
    import torch

    from . import ops

    try:
        images = list(boxes_per_image)
    except TypeError:
        raise ValueError("boxes_per_image must be a sequence of [M, 4] box arrays, one per image") from None
    if image_sizes is None:
        sizes = [None] * len(images)
    else:
        sizes = list(image_sizes)
        if len(sizes) != len(images):
            raise ValueError(f"image_sizes has {len(sizes)} entries but boxes_per_image has {len(images)}")

    anchor_cache = {}
    counts = [0, 0, 0, 0]
    unassigned: List[Tuple[int, int]] = []
    invalid: List[Tuple[int, int]] = []
    num_faces = inferred = 0
    for i, b in enumerate(images):
        if progress is not None and i:
            progress(i, len(images))
        if isinstance(b, torch.Tensor):
            arr = b.detach().cpu().double().numpy()
        else:
            try:
                arr = np.asarray(b, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"image {i}: boxes must be numbers") from None
        if arr.size == 0:
            arr = arr.reshape(0, 4)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"image {i}: boxes must have shape [M, 4], got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"image {i}: boxes contain NaN or infinite values")
        bad = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
        num_faces += arr.shape[0]
        if bad.any():  # negative width or height (WIDER val has one): reported, not counted
            invalid.extend((i, int(j)) for j in np.nonzero(bad)[0])
            keep_idx = np.nonzero(~bad)[0]
            arr = arr[~bad]
        else:
            keep_idx = None
        m = arr.shape[0]
        if sizes[i] is None:
            w, h = _size_from_boxes(arr)
            inferred += 1
        else:
            try:
                w, h = (int(v) for v in sizes[i])
            except (TypeError, ValueError):
                raise ValueError(f"image_sizes[{i}] must be (width, height), got {sizes[i]!r}") from None
            if w <= 0 or h <= 0:
                raise ValueError(f"image_sizes[{i}] must be positive, got {sizes[i]!r}")
        if m == 0:
            continue
        key = (w, h)
        if key not in anchor_cache:
            fs = [(-(-h // s), -(-w // s)) for s, _ in PYRAMID]
            anchors = ops.anchors(
                fs, strides=[s for s, _ in PYRAMID], base_sizes=[sides[0] for _, sides in PYRAMID], scales=(1.0, 2.0)
            )
            levels = ops.num_anchors_per_level(fs, 2)
            level_of = torch.repeat_interleave(torch.arange(4), torch.tensor(levels))
            anchor_cache = {key: (anchors, levels, level_of)}  # images of one size tend to come together
        anchors, levels, level_of = anchor_cache[key]
        assigned, _ = ops.atss_assign(anchors, levels, torch.from_numpy(arr).float(), topk=topk, inside=inside)
        pos = assigned > 0
        per = torch.zeros(m, 4, dtype=torch.int64)
        per.index_put_((assigned[pos] - 1, level_of[pos]), torch.ones(int(pos.sum()), dtype=torch.int64), accumulate=True)
        best = per.argmax(1)  # first maximum: ties go to the finer level
        has = per.sum(1) > 0
        for lvl in range(4):
            counts[lvl] += int(((best == lvl) & has).sum())
        missing = torch.nonzero(~has).flatten().tolist()
        unassigned.extend((i, int(keep_idx[j]) if keep_idx is not None else j) for j in missing)
    if progress is not None:
        progress(len(images), len(images))
    return StageWeights(
        lambdas=_lambdas(counts),
        counts=tuple(counts),
        num_images=len(images),
        num_faces=num_faces,
        unassigned=tuple(unassigned),
        invalid=tuple(invalid),
        inferred_sizes=inferred,
    )


#: lambda_1..lambda_5 for WIDER Face val (the ``lambdas="widerface"`` of :func:`pyddsar.score`):
#: about (0.2, 0.3418, 0.3149, 0.1218, 0.0216).
WIDERFACE_LAMBDAS = _lambdas(WIDERFACE_COUNTS)

# `pyddsar.stage_weights` is this module's function once the package is imported; let the constants be
# read through it too (pyddsar.stage_weights.WIDERFACE_LAMBDAS).
stage_weights.WIDERFACE_LAMBDAS = WIDERFACE_LAMBDAS
stage_weights.WIDERFACE_COUNTS = WIDERFACE_COUNTS
stage_weights.StageWeights = StageWeights
