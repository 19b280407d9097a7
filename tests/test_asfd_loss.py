"""ASFD losses against plain formulas written out in the test."""

import math

import pytest
import torch

from pyddsar.asfd.loss import asfd_loss, giou_loss, sigmoid_focal_loss
from pyddsar.asfd.retinanet import asfd_anchors, encode_boxes, match_anchors
from pyddsar.asfd.train import split_indices


def test_focal_loss_matches_formula():
    torch.manual_seed(0)
    x = torch.randn(50)
    t = (torch.rand(50) < 0.3).float()
    want = 0.0
    for xi, ti in zip(x.tolist(), t.tolist()):
        p = 1 / (1 + math.exp(-xi))
        if ti == 1:
            want += -0.25 * (1 - p) ** 2 * math.log(p)
        else:
            want += -0.75 * p ** 2 * math.log(1 - p)
    assert sigmoid_focal_loss(x, t).item() == pytest.approx(want, rel=1e-5)


def test_giou_loss_matches_formula():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0]])
    # pair 0: inter 1, union 7, enclosing 9 -> giou = 1/7 - 2/9; pair 1: identical -> 0 loss
    want = (1 - (1 / 7 - 2 / 9)) + 0.0
    assert giou_loss(a, b).item() == pytest.approx(want, rel=1e-5)


def test_asfd_loss_normalised_by_positives_and_ignores():
    sizes = [(4, 4), (2, 2), (1, 1), (1, 1), (1, 1), (1, 1)]
    anchors = asfd_anchors(sizes)
    n = len(anchors)
    gt = torch.stack([anchors[5], anchors[16 + 3] + 1.0])
    torch.manual_seed(1)
    logits, deltas = torch.randn(1, n, 1), torch.randn(1, n, 4)
    assigned, _ = match_anchors(anchors, gt, 0.4)
    pos = assigned > 0
    out = asfd_loss(logits, deltas, anchors, [gt], box_loss="smooth_l1")
    k = int(pos.sum())
    assert int(out["num_pos"]) == k and k >= 2
    assert out["cls"].item() == pytest.approx(sigmoid_focal_loss(logits[0, :, 0], pos.float()).item() / k, rel=1e-5)
    t = encode_boxes(anchors[pos], gt[assigned[pos] - 1])
    d = (deltas[0, pos] - t).abs()
    sl1 = torch.where(d < 1 / 9, 0.5 * d * d * 9, d - 0.5 / 9).sum()
    assert out["box"].item() == pytest.approx(sl1.item() / k, rel=1e-5)
    # exact deltas -> zero box loss; GIoU variant finite
    exact = deltas.clone()
    exact[0, pos] = t
    assert asfd_loss(logits, exact, anchors, [gt])["box"].item() == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(asfd_loss(logits, deltas, anchors, [gt], box_loss="giou")["loss"].item())
    # ignoring face 1 removes its anchors from both terms
    ign = asfd_loss(logits, deltas, anchors, [gt], [torch.tensor([False, True])])
    k0 = int((assigned == 1).sum())
    assert int(ign["num_pos"]) == k0
    valid = assigned != 2
    want = sigmoid_focal_loss(logits[0, valid, 0], (assigned[valid] == 1).float()).item() / k0
    assert ign["cls"].item() == pytest.approx(want, rel=1e-5)
    # no faces: only background classification, normalised by 1
    empty = asfd_loss(logits, deltas, anchors, [torch.zeros(0, 4)])
    assert empty["box"].item() == 0 and int(empty["num_pos"]) == 0


def test_split_9_9_2():
    parts = split_indices(20, (9, 9, 2), seed=3)
    assert [len(p) for p in parts] == [9, 9, 2]
    assert sorted(sum(parts, [])) == list(range(20))
    assert all(len(p) >= 1 for p in split_indices(3))


@pytest.mark.parametrize("call", [
    lambda: sigmoid_focal_loss(torch.zeros(3), torch.zeros(4)),
    lambda: giou_loss(torch.zeros(3, 4), torch.zeros(2, 4)),
    lambda: asfd_loss(torch.zeros(1, 5, 1), torch.zeros(1, 5, 4), torch.zeros(5, 4), [torch.zeros(0, 4)], box_loss="l2"),
    lambda: split_indices(2),
])
def test_bad_input(call):
    with pytest.raises(ValueError):
        call()
