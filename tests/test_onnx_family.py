"""Every SCRFD family member, in every ONNX layout seen in the wild, imported back and checked against
onnxruntime on real photos; files that are not SCRFD refused with the node that did not fit."""

import copy
import os

import numpy as np
import onnx
import pytest
import torch
from onnx import helper

import _scrfd_layouts as L
from pyddsar.inference import letterbox, normalise, to_bgr8
from pyddsar.models import build_detector, load_scrfd_onnx
from pyddsar.models.onnx_import import read_scrfd_onnx
from pyddsar.onnx_export import RawOutputs

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

DATA = L.data_dir()
PHOTOS = [os.path.join(DATA, "images", f) for f in ("crowd_cheering.jpg", "group_solvay_1927.jpg", "portrait_newton.png")]
REAL = os.path.join(DATA, "models", "scrfd_2.5g_bnkps.onnx")
needs_photos = pytest.mark.skipif(not all(os.path.isfile(p) for p in PHOTOS),
                                  reason=f"real photos not found in {DATA} (set PYDDSAR_DATA)")
needs_real = pytest.mark.skipif(not os.path.isfile(REAL), reason=f"{REAL} not found (set PYDDSAR_DATA)")

MEMBERS = ["scrfd-0.5g", "scrfd-1g", "scrfd-2.5g", "scrfd-10g", "scrfd-34g",
           "scrfd-0.5g-kps", "scrfd-2.5g-kps", "scrfd-10g-kps"]
GN_MEMBERS = [m for m in MEMBERS if not m.endswith("-kps")]
# onnxruntime and torch agree to 1e-4, plus 1e-4 relative: scores and boxes are O(1), the keypoint
# offsets of the random 0.5G-kps reach ~5 (the real file is checked at 1e-4 absolute below). The
# random-weight models are conditioned like trained ones (_scrfd_layouts.randomise): with gains near 1
# a random MobileNet is chaotic and float32 rounding alone reaches 2e-4 in any runtime, against float64.
TOL = dict(atol=1e-4, rtol=1e-4)
# Two float32 runtimes differ by at most about the sum of their errors against the exact (float64)
# function, and that error is the model's own: the deep, wide-activation random 0.5G-kps reaches 2e-4
# (1e-5 relative after 20 layers; every other member stays under 1.1e-5), and on CPUs with other SIMD
# kernels two runtimes then differ by 3.4e-4. So the bound is the larger of TOL and 4x the float32
# model's measured distance from its float64 copy on the same input; a wrong weight mapping moves
# outputs by O(0.1), far beyond either.
NOISE_FACTOR = 4.0


def _float32_noise(model, x):
    """Per output: max |float32 - float64| of ``model`` on ``x`` (the rounding any float32 run carries)."""
    exact = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        ref = [t.numpy() for t in RawOutputs(exact)(x.double())]
    got = _torch(model, x)
    return [float(np.abs(g - r).max()) for g, r in zip(got, ref)]


def _assert_close(got, ref, model=None, x=None):
    noise = _float32_noise(model, x) if model is not None else [0.0] * len(ref)
    for r, g, n in zip(ref, got, noise):
        np.testing.assert_allclose(g, r, rtol=TOL["rtol"], atol=max(TOL["atol"], NOISE_FACTOR * n))


def _blob(path, size=640):
    return normalise(letterbox(to_bgr8(path), size)[0][None])


@pytest.fixture(scope="module")
def photos():
    return [_blob(p) for p in PHOTOS]


@pytest.fixture(scope="module")
def members(photos):
    """name -> a randomised model with BN statistics measured on the photos (built on first use)."""
    cache = {}

    def get(name):
        if name not in cache:
            torch.manual_seed(MEMBERS.index(name))
            small = torch.cat([_blob(p, 320) for p in PHOTOS])  # the sizes the tests run at
            cache[name] = L.randomise(build_detector(name), seed=MEMBERS.index(name), images=[torch.cat(photos), small])
        return cache[name]

    return get


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})


def _torch(model, x, batched=True):
    with torch.no_grad():
        out = [t.numpy() for t in RawOutputs(model)(x)]
    return out if batched else [t[0] for t in out]


