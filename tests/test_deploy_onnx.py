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


def test_postprocess_export_cuts_at_pre_nms_topk(small, tmp_path):
    """More scores above the threshold than ``pre_nms_topk`` in every image: the graph keeps each
    image's k best before NMS, as pyddsar.Detector does (the graph's TopK takes k from the batch's
    count above the threshold; here that count is far above k, so k itself must cut)."""
    k = 30
    path = export_onnx(small, tmp_path / "k.onnx", postprocess=True, score_threshold=0.02, pre_nms_topk=k,
                       input_size=(256, 256))
    det = Detector(small, score_threshold=0.02, pre_nms_topk=k)
    x = normalise(np.stack([_synthetic(40 + i, 256, 320) for i in range(3)]))
    with torch.no_grad():
        above = (torch.cat(small(x).cls, 1).sigmoid() > 0.02).sum((1, 2))
    assert (above > 3 * k).all()
    ref = det.postprocess(det.forward(x), [1.0] * 3)
    dets, num = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {INPUT_NAME: x.numpy()})
    for b, r in enumerate(ref):
        n = int(num[b])
        assert n == len(r) and 0 < n <= k
        assert match_detections(np.c_[r.boxes, r.scores], dets[b, :n]) <= TOL


def test_raw_graph_computes_no_shapes(small, tmp_path):
    """The raw export reads no shapes at run time, like insightface's own SCRFD files: the head's
    flattening is a Reshape to the constant ``[0, -1, k]`` and the neck's upsampling a Resize by the
    constant scales 2. (Traced, both read the input's shape: Shape / Gather / Unsqueeze / Concat /
    Slice chains before every output and Resize.) The only shapes read are torch's own GroupNorm
    export's, one per GroupNorm (InstanceNormalization, then a Reshape back to the input's shape)."""
    import onnx
    from onnx import numpy_helper

    torch.manual_seed(0)
    bn_kps = build_detector("scrfd-0.5g-kps").eval()
    g = onnx.load(export_onnx(bn_kps, tmp_path / "raw.onnx", input_size=(256, 256))).graph
    assert not {"Shape", "Gather", "Unsqueeze", "Concat", "Slice", "Cast"} & {n.op_type for n in g.node}
    const = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    const.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node if n.op_type == "Constant"})
    resize = [n for n in g.node if n.op_type == "Resize"]
    reshape = [n for n in g.node if n.op_type == "Reshape"]
    assert len(resize) == 2 and len(reshape) == 9
    for n in resize:
        assert const[n.input[2]].tolist() == [1, 1, 2, 2]
    assert sorted(const[n.input[1]].tolist() for n in reshape) == [[0, -1, 1]] * 3 + [[0, -1, 4]] * 3 + [[0, -1, 10]] * 3
    g = onnx.load(export_onnx(small, tmp_path / "gn.onnx", input_size=(256, 256))).graph
    ops = [n.op_type for n in g.node]
    assert 0 < ops.count("Shape") == ops.count("InstanceNormalization")
    assert not {"Gather", "Unsqueeze", "Concat", "Slice", "Cast"} & set(ops)


def test_neck_upsampling_equals_size_interpolation():
    """PAFPN's top-down path upsamples by the scale 2 when sizes double (the export's form) and to the
    lateral's size otherwise; both must equal nearest interpolation to the lateral's size."""
    import torch.nn.functional as F
    from pyddsar.models.pafpn import PAFPN

    torch.manual_seed(0)
    neck = PAFPN([8, 16, 24], 16).eval()

    def plain(feats):  # SPEC section 4 with mmdet's size-based upsampling, written out
        lat = [c(f) for c, f in zip(neck.lateral, feats)]
        for i in (2, 1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[2:], mode="nearest")
        mid = [c(v) for c, v in zip(neck.smooth, lat)]
        for i in range(2):
            mid[i + 1] = mid[i + 1] + neck.down[i](mid[i])
        return [mid[0]] + [c(v) for c, v in zip(neck.bottom_up, mid[1:])]

    for hw in ((32, 48), (30, 42)):  # doubling sizes; then odd sizes (15 -> 8 -> 4 ...: not double)
        h, w = hw
        feats = [torch.randn(2, c, -(-h // s), -(-w // s)) for c, s in ((8, 1), (16, 2), (24, 4))]
        with torch.no_grad():
            for a, b in zip(neck(feats), plain(feats)):
                torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("opset", [11, 21])
def test_postprocess_export_at_the_opset_limits(small, tmp_path, opset):
    """The post-processing graph is valid at both ends of the opsets export_onnx accepts (opset 11's
    Min / Max take no integers: the graph's k is computed in doubles) and finds Detector's faces."""
    path = export_onnx(small, tmp_path / f"pp{opset}.onnx", postprocess=True, opset=opset, input_size=(128, 128))
    det = Detector(small)
    x = normalise(np.stack([_synthetic(70 + i, 160, 192) for i in range(2)]))
    ref = det.postprocess(det.forward(x), [1.0] * 2)
    dets, num = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {INPUT_NAME: x.numpy()})
    for b, r in enumerate(ref):
        assert int(num[b]) == len(r) > 0
        assert match_detections(np.c_[r.boxes, r.scores], dets[b, :len(r)]) <= TOL
