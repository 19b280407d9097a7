"""insightface SCRFD ONNX import (parity with onnxruntime) and export round trips."""

import os

import numpy as np
import pytest
import torch

from pyddsar import ops
from pyddsar.inference import Detector, fix_boxes, letterbox, normalise, to_bgr8
from pyddsar.models import build_detector, load_scrfd_onnx
from pyddsar.onnx_export import RawOutputs, export_onnx, matched_fraction, verify_onnx

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("PYDDSAR_DATA") or os.path.join(REPO, "..", "shared", "data")
ONNX = os.path.join(DATA, "models", "scrfd_2.5g_bnkps.onnx")
IMAGES = [os.path.join(DATA, "images", f) for f in ("crowd_cheering.jpg", "group_solvay_1927.jpg", "portrait_newton.png")]
needs_data = pytest.mark.skipif(not os.path.isfile(ONNX), reason=f"shared data not found at {DATA} (set PYDDSAR_DATA)")


@pytest.fixture(scope="module")
def scrfd():
    return load_scrfd_onnx(ONNX)


@pytest.fixture(scope="module")
def session():
    return ort.InferenceSession(ONNX, providers=["CPUExecutionProvider"])


def _blob(path):
    img, scale = letterbox(to_bgr8(path), 640)
    return normalise(img[None]), scale


@needs_data
def test_recognised_config(scrfd):
    c = scrfd.config
    assert c.name == "scrfd-2.5g-kps" and c.fused and c.use_kps and not c.shared_head
    assert (c.backbone, c.block, c.stage_planes, c.stage_blocks, c.stem_channels) == (
        "resnetv1e", "basic", (24, 48, 48, 80), (3, 5, 3, 2), 24)
    assert (c.neck_channels, c.stacked_convs, c.feat_channels) == (24, 2, 64)


@needs_data
@pytest.mark.parametrize("path", IMAGES)
def test_raw_parity_and_detections(scrfd, session, path):
    x, scale = _blob(path)
    ref = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input.1": x.numpy()})))
    with torch.no_grad():
        out = scrfd(x)
    for i, s in enumerate((8, 16, 32)):
        np.testing.assert_allclose(out.cls[i].sigmoid().numpy(), ref[f"score_{s}"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(out.bbox[i].numpy(), ref[f"bbox_{s}"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(out.kps[i].numpy(), ref[f"kps_{s}"], atol=1e-4, rtol=0)
    # detections: onnxruntime outputs through the same decoding and post-process
    sizes = [(640 // s, 640 // s) for s in (8, 16, 32)]
    centers = ops.anchor_centers(sizes)
    stride = torch.cat([torch.full((n,), float(s)) for n, s in zip(ops.num_anchors_per_level(sizes), (8, 16, 32))])
    scores = torch.from_numpy(np.concatenate([ref[f"score_{s}"][0, :, 0] for s in (8, 16, 32)]))
    dist = torch.from_numpy(np.concatenate([ref[f"bbox_{s}"][0] for s in (8, 16, 32)])) * stride[:, None]
    boxes = fix_boxes(ops.distance2bbox(centers, dist))
    rb, rs, _ = ops.postprocess(boxes, scores, 0.02, 5000, 0.45, 750)
    det = Detector(scrfd).detect(path)
    assert len(det) == rb.shape[0]
    # the same detections, compared as sets: float noise between the runtimes (~1e-6 on scores) can
    # swap the order of two faces of (almost) equal score. Pixels: 1e-4 stride units x 32 / scale
    got, want = np.c_[det.boxes, det.scores], np.c_[(rb / scale).numpy(), rs.numpy()]
    assert matched_fraction(got, want, tol=1e-2, score_tol=1e-4) == 1.0
    assert matched_fraction(want, got, tol=1e-2, score_tol=1e-4) == 1.0
    np.testing.assert_allclose(np.sort(det.scores), np.sort(rs.numpy()), atol=1e-4)


@needs_data
def test_export_round_trip_imported(scrfd, tmp_path):
    p = export_onnx(scrfd, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    assert names == [f"{k}_{s}" for k in ("score", "bbox", "kps") for s in (8, 16, 32)]
    assert verify_onnx(RawOutputs(scrfd), p, [(2, 480, 640), (1, 320, 256)]) < 1e-4
    # the exported file is itself an importable SCRFD file with the same configuration
    again = load_scrfd_onnx(p)
    assert again.config == scrfd.config


@pytest.mark.parametrize("name", ["ddsar-0.5g", "scrfd-0.5g"])
def test_export_round_trip_presets(name, tmp_path):
    torch.manual_seed(0)
    m = build_detector(name).eval()
    p = export_onnx(m, tmp_path / "m.onnx", input_size=(256, 192))
    assert verify_onnx(RawOutputs(m), p, [(2, 480, 640), (1, 320, 256)]) < 1e-4


def test_export_bad_arguments(tmp_path):
    m = build_detector("scrfd-0.5g")
    with pytest.raises(ValueError, match="multiples of 32"):
        export_onnx(m, tmp_path / "m.onnx", input_size=(100, 100))
    with pytest.raises(ValueError, match="folder"):
        export_onnx(m, tmp_path / "missing" / "m.onnx")
    with pytest.raises(ValueError):
        export_onnx(torch.nn.Conv2d(3, 3, 1), tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="nms_threshold"):
        export_onnx(m, tmp_path / "m.onnx", postprocess=True, nms_threshold=1.5)
    with pytest.raises(ValueError, match="max_detections"):
        export_onnx(m, tmp_path / "m.onnx", postprocess=True, max_detections=0)


def test_import_rejects_non_scrfd(tmp_path):
    p = tmp_path / "conv.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3), (torch.zeros(1, 3, 8, 8),), str(p), dynamo=False)
    with pytest.raises(ValueError, match="not an SCRFD model"):
        load_scrfd_onnx(p)
    t = tmp_path / "text.onnx"
    t.write_text("hello")
    with pytest.raises(ValueError, match="not a readable ONNX"):
        load_scrfd_onnx(t)
    with pytest.raises(ValueError, match="not found"):
        load_scrfd_onnx(tmp_path / "missing.onnx")


@needs_data
def test_import_rejects_other_preset():
    with pytest.raises(ValueError, match="not for 'scrfd-2.5g'"):
        load_scrfd_onnx(ONNX, expect="scrfd-2.5g")
    with pytest.raises(ValueError, match="unknown preset"):
        load_scrfd_onnx(ONNX, expect="nope")
