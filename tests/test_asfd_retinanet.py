import pytest
import torch

from pyddsar.ops import box_iou
from pyddsar.asfd.autofa import AutoFAE
from pyddsar.models.resnet import ResNet, build_backbone
from pyddsar.asfd.build import build_asfd_baseline
from pyddsar.asfd.retinanet import (
    ASFD_TEST_PROTOCOL,
    STRIDES,
    asfd_anchors,
    decode_boxes,
    encode_boxes,
    feature_sizes,
    match_anchors,
)


def test_anchor_count_shape_and_side():
    sizes = feature_sizes((96, 160))
    assert sizes == [(24, 40), (12, 20), (6, 10), (3, 5), (2, 3), (1, 2)]
    a = asfd_anchors(sizes)
    counts = [h * w for h, w in sizes]
    assert a.shape == (sum(counts), 4)
    start = 0
    for (h, w), s, n in zip(sizes, STRIDES, counts):
        lvl = a[start:start + n]
        bw, bh = lvl[:, 2] - lvl[:, 0], lvl[:, 3] - lvl[:, 1]
        assert torch.allclose(bh / bw, torch.full_like(bw, 1.5))
        assert torch.allclose((bw * bh).sqrt(), torch.full_like(bw, 4.0 * s))
        cx, cy = (lvl[:, 0] + lvl[:, 2]) / 2, (lvl[:, 1] + lvl[:, 3]) / 2
        assert torch.allclose(cx[: w], torch.arange(w, dtype=torch.float32) * s, atol=1e-4)
        assert torch.allclose(cy[::w], torch.arange(h, dtype=torch.float32) * s, atol=1e-4)
        start += n
    assert ASFD_TEST_PROTOCOL.score_threshold == 0.05 and ASFD_TEST_PROTOCOL.pre_nms_topk == 2000
    assert ASFD_TEST_PROTOCOL.nms_threshold == 0.4 and ASFD_TEST_PROTOCOL.max_detections == 750
    with pytest.warns(DeprecationWarning, match="nms_threshold"):  # the old names still read
        assert ASFD_TEST_PROTOCOL.nms_iou == 0.4
    with pytest.warns(DeprecationWarning, match="pre_nms_topk"):
        assert ASFD_TEST_PROTOCOL.pre_nms_top_k == 2000


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / max(union, 1e-6)


def _reference(iou, thr):
    """Plain-loop assignment over a given IoU table (box_iou itself is tested in test_ops_boxes)."""
    table = iou.tolist()
    out = []
    for row in table:
        m = max(row)
        out.append(row.index(m) + 1 if m >= thr else 0)  # first maximum
    for k in range(len(table[0])):
        col = [row[k] for row in table]
        m = max(col)
        if m > 0:
            out[col.index(m)] = k + 1
    return out


def test_matcher_against_loop():
    g = torch.Generator().manual_seed(0)
    anchors = asfd_anchors(feature_sizes((64, 64)))
    xy = torch.rand(7, 2, generator=g) * 56
    wh = 4 + torch.rand(7, 2, generator=g) * 40
    gts = torch.cat([xy, xy + wh], 1)
    gts = torch.cat([gts, gts[2:3]])  # a duplicate face: ties go to the lower index, later override
    assigned, max_iou = match_anchors(anchors, gts, 0.4)
    iou = box_iou(anchors, gts)
    assert assigned.tolist() == _reference(iou, 0.4)
    ref_iou = [max(_iou(a, b) for b in gts.tolist()) for a in anchors.tolist()]
    assert torch.allclose(max_iou, torch.tensor(ref_iou), atol=1e-5)
    assert (assigned > 0).any()
    empty, _ = match_anchors(anchors, torch.zeros(0, 4))
    assert int(empty.abs().sum()) == 0


def test_box_coding_roundtrip():
    anchors = asfd_anchors(feature_sizes((32, 32)))
    g = torch.Generator().manual_seed(1)
    boxes = anchors + torch.randn(anchors.shape, generator=g)
    assert torch.allclose(decode_boxes(anchors, encode_boxes(anchors, boxes)), boxes, atol=1e-3)


def test_baseline_forward_and_predict():
    torch.manual_seed(0)
    model = build_asfd_baseline(backbone="resnet18", channels=16, head_convs=2, base_width=8).eval()
    x = torch.randn(1, 3, 64, 96)
    out = model(x)
    n = sum(h * w for h, w in out["sizes"])
    assert out["sizes"] == feature_sizes((64, 96))
    assert out["logits"].shape == (1, n, 1) and out["deltas"].shape == (1, n, 4)
    with torch.no_grad():
        model.head.cls_out.bias.fill_(5.0)  # every anchor scores ~0.99
    (boxes, scores), = model.predict(x)
    assert 0 < boxes.shape[0] <= 750 and bool((scores[:-1] >= scores[1:]).all())


def test_baseline_with_autofae_neck_and_other_backbones():
    torch.manual_seed(0)
    model = build_asfd_baseline("resnet34", neck=AutoFAE(8, 6), channels=8, head_convs=1, base_width=4).eval()
    assert model(torch.randn(1, 3, 64, 64))["logits"].shape[1] == sum(h * w for h, w in feature_sizes((64, 64)))
    r50 = build_backbone("resnet50", 4).eval()
    assert r50.channels == [16, 32, 64, 128]
    assert [f.shape[1] for f in r50(torch.randn(1, 3, 32, 32))] == r50.channels
    custom = build_asfd_baseline(ResNet(18, 4), channels=8, head_convs=1).eval()
    assert custom(torch.randn(1, 3, 32, 32))["deltas"].shape[-1] == 4


@pytest.mark.parametrize(
    "call",
    [
        lambda: build_asfd_baseline("vgg16"),
        lambda: build_asfd_baseline(neck="bifpn"),
        lambda: build_asfd_baseline(torch.nn.Identity()),
        lambda: ResNet(20),
        lambda: feature_sizes((0, 10)),
        lambda: asfd_anchors([(2, 2)], strides=(4, 8)),
        lambda: match_anchors(torch.zeros(3, 4), torch.zeros(2, 4), iou_threshold=1.5),
        lambda: match_anchors(torch.zeros(3, 5), torch.zeros(2, 4)),
    ],
)
def test_bad_input(call):
    with pytest.raises(ValueError):
        call()
