"""ASFD losses against plain formulas written out in the test; the split and batch streams of its training."""

import math

import numpy as np

import pytest
import torch

from pyddsar.asfd.loss import asfd_loss, giou_loss, sigmoid_focal_loss
from pyddsar.asfd.retinanet import asfd_anchors, encode_boxes, match_anchors
from pyddsar.asfd.train import batches, default_lr, split_indices, warmup_factor, warmup_steps, weights_lr


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


def test_learning_rate_defaults_and_warmup():
    assert default_lr(16) == pytest.approx(0.01) and default_lr(4) == pytest.approx(0.0025)
    assert weights_lr(None, 8) == pytest.approx(0.005) and weights_lr(0.02, 8) == 0.02
    assert [warmup_steps(n) for n in (5, 1440, 100000)] == [0, 144, 500]
    # linear ramp: step k (0-based) of a 4-step warm-up runs at (k + 1) / 4, then the full rate
    assert [warmup_factor(k, 4) for k in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0
    for bad in (0.0, -1e-3, float("nan"), True):
        with pytest.raises(ValueError, match="lr must be a positive number"):
            weights_lr(bad, 4)


class _EpochTagged:
    """A stand-in data set whose sample i in epoch e is an image filled with 100 * e + i (like
    FaceDataset, the augmentation depends on the epoch last set)."""

    def __init__(self, n):
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, i):
        img = np.full((3, 2, 2), 100 * self.epoch + i, np.float32)
        return img, np.zeros((0, 4), np.float32), None, np.zeros(0, bool)


def _tags(batch):
    return batch[0][:, 0, 0, 0].long().tolist()


def test_batches_start_and_interleaved_streams():
    import itertools

    ds, idx = _EpochTagged(10), [1, 3, 4, 6, 8]  # 5 samples, batch 2: 3 batches per epoch
    whole = [_tags(b) for b in itertools.islice(batches(ds, idx, 2, seed=4), 8)]
    # every epoch is a permutation of idx (tagged with its epoch), the last batch short
    for e in range(2):
        epoch = whole[3 * e:3 * e + 3]
        assert [len(b) for b in epoch] == [2, 2, 1]
        assert sorted(sum(epoch, [])) == [100 * e + i for i in idx]
    # a stream that starts at batch k is the tail of the whole stream
    for k in (1, 3, 5):
        assert [_tags(b) for b in itertools.islice(batches(ds, idx, 2, seed=4, start=k), 8 - k)] == whole[k:]
    # two streams over one data set do not change each other's epochs
    other = batches(ds, [0, 2], 1, seed=9)
    mixed = batches(ds, idx, 2, seed=4)
    got = []
    for _ in range(8):
        got.append(_tags(next(mixed)))
        next(other), next(other), next(other)  # the other stream runs ahead into later epochs
    assert got == whole
    with pytest.raises(ValueError):
        next(batches(ds, idx, 2, start=-1))


@pytest.mark.parametrize("call", [
    lambda: sigmoid_focal_loss(torch.zeros(3), torch.zeros(4)),
    lambda: giou_loss(torch.zeros(3, 4), torch.zeros(2, 4)),
    lambda: asfd_loss(torch.zeros(1, 5, 1), torch.zeros(1, 5, 4), torch.zeros(5, 4), [torch.zeros(0, 4)], box_loss="l2"),
    lambda: split_indices(2),
])
def test_bad_input(call):
    with pytest.raises(ValueError):
        call()
