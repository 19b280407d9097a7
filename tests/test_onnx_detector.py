"""pyddsar.onnx_detector.OnnxDetector: the torch-free deployment path gives pyddsar.Detector's faces."""

import os

import numpy as np
import pytest
import torch

from pyddsar.inference import Detector, letterbox as torch_letterbox, normalise as torch_normalise
from pyddsar.onnx_export import export_onnx, matched_fraction
from pyddsar.onnx_detector import OnnxDetector, letterbox, normalise

pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("PYDDSAR_DATA") or os.path.join(REPO, "..", "shared", "data")
ONNX = os.path.join(DATA, "models", "scrfd_2.5g_bnkps.onnx")
PHOTOS = [os.path.join(DATA, "images", f) for f in ("crowd_cheering.jpg", "group_solvay_1927.jpg", "portrait_newton.png")]
needs_data = pytest.mark.skipif(not os.path.isfile(ONNX), reason=f"shared data not found at {DATA} (set PYDDSAR_DATA)")


def insightface_blob(img, size):
    """insightface's SCRFD.detect preprocessing (model_zoo/scrfd.py), restated for a square input."""
    im_ratio = float(img.shape[0]) / img.shape[1]
    if im_ratio > 1.0:
        new_height, new_width = size, int(size / im_ratio)
    else:
        new_width, new_height = size, int(size * im_ratio)
    det_img = np.zeros((size, size, 3), dtype=np.uint8)
    det_img[:new_height, :new_width, :] = cv2.resize(img, (new_width, new_height))
    blob = cv2.dnn.blobFromImage(det_img, 1.0 / 128, (size, size), (127.5, 127.5, 127.5), swapRB=True)
    return blob, float(new_height) / img.shape[0]


def test_preprocessing_is_insightfaces():
    rng = np.random.default_rng(0)
    # (40, 29) and (128, 93): sizes where int(size * w / h) and insightface's int(size / (h / w)) differ
    for shape in ((120, 200, 3), (333, 97, 3), (64, 64, 3), (40, 29, 3), (128, 93, 3), (29, 40, 3)):
        img = rng.integers(0, 255, shape, dtype=np.uint8)
        want, want_scale = insightface_blob(img, 640)
        a, sa = letterbox(img, 640)
        assert sa == want_scale
        assert np.array_equal(normalise(a[None]), want)  # the same float32 bits
        b, sb = torch_letterbox(img, 640)  # pyddsar.Detector's path is the same function's
        assert sb == sa and np.array_equal(torch_normalise(b[None]).numpy(), want)
    # a std that is not a power of two takes numpy's path: (x - mean) / std in float32, RGB
    img = rng.integers(0, 255, (1, 8, 8, 3), dtype=np.uint8)
    want = ((img[..., ::-1].astype(np.float32) - np.float32(100.0)) / np.float32(57.0)).transpose(0, 3, 1, 2)
    assert np.array_equal(normalise(img, 100.0, 57.0), want)


@needs_data
def test_same_faces_as_pyddsar_detector(tmp_path):
    from pyddsar.models import load_scrfd_onnx

    model = load_scrfd_onnx(ONNX)
    path = export_onnx(model, tmp_path / "pp.onnx", postprocess=True)
    od = OnnxDetector(path, threads=2)
    assert od.use_kps and od.input_size == 640
    det = Detector(model)
    for p in PHOTOS:
        a, b = od.detect(p), det.detect(p)
        assert len(a) == len(b) > 0
        x, y = np.c_[a.boxes, a.scores, a.landmarks.reshape(-1, 10)], np.c_[b.boxes, b.scores, b.landmarks.reshape(-1, 10)]
        assert matched_fraction(x, y, tol=2e-2, score_tol=1e-4) == 1.0
    batch = od.detect_batch([cv2.imread(p) for p in PHOTOS], batch_size=2)
    assert [len(r) for r in batch] == [len(det.detect(p)) for p in PHOTOS]


def test_refusals(tmp_path, busy_head):
    from pyddsar.models import build_detector

    torch.manual_seed(0)
    m = busy_head(build_detector("ddsar-0.5g")).eval()
    raw = export_onnx(m, tmp_path / "raw.onnx", input_size=(128, 128))
    with pytest.raises(ValueError, match="postprocess=True"):
        OnnxDetector(raw)
    pp = export_onnx(m, tmp_path / "pp.onnx", postprocess=True, dynamic=False, input_size=(128, 128))
    od = OnnxDetector(pp, threads=1)
    assert od.input_size == 128 and not od.use_kps and od.detect(np.zeros((50, 70, 3), np.uint8)).landmarks is None
    with pytest.raises(ValueError, match="fixed 128x128"):
        OnnxDetector(pp, input_size=256)
    with pytest.raises(ValueError, match="threads"):
        OnnxDetector(pp, threads=0)
    with pytest.raises(ValueError, match="HxW, HxWx1, HxWx3 or HxWx4"):
        od.detect(np.zeros((50, 70, 2), np.float32))
    gray = np.full((50, 70), 40.0, np.float32)  # other formats are converted as pyddsar.Detector converts them
    assert np.array_equal(od.preprocess([gray])[0], od.preprocess([np.full((50, 70, 3), 40, np.uint8)])[0])
    with pytest.raises(ValueError, match="list of images"):
        od.detect_batch(np.zeros((50, 70, 3), np.uint8))
    with pytest.raises(ValueError, match="not found"):
        OnnxDetector(tmp_path / "missing.onnx")


def test_imports_no_torch(run_python, tmp_path):
    code = ("import sys, numpy as np\nfrom pyddsar.onnx_detector import normalise, letterbox\n"
            "normalise(letterbox(np.zeros((20, 30, 3), np.uint8), 64)[0][None])\n"
            "print('torch' in sys.modules, 'onnx' in sys.modules)")
    assert run_python("-c", code).stdout.split() == ["False", "False"]


def test_session_specialised_to_the_letterbox_size(tmp_path, busy_head):
    """A dynamic file runs in a session whose height and width are fixed to ``input_size`` (so that
    onnxruntime can fuse the Adds whose inputs it could not prove the same shape); it finds what a plain
    dynamic session finds on the same input, and other sizes of the same file work too."""
    import onnxruntime as ort
    from pyddsar.models import build_detector

    torch.manual_seed(0)
    m = busy_head(build_detector("ddsar-0.5g")).eval()
    pp = export_onnx(m, tmp_path / "pp.onnx", postprocess=True, input_size=(128, 128))
    plain = ort.InferenceSession(pp, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 255, (90, 150, 3), dtype=np.uint8), rng.integers(0, 255, (200, 120, 3), dtype=np.uint8)]
    for size in (128, 256):
        od = OnnxDetector(pp, threads=1, input_size=size)
        assert od.session.get_inputs()[0].shape == ["batch", 3, size, size]
        x, scales = od.preprocess(images)
        ref, num = plain.run(None, {"input.1": x})
        got = od.detect_batch(images)
        for b, r in enumerate(got):
            n = int(num[b])
            assert len(r) == n > 0
            want = ref[b, :n, :5].astype(np.float64)
            want[:, :4] /= scales[b]
            assert matched_fraction(np.c_[r.boxes, r.scores], want, tol=1e-3, score_tol=1e-5) == 1.0
