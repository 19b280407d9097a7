"""`export_onnx(..., target="insightface")`: files insightface's own loader runs unchanged.

Checked two ways: with a plain re-statement of insightface's SCRFD loader written here (it always runs)
and, where the `insightface` package is importable (an optional test dependency: `pip install
insightface`), with insightface's own `SCRFD` class and `FaceAnalysis`.

The re-statement follows insightface/model_zoo/scrfd.py (`SCRFD._init_vars`, `forward`,
`_detect_candidates`, `nms`): outputs by count (6: strides 8/16/32, 2 anchors; 9: and keypoints),
batched when the first output has rank 3; input letterboxed to the top-left of the detection size,
`blobFromImage(1/128, mean 127.5, swapRB)`; anchor centres (x, y) * stride row-major, each repeated per
anchor; scores >= threshold; boxes / keypoints = centre -/+ distances * stride; NMS with areas counted
as (x2 - x1 + 1) * (y2 - y1 + 1), suppressing IoU > threshold.
"""

import os
import shutil

import numpy as np
import pytest
import torch

import _scrfd_layouts as L
from pyddsar.cli import main
from pyddsar.inference import Detector
from pyddsar.models import build_detector, load_scrfd_onnx
from pyddsar.onnx_export import export_onnx, matched_fraction

ort = pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

DATA = L.data_dir()
REAL = os.path.join(DATA, "models", "scrfd_2.5g_bnkps.onnx")
PHOTOS = [os.path.join(DATA, "images", f) for f in ("crowd_cheering.jpg", "group_solvay_1927.jpg", "portrait_newton.png")]
needs_real = pytest.mark.skipif(not os.path.isfile(REAL) or not all(os.path.isfile(p) for p in PHOTOS),
                                reason=f"pretrained SCRFD / photos not found in {DATA} (set PYDDSAR_DATA)")


