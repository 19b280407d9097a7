"""SCRFD losses and ATSS targets against plain formulas written here."""

import math
from collections import namedtuple

import pytest

torch = pytest.importorskip("torch")

from pyddsar import ops  # noqa: E402
from pyddsar.training.criterion import detection_loss  # noqa: E402
from pyddsar.training.losses import aligned_iou, diou_loss, quality_focal_loss, smooth_l1_loss  # noqa: E402
from pyddsar.training.targets import anchor_set, image_targets  # noqa: E402


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_quality_focal_loss_is_the_gfl_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, generator=g, dtype=torch.float64) * 3
    q = torch.rand(50, generator=g, dtype=torch.float64)
    q[:20] = 0
    expected = 0.0
    for x, y in zip(logits.tolist(), q.tolist()):
        p = sigmoid(x)
        expected += -(y * math.log(p) + (1 - y) * math.log(1 - p)) * abs(y - p) ** 2
    assert quality_focal_loss(logits, q).item() == pytest.approx(expected, rel=1e-10)


def plain_diou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    cx = (a[0] + a[2] - b[0] - b[2]) / 2
    cy = (a[1] + a[3] - b[1] - b[3]) / 2
    ex = max(a[2], b[2]) - min(a[0], b[0])
    ey = max(a[3], b[3]) - min(a[1], b[1])
    return 1 - inter / union + (cx * cx + cy * cy) / (ex * ex + ey * ey)


def random_boxes(n, g):
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 50 + 1
    return torch.cat([xy, xy + wh], 1)


def test_diou_matches_the_plain_formula_and_is_scale_invariant():
    g = torch.Generator().manual_seed(1)
    a, b, w = random_boxes(40, g), random_boxes(40, g), torch.rand(40, generator=g, dtype=torch.float64)
    expected = sum(wi * plain_diou(x, y) for wi, x, y in zip(w.tolist(), a.tolist(), b.tolist()))
    assert diou_loss(a, b, w).item() == pytest.approx(expected, rel=1e-9)
    assert diou_loss(a * 8, b * 8, w).item() == pytest.approx(expected, rel=1e-9)
    assert diou_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    iou = aligned_iou(a, b)
    assert torch.allclose(iou, torch.diag(ops.box_iou(a.float(), b.float())).double(), atol=1e-5)


def test_smooth_l1():
    pred = torch.tensor([0.0, 0.05, 1.0])
    target = torch.zeros(3)
    beta = 1 / 9
    expected = 0 + 0.5 * 0.05**2 / beta + (1.0 - 0.5 * beta)
    assert smooth_l1_loss(pred, target, torch.ones(3)).item() == pytest.approx(expected, rel=1e-6)


def test_targets_follow_atss():
    anchors = anchor_set(320, 320)
    assert anchors.boxes.shape[0] == sum(anchors.per_level) == (40 * 40 + 20 * 20 + 10 * 10) * 2
    gt = torch.tensor([[40.0, 40.0, 90.0, 100.0], [150.0, 150.0, 300.0, 310.0]])
    lm = torch.full((2, 5, 2), -1.0)
    lm[0] = torch.tensor([[55.0, 60], [75, 60], [65, 70], [58, 85], [72, 85]])
    t = image_targets(anchors, gt, lm)
    assigned, _ = ops.atss_assign(anchors.boxes, anchors.per_level, gt)
    assert torch.equal(t.assigned, assigned)
    pos = t.positive
    assert pos.any()
    assert torch.equal(t.boxes[pos], gt[t.assigned[pos] - 1])
    assert torch.equal(t.landmark_weight[pos], (t.assigned[pos] == 1).float())
    # positive anchor centres lie inside their face
    c = anchors.centers[pos]
    b = t.boxes[pos]
    assert ((c >= b[:, :2]) & (c <= b[:, 2:])).all()
    # a keypoint head on data without landmarks: landmark targets of weight 0, same assignment
    assert image_targets(anchors, gt).landmarks is None
    z = image_targets(anchors, gt, with_landmarks=True)
    assert torch.equal(z.assigned, assigned) and z.landmarks.shape == (len(assigned), 5, 2)
    assert float(z.landmark_weight.sum()) == 0.0


def test_detection_loss_prefers_the_right_boxes():
    anchors = anchor_set(128, 128)
    gt = torch.tensor([[30.0, 30.0, 70.0, 80.0]])
    t = image_targets(anchors, gt)
    n = anchors.boxes.shape[0]
    Outputs = namedtuple("Outputs", "cls bbox kps")
    sizes = anchors.per_level

    def outputs(cls, bbox):
        return Outputs(list(cls.split(sizes, dim=1)), list(bbox.split(sizes, dim=1)), None)

    # perfect boxes: distances from each positive anchor centre to the face, in stride units
    exact = torch.zeros(1, n, 4)
    pos = t.positive
    c, s = anchors.centers[pos], anchors.strides[pos][:, None]
    exact[0, pos] = torch.cat([c - gt[0, :2], gt[0, 2:] - c], 1) / s
    wrong = exact.clone()
    wrong[0, pos] *= 0.5
    cls = torch.full((1, n, 1), -4.0)
    cls[0, pos] = 4.0
    good, bad = detection_loss(outputs(cls, exact), anchors, [t]), detection_loss(outputs(cls, wrong), anchors, [t])
    assert good.num_pos == int(pos.sum())
    assert good.box.item() == pytest.approx(0.0, abs=1e-5)
    assert bad.box > 0.1 and bad.cls > good.cls  # worse boxes: lower IoU quality targets too
    # gradients reach both branches
    cls.requires_grad_(True)
    wrong.requires_grad_(True)
    detection_loss(outputs(cls, wrong), anchors, [t]).total.backward()
    assert cls.grad.abs().sum() > 0 and wrong.grad.abs().sum() > 0


def test_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        quality_focal_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        diou_loss(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="multiple of 32"):
        anchor_set(100, 96)
