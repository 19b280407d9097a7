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
    lm = torch.full((2, 5, 2), float("nan"))  # NaN: the second face has no landmarks
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


# ------------------------------------------------------------------ SCRFD's loss, re-stated
def restated_scrfd_loss(ranks, anchors):
    """SCRFDHead.loss / loss_single (insightface detection/scrfd/mmdet/models/dense_heads/scrfd_head.py)
    for several processes, written out level by level: num_total_samples = max(reduce_mean(num_pos), 1);
    weight_targets = sigmoid(cls) of the positives; avg_factor = reduce_mean(sum of weight_targets);
    QFL(weight = not ignored) / num_total_samples; 2 x sum(w x DIoU) / avg_factor; 0.1 x sum over the
    ten coordinates of (has landmarks x w) x smoothL1_{1/9}(kps_pred - (kps / stride - centre)) / avg_factor."""
    def levels(x):
        return list(x.split(anchors.per_level, dim=1))

    npos = [sum(int((t.assigned > 0).sum()) for t in tg) for _, _, _, tg in ranks]
    num_total_samples = max(sum(npos) / len(ranks), 1.0)
    wsums = []
    for cls, _, _, tg in ranks:
        assigned = torch.stack([t.assigned for t in tg])
        wsums.append(sum(float(torch.sigmoid(c[..., 0])[a > 0].sum()) for c, a in zip(levels(cls), levels(assigned))))
    avg_factor = sum(wsums) / len(ranks)
    out = []
    for cls, bbox, kps, tg in ranks:
        assigned = torch.stack([t.assigned for t in tg])
        gtb = torch.stack([t.boxes for t in tg])
        lms = torch.stack([t.landmarks for t in tg])
        has = torch.stack([t.landmark_weight for t in tg])
        total_cls = total_box = total_kps = 0.0
        start = 0
        for lvl, n in enumerate(anchors.per_level):
            sl = slice(start, start + n)
            start += n
            stride = float(anchors.strides[sl][0])
            centres = anchors.centers[sl] / stride
            for b in range(cls.shape[0]):
                for a in range(n):
                    label = int(assigned[b, sl][a])
                    x = float(cls[b, sl][a, 0])
                    p = 1 / (1 + math.exp(-x))
                    q = 0.0
                    if label > 0:
                        cx, cy = centres[a].tolist()
                        d = bbox[b, sl][a].tolist()
                        pred = [cx - d[0], cy - d[1], cx + d[2], cy + d[3]]
                        tgt = (gtb[b, sl][a] / stride).tolist()
                        ix = max(0.0, min(pred[2], tgt[2]) - max(pred[0], tgt[0]))
                        iy = max(0.0, min(pred[3], tgt[3]) - max(pred[1], tgt[1]))
                        inter = ix * iy
                        union = (pred[2] - pred[0]) * (pred[3] - pred[1]) + (tgt[2] - tgt[0]) * (tgt[3] - tgt[1]) - inter
                        q = min(max(inter / union, 0.0), 1.0)
                        total_box += 2.0 * p * plain_diou(pred, tgt)
                        w_kps = float(has[b, sl][a]) * p
                        if w_kps:
                            for k in range(5):
                                for j, c in enumerate((cx, cy)):
                                    target = float(lms[b, sl][a, k, j]) / stride - c
                                    diff = abs(float(kps[b, sl][a, 2 * k + j]) - target)
                                    beta = 1 / 9
                                    total_kps += 0.1 * w_kps * (0.5 * diff * diff / beta if diff < beta else diff - 0.5 * beta)
                    if label >= 0:
                        total_cls += -(q * math.log(p) + (1 - q) * math.log(1 - p)) * abs(q - p) ** 2
        out.append((total_cls / num_total_samples, total_box / avg_factor, total_kps / avg_factor))
    return out


def test_detection_loss_is_scrfds_over_two_processes():
    anchors = anchor_set(64, 64)
    n = anchors.boxes.shape[0]
    g = torch.Generator().manual_seed(7)

    def rank_batch(faces_per_image):
        targets = []
        for k in faces_per_image:
            xy = torch.rand(k, 2, generator=g) * 40
            boxes = torch.cat([xy, xy + 8 + torch.rand(k, 2, generator=g) * 24], 1)
            lms = boxes[:, None, :2] + torch.rand(k, 5, 2, generator=g) * (boxes[:, None, 2:] - boxes[:, None, :2])
            lms[::2] = float("nan")  # every other face without landmarks
            targets.append(image_targets(anchors, boxes, lms))
        b = len(faces_per_image)
        cls = torch.randn(b, n, 1, generator=g) * 2
        bbox = torch.rand(b, n, 4, generator=g) * 3 + 0.2
        kps = torch.randn(b, n, 10, generator=g)
        return cls, bbox, kps, targets

    for ranks in ([rank_batch([3, 1]), rank_batch([0, 2])],  # an image without faces
                  [rank_batch([2, 2]), rank_batch([0])]):    # a process without faces at all
        check_two_ranks(ranks, anchors)


def check_two_ranks(ranks, anchors):
    Outputs = namedtuple("Outputs", "cls bbox kps")
    want = restated_scrfd_loss(ranks, anchors)
    # pyddsar's loss on each rank, its normalisers averaged over the two ranks
    npos = [sum(int(t.positive.sum()) for t in r[3]) for r in ranks]
    wsum = [float(torch.cat([torch.sigmoid(r[0][i, t.positive, 0]) for i, t in enumerate(r[3])]).sum()) for r in ranks]
    for (cls, bbox, kps, tg), (w_cls, w_box, w_kps) in zip(ranks, want):
        means = iter([sum(npos) / 2, sum(wsum) / 2])
        calls = []

        def reduce_mean(t):
            calls.append(float(t))
            return torch.tensor(next(means))

        sizes = anchors.per_level
        terms = detection_loss(Outputs(list(cls.split(sizes, 1)), list(bbox.split(sizes, 1)), list(kps.split(sizes, 1))),
                               anchors, tg, reduce_mean=reduce_mean)
        assert len(calls) == 2  # the positives, then the score weights: the same order on every rank
        assert terms.cls.item() == pytest.approx(w_cls, rel=1e-5)
        assert terms.box.item() == pytest.approx(w_box, rel=1e-5, abs=1e-9)
        assert terms.kps.item() == pytest.approx(w_kps, rel=1e-5, abs=1e-9)
        assert (w_kps > 0 and w_box > 0) == (terms.num_pos > 0)