class PlainSCRFD:
    """insightface's SCRFD loader, re-stated (module doc)."""

    def __init__(self, path):
        self.sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs = self.sess.get_outputs()
        n = len(outs)
        assert n in (6, 9), f"insightface needs 6 or 9 outputs, got {n}"
        self.fmc, self.strides, self.anchors, self.use_kps = 3, (8, 16, 32), 2, n == 9
        self.batched = len(outs[0].shape) == 3
        self.input_name = self.sess.get_inputs()[0].name

    def candidates(self, img, size=640, threshold=0.5, sort=True):
        h, w = img.shape[:2]
        if h / w > 1.0:
            nh, nw = size, int(size / (h / w))
        else:
            nw, nh = size, int(size * (h / w))
        scale = nh / h
        canvas = np.zeros((size, size, 3), np.uint8)
        canvas[:nh, :nw] = cv2.resize(img, (nw, nh))
        blob = cv2.dnn.blobFromImage(canvas, 1.0 / 128, (size, size), (127.5, 127.5, 127.5), swapRB=True)
        outs = self.sess.run(None, {self.input_name: blob})
        scores, boxes, kpss = [], [], []
        for i, s in enumerate(self.strides):
            pick = (lambda k: outs[k][0]) if self.batched else (lambda k: outs[k])
            sc, bb = pick(i), pick(i + self.fmc) * s
            gy, gx = np.mgrid[: size // s, : size // s]
            c = np.stack([gx, gy], -1).reshape(-1, 2).astype(np.float32) * s
            c = np.repeat(c, self.anchors, axis=0)
            keep = np.where(sc[:, 0] >= threshold)[0]
            scores.append(sc[keep, 0])
            boxes.append(np.hstack([c - bb[:, :2], c + bb[:, 2:]])[keep])
            if self.use_kps:
                kp = pick(i + 2 * self.fmc) * s
                kpss.append((np.tile(c, 5) + kp).reshape(-1, 5, 2)[keep])
        sc, bx = np.concatenate(scores), np.concatenate(boxes) / scale
        kp = np.concatenate(kpss) / scale if self.use_kps else None
        order = np.argsort(-sc, kind="stable") if sort else np.arange(len(sc))
        return sc[order], bx[order], (kp[order] if kp is not None else None)

    def detect(self, img, size=640, threshold=0.5, nms=0.4):
        sc, bx, kp = self.candidates(img, size, threshold)
        x1, y1, x2, y2 = bx.T
        areas = (x2 - x1 + 1) * (y2 - y1 + 1)
        order, keep = np.arange(len(sc)), []
        while order.size:
            i = order[0]
            keep.append(i)
            rest = order[1:]
            iw = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
            ih = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
            inter = iw * ih
            order = rest[inter / (areas[i] + areas[rest] - inter) <= nms]
        return np.c_[bx[keep], sc[keep]], (kp[keep] if kp is not None else None)


@pytest.fixture(scope="module")
def pretrained():
    return load_scrfd_onnx(REAL)


@pytest.fixture(scope="module")
def exported(pretrained, tmp_path_factory):
    return export_onnx(pretrained, tmp_path_factory.mktemp("if") / "det_pyddsar.onnx", target="insightface")


@needs_real
def test_plain_loader_detects_the_same_faces_as_on_the_original_file(exported):
    ours, theirs = PlainSCRFD(exported), PlainSCRFD(REAL)
    assert ours.use_kps and ours.batched
    total = 0
    for p in PHOTOS:
        img = cv2.imread(p)
        (a, ka), (b, kb) = ours.detect(img), theirs.detect(img)
        assert len(a) == len(b) > 0
        total += len(a)
        # same faces; pixels of the original image (1e-4 stride units x 32 / scale)
        assert matched_fraction(a, b, tol=5e-2, score_tol=1e-4) == 1.0
        np.testing.assert_allclose(np.sort(ka.reshape(len(ka), -1), 0), np.sort(kb.reshape(len(kb), -1), 0), atol=5e-2)
    assert total >= 50  # crowd 26, Solvay 29, Newton 1


@needs_real
def test_plain_loader_equals_pyddsar_detector(pretrained, exported):
    """The insightface pipeline on the exported file and pyddsar's Detector at insightface's thresholds
    (0.5 / NMS 0.4) find the same faces; candidates before NMS are equal exactly."""
    plain = PlainSCRFD(exported)
    det = Detector(pretrained, score_threshold=0.5, nms_threshold=0.4, pre_nms_topk=None, max_detections=None)
    for p in PHOTOS:
        img = cv2.imread(p)
        sc, bx, kp = plain.candidates(img)
        raw = det.forward(det.preprocess([img])[0])
        keep = raw.scores[0] >= 0.5
        s = float(det.preprocess([img])[1][0])
        ref = np.c_[raw.boxes[0][keep].numpy() / s, raw.scores[0][keep].numpy()]
        assert len(ref) == len(sc)
        assert matched_fraction(np.c_[bx, sc], ref, tol=5e-2, score_tol=1e-4) == 1.0
        a, _ = plain.detect(img)
        d = det.detect(img)
        b = np.c_[d.boxes, d.scores]
        # the +1 in insightface's NMS areas moves IoUs by < 1 % for faces of > 20 px: the same survivors
        assert matched_fraction(a, b, tol=5e-2, score_tol=1e-4) == 1.0 and len(a) == len(b)


@pytest.mark.parametrize("name", ["scrfd-0.5g", "scrfd-10g-kps", "ddsar-0.5g", "ddsar-2.5g"])
def test_family_and_searched_backbones_decode_as_insightface_does(name, tmp_path):
    """Output order, strides, anchors per location and keypoints: insightface's decoding of the
    exported file equals pyddsar's own decoding (predict_raw), for SCRFD's backbones and searched ones."""
    torch.manual_seed(0)
    model = L.randomise(build_detector(name))
    path = export_onnx(model, tmp_path / "m.onnx", target="insightface", input_size=(320, 320))
    plain = PlainSCRFD(path)
    assert plain.use_kps == model.use_kps
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    sc, bx, kp = plain.candidates(img, size=320, threshold=0.0, sort=False)  # every anchor, in its order
    det = Detector(model, input_size=320)
    x, scales = det.preprocess([img])
    raw = det.forward(x)
    np.testing.assert_allclose(sc, raw.scores[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(bx, raw.boxes[0].numpy() / scales[0], atol=1e-3)
    if model.use_kps:
        np.testing.assert_allclose(kp, raw.kps[0].numpy() / scales[0], atol=1e-3)


def test_insightface_target_refusals(tmp_path):
    m = build_detector("scrfd-0.5g")
    with pytest.raises(ValueError, match="postprocess=True"):
        export_onnx(m, tmp_path / "m.onnx", target="insightface", postprocess=True)
    with pytest.raises(ValueError, match="target must be"):
        export_onnx(m, tmp_path / "m.onnx", target="tensorrt")
    with pytest.raises(ValueError, match="SCRFD-framework"):
        export_onnx(build_detector("asfd-baseline"), tmp_path / "m.onnx", target="insightface")


@needs_real
def test_cli_export_for_insightface(tmp_path, capsys):
    out = tmp_path / "det.onnx"
    assert main(["export", "--weights", REAL, "--out", str(out), "--insightface"]) == 0
    assert "insightface SCRFD layout" in capsys.readouterr().out
    assert main(["export", "--weights", REAL, "--out", str(out), "--insightface"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["export", "--weights", REAL, "--out", str(out), "--insightface", "--postprocess"]) == 2
    a, _ = PlainSCRFD(out).detect(cv2.imread(PHOTOS[0]))
    b, _ = PlainSCRFD(REAL).detect(cv2.imread(PHOTOS[0]))
    assert len(a) == len(b) == 26


# ------------------------------------------------------------------------------------------------
# insightface itself, where it installs


def _insightface():
    try:
        from insightface.app import FaceAnalysis
        from insightface.model_zoo.scrfd import SCRFD
    except Exception as e:  # not installed, or a dependency of it missing
        pytest.skip(f"the optional test dependency insightface is not importable ({type(e).__name__}: {e}); "
                    "pip install insightface to run this check")
    return SCRFD, FaceAnalysis


@needs_real
def test_insightface_scrfd_and_face_analysis_run_the_file_unchanged(exported, tmp_path):
    SCRFD, FaceAnalysis = _insightface()
    d = SCRFD(model_file=str(exported))
    d.prepare(-1, input_size=(640, 640), det_thresh=0.5)
    assert d.use_kps and d.batched and d.fmc == 3 and d._num_anchors == 2
    pack = tmp_path / "pack"
    pack.mkdir()
    shutil.copy(exported, pack / "det_pyddsar.onnx")  # a model-pack folder holding only our detector
    app = FaceAnalysis(name=str(pack), allowed_modules=["detection"], providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_size=(640, 640))
    plain = PlainSCRFD(exported)
    for p in PHOTOS:
        img = cv2.imread(p)
        boxes, kps = d.detect(img)
        ref, rk = plain.detect(img)
        assert boxes.shape == ref.shape and kps.shape == (len(ref), 5, 2)
        np.testing.assert_allclose(boxes, ref, atol=1e-3)
        np.testing.assert_allclose(kps, rk, atol=1e-3)
        faces = app.get(img)
        assert len(faces) == len(ref)
        np.testing.assert_allclose(np.array([f.bbox for f in faces]), ref[:, :4], atol=1e-3)
