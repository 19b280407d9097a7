"""Dynamic ONNX export (raw and with in-graph post-processing) against torch and pyddsar.Detector."""

import os

import numpy as np
import pytest
import torch

from pyddsar.inference import Detector, letterbox, normalise, to_bgr8
from pyddsar.models import build_detector, load_scrfd_onnx
from pyddsar.onnx_export import INPUT_NAME, RawOutputs, export_onnx, match_detections

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("PYDDSAR_DATA") or os.path.join(REPO, "..", "shared", "data")
ONNX = os.path.join(DATA, "models", "scrfd_2.5g_bnkps.onnx")
IMG = os.path.join(DATA, "images")
needs_data = pytest.mark.skipif(not os.path.isfile(ONNX), reason=f"shared data not found at {DATA} (set PYDDSAR_DATA)")

# Pixels of the network input. The raw outputs agree within about 1e-4 stride units; at stride 32 that is
# a few 1e-3 pixels (measured worst: 1.9e-3 px on the portrait at 640), so 1e-3 px would test float noise.
TOL = 5e-3
SIZES = [(256, 256), (320, 416), (480, 640)]  # (height, width)


def _synthetic(seed, h, w):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    img[h // 4: h // 2, w // 4: w // 2] = 200
    return img


@pytest.fixture(scope="module")
def small(busy_head):
    torch.manual_seed(0)
    return busy_head(build_detector("ddsar-0.5g")).eval()


@pytest.fixture(scope="module")
def raw_session(small, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "raw.onnx"
    export_onnx(small, path, dynamic=True, postprocess=False, input_size=(256, 256))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def pp_session(small, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "pp.onnx"
    export_onnx(small, path, dynamic=True, postprocess=True, input_size=(256, 256))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("hw", SIZES)
def test_dynamic_raw_export(small, raw_session, batch, hw):
    x = torch.randn(batch, 3, *hw, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        ref = [t.numpy() for t in RawOutputs(small)(x)]
    got = raw_session.run(None, {INPUT_NAME: x.numpy()})
    assert len(got) == len(ref)
    for r, o in zip(ref, got):
        assert r.shape == o.shape and o.shape[0] == batch
        np.testing.assert_allclose(o, r, atol=1e-4, rtol=0)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("hw", SIZES)
def test_dynamic_postprocess_export_equals_python(small, pp_session, batch, hw):
    h, w = hw
    det = Detector(small)
    x = normalise(np.stack([_synthetic(10 * batch + i, h, w) for i in range(batch)]))
    ref = det.postprocess(det.forward(x), [1.0] * batch)
    dets, num = pp_session.run(None, {INPUT_NAME: x.numpy()})
    assert dets.shape == (batch, 750, 5) and dets.dtype == np.float32
    assert num.shape == (batch,) and num.dtype == np.int64
    for b, r in enumerate(ref):
        n = int(num[b])
        assert n == len(r) > 0
        assert match_detections(np.c_[r.boxes, r.scores], dets[b, :n]) <= TOL
        assert not dets[b, n:].any()


def test_postprocess_export_with_no_detection(small, tmp_path):
    """Every score under the threshold: zero rows and counts 0 (the graph builds its output from the
    input's shape, not from the detections)."""
    path = export_onnx(small, tmp_path / "none.onnx", postprocess=True, score_threshold=1.0, input_size=(128, 128))
    x = torch.randn(2, 3, 128, 160, generator=torch.Generator().manual_seed(3))
    dets, num = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {INPUT_NAME: x.numpy()})
    assert dets.shape == (2, 750, 5) and num.tolist() == [0, 0] and not dets.any()


def test_export_checks_and_rejects(small, tmp_path):
    with pytest.raises(ValueError, match="score_threshold"):
        export_onnx(small, tmp_path / "m.onnx", postprocess=True, score_threshold=-0.1)
    with pytest.raises(ValueError, match="pre_nms_topk"):
        export_onnx(small, tmp_path / "m.onnx", postprocess=True, pre_nms_topk=0)


@needs_data
def test_real_photos_onnxruntime_equals_detector(tmp_path):
    model = load_scrfd_onnx(ONNX)
    path = export_onnx(model, tmp_path / "scrfd_pp.onnx", dynamic=True, postprocess=True, input_size=(320, 320))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    imgs = [to_bgr8(os.path.join(IMG, f)) for f in ("crowd_cheering.jpg", "group_solvay_1927.jpg", "portrait_newton.png")]
    for size, batch in ((640, 3), (480, 1), (320, 2)):
        det = Detector(model, input_size=size)
        chosen = imgs[:batch]
        ref = det.detect_batch(chosen)
        lb = [letterbox(im, size) for im in chosen]
        dets, num = sess.run(None, {INPUT_NAME: normalise(np.stack([a for a, _ in lb])).numpy()})
        assert dets.shape == (batch, 750, 15)
        for b, (r, (_, s)) in enumerate(zip(ref, lb)):
            n = int(num[b])
            assert n == len(r) > 0
            # in input pixels (the original image's are these divided by the letterbox scale)
            mine = np.c_[r.boxes * s, r.scores, r.landmarks.reshape(-1, 10) * s]
            assert match_detections(mine, dets[b, :n]) <= TOL
