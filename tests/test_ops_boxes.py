"""Anchors, box coding and box IoU against plain references written here."""

import math

import pytest

torch = pytest.importorskip("torch")

import pyddsar  # noqa: E402
from pyddsar import ops  # noqa: E402

CUDA = torch.cuda.is_available() and pyddsar.has_cuda()


def ref_anchors(feature_sizes, strides, sides_per_level):
    rows = []
    for (h, w), s, sides in zip(feature_sizes, strides, sides_per_level):
        for y in range(h):
            for x in range(w):
                for side in sides:
                    cx, cy = x * s, y * s
                    rows.append([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def test_scrfd_anchors_640():
    fs = [(80, 80), (40, 40), (20, 20)]
    a = ops.anchors(fs)
    assert a.shape == (16800, 4) and a.dtype == torch.float32
    assert torch.equal(a, ref_anchors(fs, [8, 16, 32], [[16, 32], [64, 128], [256, 512]]))
    # the two anchors of a location are adjacent and share a centre at (x * stride, y * stride)
    assert a[0].tolist() == [-8, -8, 8, 8] and a[1].tolist() == [-16, -16, 16, 16]
    assert a[2].tolist() == [0, -8, 16, 8]
    assert ops.num_anchors_per_level(fs) == [12800, 3200, 800]


def test_anchors_custom_levels_and_centers():
    fs = [(3, 5), (0, 4), (2, 1)]
    a = ops.anchors(fs, strides=(4, 8, 16), base_sizes=(4, 16, 64), scales=(1, 2, 3))
    assert torch.equal(a, ref_anchors(fs, [4, 8, 16], [[4, 8, 12], [], [64, 128, 192]]))
    c = ops.anchor_centers(fs, strides=(4, 8, 16), num_anchors=3)
    assert torch.equal(c, (a[:, :2] + a[:, 2:]) / 2)
    assert ops.anchors(fs, (4, 8, 16), (4, 16, 64), dtype=torch.float16).dtype == torch.float16
    assert ops.anchors([], (), ()).shape == (0, 4)
    assert torch.ops.pyddsar.anchors([2], [2], [8], [16.0, 32.0], 2, torch.device("cpu")).shape == (8, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(feature_sizes=[(2, 2)], strides=(8, 16)), "strides has"),
        (dict(feature_sizes=[(2, 2)], strides=(0,), base_sizes=(16,)), r"strides\[0\] must be a positive integer at most"),
        (dict(feature_sizes=[(2, -1)], strides=(8,), base_sizes=(16,)), "non-negative"),
        (dict(feature_sizes=[(2, 2, 2)], strides=(8,), base_sizes=(16,)), "pairs"),
        (dict(feature_sizes=5, strides=(8,), base_sizes=(16,)), "pairs"),
        (dict(feature_sizes=[(2, 2)], strides=(8,), base_sizes=(16,), scales=()), "scales"),
        (dict(feature_sizes=[(2, 2)], strides=(8,), base_sizes=(-16,)), "positive and finite"),
        (dict(feature_sizes=[(2, 2)], strides=(8,), base_sizes=(16, 32)), "base_sizes"),
        (dict(feature_sizes=[(2, 2)], strides=(8,), base_sizes=(16,), device="tpu"), "device"),
        (dict(feature_sizes=[(2, 2)], strides=(8,), base_sizes=(16,), dtype=torch.int32), "dtype"),
    ],
)
def test_anchors_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ops.anchors(**kwargs)


# --- box coding ---------------------------------------------------------------------------------


def test_distance2bbox_and_back():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(500, 2, generator=g) * 640
    dist = torch.rand(500, 4, generator=g) * 100
    boxes = ops.distance2bbox(pts, dist)
    ref = torch.stack([pts[:, 0] - dist[:, 0], pts[:, 1] - dist[:, 1], pts[:, 0] + dist[:, 2], pts[:, 1] + dist[:, 3]], 1)
    assert torch.equal(boxes, ref)
    back = ops.bbox2distance(pts, boxes)
    ref_back = torch.stack(
        [pts[:, 0] - boxes[:, 0], pts[:, 1] - boxes[:, 1], boxes[:, 2] - pts[:, 0], boxes[:, 3] - pts[:, 1]], 1
    )
    assert torch.equal(back, ref_back)
    assert torch.allclose(back, dist, atol=1e-4)


def test_box_coding_clamps_and_batches():
    pts = torch.tensor([[[10.0, 10.0], [100.0, 50.0]]])  # leading batch axis
    dist = torch.tensor([[[20.0, 5.0, 30.0, 100.0], [1.0, 1.0, 1.0, 1.0]]])
    boxes = ops.distance2bbox(pts, dist, max_shape=(60, 80))
    assert boxes.shape == (1, 2, 4)
    assert boxes[0].tolist() == [[0.0, 5.0, 40.0, 60.0], [80.0, 49.0, 80.0, 51.0]]
    d = ops.bbox2distance(pts, torch.tensor([[[0.0, 0.0, 50.0, 20.0], [90.0, 40.0, 200.0, 60.0]]]), max_dis=16)
    assert torch.allclose(d[0], torch.tensor([[10.0, 10.0, 15.9, 10.0], [10.0, 10.0, 15.9, 10.0]]))
    half = ops.distance2bbox(pts.half(), dist.half())
    assert half.dtype == torch.float16
    assert torch.equal(half.float(), ops.distance2bbox(pts, dist))
    assert ops.distance2bbox(torch.zeros(0, 2), torch.zeros(0, 4)).shape == (0, 4)