@needs_photos
@pytest.mark.parametrize("layout", L.LAYOUTS)
@pytest.mark.parametrize("name", MEMBERS)
def test_member_layout_imports_and_matches_onnxruntime(members, photos, name, layout, tmp_path):
    model = members(name)
    path = L.export(model, str(tmp_path / f"{name}.onnx"), layout)
    config, lay = read_scrfd_onnx(path)
    assert config.name == name  # the architecture from the graph alone
    assert lay.batched == (layout != "no_batch") and lay.use_kps == model.use_kps
    assert lay.input_size == ((640, 640) if layout == "fixed" else None)
    assert list(lay.output_names) == [o.name for o in onnx.load(path).graph.output]
    imported = load_scrfd_onnx(path)
    # a real photo, at the file's fixed 640x640 or letterboxed to 320 (dynamic files; keeps the 34G fast)
    i = L.LAYOUTS.index(layout) % len(PHOTOS)
    x = photos[i] if layout == "fixed" else _blob(PHOTOS[i], 320)
    ref = _ort(path, x)
    got = _torch(imported, x, lay.batched)
    assert [r.shape for r in ref] == [g.shape for g in got]
    _assert_close(got, ref, imported, x)
    # the import reproduces the model that was exported (BN folded: the same function, not the same tensors)
    x = torch.randn(1, 3, 128, 160, generator=torch.Generator().manual_seed(2))
    _assert_close(_torch(imported, x), _torch(model, x), model, x)


@needs_photos
@pytest.mark.parametrize("name", GN_MEMBERS)
def test_group_normalization_node(members, photos, name, tmp_path):
    """GroupNorm as one GroupNormalization node (opset 21) imports as the InstanceNormalization form does."""
    model = members(name)
    path = L.export(model, str(tmp_path / "gn.onnx"), "group_norm")
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert "GroupNormalization" in ops and "InstanceNormalization" not in ops
    imported = load_scrfd_onnx(path)
    assert imported.config.name == name and imported.config.norm == "gn"
    x = _blob(PHOTOS[GN_MEMBERS.index(name) % len(PHOTOS)], 320)
    _assert_close(_torch(imported, x), _ort(path, x), imported, x)


@needs_photos
@pytest.mark.parametrize("name", MEMBERS)
def test_node_order_does_not_change_the_mapping(members, photos, name, tmp_path):
    """The same graph with its nodes in another topological order imports the same weights: the
    mapping follows who feeds whom, not execution order (same-shaped neck convs cannot swap)."""
    model = members(name)
    a = load_scrfd_onnx(L.export(model, str(tmp_path / "a.onnx"), "named"))
    path = L.export(model, str(tmp_path / "b.onnx"), "reordered")
    convs = [n for n in onnx.load(path).graph.node if n.op_type == "Conv"]
    plain = [n for n in onnx.load(str(tmp_path / "a.onnx")).graph.node if n.op_type == "Conv"]
    assert [c.input[1] for c in convs] != [c.input[1] for c in plain]  # the order really changed
    b = load_scrfd_onnx(path)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = photos[MEMBERS.index(name) % len(photos)]
    _assert_close(_torch(b, x), _ort(path, x), b, x)


@needs_real
@pytest.mark.parametrize("layout", ["named", "numeric", "out_k", "no_batch", "reordered"])
def test_real_file_in_every_layout(photos, layout, tmp_path):
    """The pretrained SCRFD-2.5G file of ../shared/data, renamed / without a batch axis / reordered."""
    m = onnx.load(REAL)
    if layout == "numeric":
        L.rename_outputs(m, L.numeric_names(m, 9))
    elif layout == "out_k":
        L.rename_outputs(m, [f"out{i}" for i in range(9)])
    elif layout == "no_batch":
        L.drop_batch_axis(m)
    elif layout == "reordered":
        L.reorder_nodes(m)
    path = tmp_path / "real.onnx"
    onnx.save(m, str(path))
    imported = load_scrfd_onnx(path)
    assert imported.config.name == "scrfd-2.5g-kps"
    for x in photos:
        ref = _ort(path, x)
        got = _torch(imported, x, imported.onnx_layout.batched)
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g, r, atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------------
# files that are not SCRFD: the error names the node or pattern that did not fit


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    torch.manual_seed(0)
    model = L.randomise(build_detector("scrfd-2.5g-kps"))
    return L.export(model, str(tmp_path_factory.mktemp("bad") / "ok.onnx"), "named")


def _edit(src, tmp_path, fn):
    m = onnx.load(src)
    fn(m)
    p = tmp_path / "edited.onnx"
    onnx.save(m, str(p))
    return p


def _node(m, op, nth=0, where=lambda n: True):
    return [n for n in m.graph.node if n.op_type == op and where(n)][nth]


def _set(node, name, value):
    for a in node.attribute:
        if a.name == name:
            node.attribute.remove(a)
            break
    node.attribute.append(helper.make_attribute(name, value))


