"""Data: WIDER Face readers, ``FaceDataset``, training augmentation and synthetic data.

``pyddsar.data.FaceDataset`` / ``FaceSample`` import without torch or opencv; the augmentation and
the synthetic generator import opencv when called."""

from .dataset import FaceDataset, FaceSample  # noqa: F401
from .widerface_gt import GroundTruthImage, read_gt  # noqa: F401