def test_box_coding_bad_input():
    p, d = torch.zeros(3, 2), torch.zeros(3, 4)
    with pytest.raises(ValueError, match="leading shape"):
        ops.distance2bbox(p, torch.zeros(4, 4))
    with pytest.raises(ValueError, match="last dimension"):
        ops.distance2bbox(torch.zeros(3, 3), d)
    with pytest.raises(ValueError, match="one dtype"):
        ops.distance2bbox(p.half(), d)
    with pytest.raises(ValueError, match="NaN"):
        ops.distance2bbox(p, torch.full((3, 4), math.nan))
    with pytest.raises(ValueError, match="max_shape"):
        ops.distance2bbox(p, d, max_shape=(-1, 5))
    with pytest.raises(ValueError, match="max_dis"):
        ops.bbox2distance(p, d, max_dis=-3)
    with pytest.raises(ValueError, match="max_dis - eps"):
        ops.bbox2distance(p, d, max_dis=0.05)


# --- IoU ----------------------------------------------------------------------------------------


def ref_box_iou(a, b):
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = torch.clamp((area_a[:, None] + area_b[None, :]) - inter, min=1e-6)
    return inter / union


def test_box_iou_matches_reference():
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(300, 2, generator=g) * 200
    a = torch.cat([xy, xy + torch.rand(300, 2, generator=g) * 80], 1)
    a[:10, 2] = a[:10, 0]  # degenerate
    b = a[torch.randperm(300, generator=g)[:70]] + 3
    out = ops.box_iou(a, b)
    assert out.shape == (300, 70) and out.dtype == torch.float32
    assert torch.equal(out, ref_box_iou(a, b))
    assert torch.equal(ops.box_iou(a.half(), b.half()), ref_box_iou(a.half().float(), b.half().float()))
    assert ops.box_iou(a, torch.zeros(0, 4)).shape == (300, 0)


def test_box_iou_bad_input():
    with pytest.raises(ValueError, match="x2 < x1"):
        ops.box_iou(torch.tensor([[2.0, 0, 1, 1]]), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="2 dimension"):
        ops.box_iou(torch.zeros(4), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="one dtype"):
        ops.box_iou(torch.zeros(1, 4), torch.zeros(1, 4, dtype=torch.float16))


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device and a CUDA build of pyddsar")
def test_box_ops_cuda_match_cpu():
    fs = [(80, 80), (40, 40), (20, 20)]
    assert torch.equal(ops.anchors(fs, device="cuda").cpu(), ops.anchors(fs))
    assert torch.equal(ops.anchor_centers(fs, device="cuda").cpu(), ops.anchor_centers(fs))
    g = torch.Generator().manual_seed(2)
    pts = torch.rand(1000, 2, generator=g) * 640
    dist = torch.rand(1000, 4, generator=g) * 100
    assert torch.equal(ops.distance2bbox(pts.cuda(), dist.cuda(), (640, 600)).cpu(), ops.distance2bbox(pts, dist, (640, 600)))
    boxes = ops.distance2bbox(pts, dist)
    assert torch.equal(ops.bbox2distance(pts.cuda(), boxes.cuda(), 50).cpu(), ops.bbox2distance(pts, boxes, 50))
    assert torch.equal(ops.box_iou(boxes.cuda(), boxes[:300].cuda()).cpu(), ops.box_iou(boxes, boxes[:300]))


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(num_anchors=6148914691236517206), "num_anchors must be a positive integer at most 2147483647"),  # wrapped to 2 once
    (dict(num_anchors=2 ** 62), "num_anchors"),
    (dict(num_anchors=2 ** 64), "num_anchors"),  # beyond int64: no pybind TypeError
    (dict(strides=[2 ** 40]), r"strides\[0\] must be a positive integer at most 1048576"),
])
def test_anchor_sizes_that_would_overflow_are_refused(kwargs, fragment):
    args = dict(feature_sizes=[(1, 3)], strides=[8], num_anchors=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=fragment):
        ops.anchor_centers(**args)


def test_anchor_count_limit_is_checked_without_wrapping():
    with pytest.raises(ValueError, match="too many anchors"):
        pyddsar._core.anchor_count([1 << 20, 1 << 20], [1 << 20, 1 << 20], 1)
    with pytest.raises(ValueError, match="too many anchors"):
        pyddsar._core.anchor_count([1024], [1024], 3000)
    assert pyddsar._core.anchor_count([1024], [1024], 2047) == 1024 * 1024 * 2047