def _reject(path, *fragments):
    with pytest.raises(ValueError) as e:
        load_scrfd_onnx(path)
    for f in fragments:
        assert f in str(e.value), str(e.value)
    return str(e.value)


def test_rejects_output_counts(small_file, tmp_path):
    def keep(n):
        return lambda m: [m.graph.output.pop() for _ in range(len(m.graph.output) - n)]

    _reject(_edit(small_file, tmp_path, keep(5)), "5 outputs")
    m = onnx.load(small_file)  # 10 outputs: insightface's 5-level layout
    m.graph.output.append(m.graph.output[0])
    onnx.save(m, str(tmp_path / "ten.onnx"))
    _reject(tmp_path / "ten.onnx", "10 outputs", "5-level")


def test_rejects_outputs_out_of_order(small_file, tmp_path):
    def swap(*pairs):
        def f(m):
            o = list(m.graph.output)
            for i, j in pairs:
                o[i], o[j] = o[j], o[i]
            del m.graph.output[:]
            m.graph.output.extend(o)
        return f

    # strides 32, 16, 8 instead of 8, 16, 32 (every kind)
    _reject(_edit(small_file, tmp_path, swap((0, 2), (3, 5), (6, 8))), "not in insightface's order",
            "output #0 'score_32' comes from the stride-32 level")
    # only the scores swapped: a level's predictors no longer read one tower
    _reject(_edit(small_file, tmp_path, swap((0, 2))), "share one tower", "/model/head/cls_2/Conv")

    def boxes_first(m):
        o = list(m.graph.output)
        o = o[3:6] + o[0:3] + o[6:]
        del m.graph.output[:]
        m.graph.output.extend(o)

    _reject(_edit(small_file, tmp_path, boxes_first), "output #0 'bbox_8' (score at stride 8", "scales.0/Mul")


def test_rejects_other_activation(small_file, tmp_path):
    def leaky(m):
        n = _node(m, "Relu", 20)
        n.op_type = "LeakyRelu"
        n.name = "the_leaky_one"

    msg = _reject(_edit(small_file, tmp_path, leaky), "the_leaky_one")
    assert "LeakyRelu" in msg


def test_rejects_neck_stride_and_resize_mode(small_file, tmp_path):
    def down_stride_1(m):  # the first stride-2 conv after the backbone is the neck's down conv
        convs = [n for n in m.graph.node if n.op_type == "Conv"]
        lat = next(i for i, n in enumerate(convs) if "neck" in n.name and "down" in n.name)
        convs[lat].name = "neck_down_conv"
        _set(convs[lat], "strides", [1, 1])

    _reject(_edit(small_file, tmp_path, down_stride_1), "neck_down_conv", "stride-2")

    def linear(m):
        r = _node(m, "Resize")
        r.name = "the_resize"
        _set(r, "mode", "linear")

    _reject(_edit(small_file, tmp_path, linear), "the_resize", "nearest")


def test_rejects_backbone_changes(small_file, tmp_path):
    def pool3(m):
        p = _node(m, "MaxPool")
        p.name = "stem_pool"
        _set(p, "kernel_shape", [3, 3])

    _reject(_edit(small_file, tmp_path, pool3), "stem_pool", "2x2")

    def dilated(m):
        c = _node(m, "Conv", 5)
        c.name = "dilated_conv"
        _set(c, "dilations", [2, 2])

    _reject(_edit(small_file, tmp_path, dilated), "dilated_conv", "dilations")

    def no_sigmoid(m):
        s = _node(m, "Sigmoid")
        s.op_type = "Identity"

    _reject(_edit(small_file, tmp_path, no_sigmoid), "output #0", "0 Sigmoid")


def test_rejects_plain_networks(tmp_path):
    p = tmp_path / "conv.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3), (torch.zeros(1, 3, 8, 8),), str(p), dynamo=False)
    _reject(p, "not an SCRFD model", "1 outputs")

    class Six(torch.nn.Module):  # six outputs, but no SCRFD structure behind them
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Conv2d(3, 2, 3, padding=1)

        def forward(self, x):
            y = self.c(x).permute(0, 2, 3, 1).reshape(1, -1, 1)
            return (y.sigmoid(),) * 3 + (y,) * 3

    p = tmp_path / "six.onnx"
    torch.onnx.export(Six(), (torch.zeros(1, 3, 32, 32),), str(p), dynamo=False, output_names=[f"o{i}" for i in range(6)])
    _reject(p, "output #")
