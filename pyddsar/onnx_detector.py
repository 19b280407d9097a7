"""Deploy an exported detector with onnxruntime alone: :class:`OnnxDetector`.

The file is one written by ``pyddsar.export_onnx(model, path, postprocess=True)`` (decoding, top-k and
NMS inside the graph). Preprocessing is done with OpenCV and numpy, as pyddsar's Detector does it
(longer side scaled to the input size, bilinear, bottom/right zero padding, BGR -> RGB,
``(x - 127.5) / 128``), and never touches torch: measured on 2 cores, torch's normalisation left its
OpenMP threads spinning beside onnxruntime's and doubled the latency of the run after it
(docs/deploy.md, "Deployment latency"). The session runs sequentially on ``threads`` intra-op threads.
This module imports neither torch nor the onnx package.
"""

from __future__ import annotations

import os
from typing import List, NamedTuple, Optional, Sequence

import numpy as np

from ._validate import integer
from .preprocess import letterbox, normalise, to_bgr8  # noqa: F401 (normalise, letterbox: part of this module's API)


class Detections(NamedTuple):
    """The fields of :class:`pyddsar.Detections`: ``boxes`` [N, 4] x1 y1 x2 y2, ``scores`` [N],
    ``landmarks`` [N, 5, 2] or None, float32, in the original image's pixels, by decreasing score."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: Optional[np.ndarray]

    def __len__(self):
        return int(self.boxes.shape[0])


def session_options(threads: Optional[int] = None, spinning: bool = True):
    """onnxruntime options for latency on a CPU: ``threads`` intra-op threads (default: all cores),
    one inter-op thread, sequential execution, every graph optimisation. ``spinning=False`` stops
    idle workers from busy-waiting: use it when other CPU work runs between calls."""
    import onnxruntime as ort

    threads = integer(threads, "threads", low=1, allow_none=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or (os.cpu_count() or 1)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


class OnnxDetector:
    """Faces in images with an ONNX file exported with ``postprocess=True`` (module doc).

    ``threads``: onnxruntime intra-op threads (default all cores); ``input_size``: the square side
    (default: the file's fixed size, else 640); ``mean`` / ``std`` / ``rgb``: the normalisation the
    model was trained with (pyddsar's and SCRFD's by default). Thresholds and NMS are those baked into
    the file at export.
    """

    def __init__(self, path, threads: Optional[int] = None, input_size: Optional[int] = None, mean: float = 127.5,
                 std: float = 128.0, rgb: bool = True, spinning: bool = True):
        import onnxruntime as ort

        if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
            raise ValueError(f"ONNX file not found: {path!r}")

        def open_session(options):
            try:
                return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
            except Exception as e:  # onnxruntime's own errors: not a model, unsupported op ...
                raise ValueError(f"{path}: onnxruntime cannot load it ({type(e).__name__}: {e})") from None

        probe_options = ort.SessionOptions()  # read the file's inputs and outputs, optimise nothing
        probe_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        probe = open_session(probe_options)
        outs = [o.name for o in probe.get_outputs()]
        if outs != ["detections", "num_detections"]:
            raise ValueError(f"{path}: outputs {outs}; OnnxDetector runs files exported with postprocess=True "
                             "(outputs detections, num_detections). For raw SCRFD files use pyddsar.Detector")
        inp = probe.get_inputs()[0]
        self.input_name = inp.name
        fixed = inp.shape[2] if isinstance(inp.shape[2], int) and inp.shape[2] > 0 else None
        size = input_size if input_size is not None else (fixed or 640)
        size = integer(size, "input_size", low=1, multiple_of=32)
        if fixed is not None and size != fixed:
            raise ValueError(f"{path} has a fixed {fixed}x{fixed} input; input_size {size} does not fit it")
        if not std > 0:
            raise ValueError(f"std must be positive, got {std!r}")
        # Every input is letterboxed to size x size, so the session is specialised to that size: with
        # the height and width known, onnxruntime proves the two inputs of each residual and neck Add
        # the same shape and fuses the Add into its convolution (7 of them in SCRFD-2.5G, with their
        # layout reorders: 2.2 ms of a 45 ms run on 2 cores, docs/deploy.md).
        options = session_options(threads, spinning)
        for dim in inp.shape[2:]:
            if isinstance(dim, str) and dim:
                options.add_free_dimension_override_by_name(dim, int(size))
        self.session = open_session(options)
        self.use_kps = probe.get_outputs()[0].shape[-1] == 15
        self.input_size, self.mean, self.std, self.rgb = int(size), float(mean), float(std), bool(rgb)

    def preprocess(self, images: Sequence[np.ndarray]):
        """BGR uint8 images -> (input [B, 3, S, S] float32, letterbox scales)."""
        boxes, scales = zip(*(letterbox(to_bgr8(im), self.input_size) for im in images))
        return normalise(np.stack(boxes), self.mean, self.std, self.rgb), list(scales)

    def detect(self, image) -> Detections:
        """Faces in one image (a path or a BGR uint8 array)."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence, batch_size: int = 8) -> List[Detections]:
        if isinstance(images, (str, os.PathLike, np.ndarray)):
            raise ValueError("detect_batch takes a list of images; use detect() for one")
        batch_size = integer(batch_size, "batch_size", low=1)
        images, out = list(images), []
        for i in range(0, len(images), batch_size):
            x, scales = self.preprocess(images[i:i + batch_size])
            dets, num = self.session.run(None, {self.input_name: x})
            for b, s in enumerate(scales):
                d = dets[b, :int(num[b])]
                lm = (d[:, 5:15].reshape(-1, 5, 2) / s).astype(np.float32) if self.use_kps else None
                out.append(Detections((d[:, :4] / s).astype(np.float32), d[:, 4].astype(np.float32), lm))
        return out
