"""ATSS assignment against a plain PyTorch reference of mmdet's algorithm written here."""

import math

import pytest

torch = pytest.importorskip("torch")

import pyddsar  # noqa: E402
from pyddsar import ops  # noqa: E402

CUDA = torch.cuda.is_available() and pyddsar.has_cuda()
FS640 = [(80, 80), (40, 40), (20, 20)]


def ref_iou(a, b):
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = (torch.minimum(a[:, None, 2:], b[None, :, 2:]) - torch.maximum(a[:, None, :2], b[None, :, :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / torch.clamp((area_a[:, None] + area_b[None, :]) - inter, min=1e-6)


def ref_iof(a, b):
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    wh = (torch.minimum(a[:, None, 2:], b[None, :, 2:]) - torch.maximum(a[:, None, :2], b[None, :, :2])).clamp(min=0)
    return wh[..., 0] * wh[..., 1] / torch.clamp(area_a[:, None], min=1e-6)


def ref_atss(anchors, levels, gt, topk=9, inside="scrfd", ignore=None, ignore_iof_thr=-1):
    """mmdet's ATSSAssigner (SCRFD's copy: mmdet/core/bbox/assigners/atss_assigner.py), step by step:
    no faces -> every anchor negative (before the ignore step); ignore boxes only when
    ignore_iof_thr > 0; centre distances, per-level top-k (stable: lower index first), IoU threshold
    mean + unbiased std (float64), inside test, highest IoU wins (lower face index on equal IoU)."""
    n, m = anchors.shape[0], gt.shape[0]
    assigned = torch.zeros(n, dtype=torch.int64)
    max_iou = torch.zeros(n, dtype=torch.float32)
    if m == 0 or n == 0:
        return assigned, max_iou
    ignored = torch.zeros(n, dtype=torch.bool)
    if ignore_iof_thr > 0 and ignore is not None and ignore.shape[0]:
        ignored = ref_iof(anchors, ignore).max(1).values > ignore_iof_thr
    overlaps = ref_iou(anchors, gt)  # [n, m]
    acx, acy = (anchors[:, 0] + anchors[:, 2]) / 2.0, (anchors[:, 1] + anchors[:, 3]) / 2.0
    gcx, gcy = (gt[:, 0] + gt[:, 2]) / 2.0, (gt[:, 1] + gt[:, 3]) / 2.0
    apts, gpts = torch.stack([acx, acy], 1), torch.stack([gcx, gcy], 1)
    dist = (apts[:, None, :] - gpts[None, :, :]).pow(2).sum(-1).sqrt()
    dist[ignored, :] = math.inf
    cands, start = [], 0
    for cnt in levels:
        k = min(topk, cnt)
        if k:
            order = torch.sort(dist[start : start + cnt], dim=0, stable=True).indices
            cands.append(order[:k] + start)
        start += cnt
    cand = torch.cat(cands, 0)  # [C, m]
    cand_iou = overlaps[cand, torch.arange(m)]
    c64 = cand_iou.double()
    thr = c64.mean(0) + c64.std(0)  # unbiased
    is_pos = c64 >= thr[None, :]
    l_ = acx[cand] - gt[:, 0]
    t_ = acy[cand] - gt[:, 1]
    r_ = gt[:, 2] - acx[cand]
    b_ = gt[:, 3] - acy[cand]
    mins = torch.stack([l_, t_, r_, b_], 1).min(1).values
    if inside == "mmdet":
        is_in = mins > 0.01
    else:
        wh = torch.clamp((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]), min=1e-4)
        is_in = mins / wh.sqrt() > 0.001
    is_pos &= is_in
    claims = torch.full((n, m), -math.inf)
    cols = torch.arange(m).expand_as(cand)
    claims[cand[is_pos], cols[is_pos]] = cand_iou[is_pos]
    best = claims.max(1).values
    first = torch.where(claims == best[:, None], torch.arange(m), m).min(1).values
    pos = best > -math.inf
    assigned[ignored] = -1
    assigned[pos] = first[pos] + 1
    max_iou[pos] = best[pos]
    return assigned, max_iou


def random_faces(m, seed, lo=8, hi=300, size=640):
    g = torch.Generator().manual_seed(seed)
    wh = torch.exp(torch.empty(m, 1).uniform_(math.log(lo), math.log(hi), generator=g)) * torch.empty(m, 2).uniform_(
        0.7, 1.3, generator=g
    )
    xy = torch.rand(m, 2, generator=g) * size - wh / 4
    return torch.cat([xy, xy + wh], 1)


def check(anchors, levels, gt, **kw):
    assigned, max_iou = ops.atss_assign(anchors, levels, gt, **kw)
    ra, ri = ref_atss(anchors, levels, gt, **kw)
    assert assigned.dtype == torch.int64 and max_iou.dtype == torch.float32
    assert torch.equal(assigned, ra), f"{int((assigned != ra).sum())} anchors differ"
    assert torch.equal(max_iou, ri)
    return assigned, max_iou


@pytest.fixture(scope="module")
def scrfd_anchors():
    return ops.anchors(FS640), ops.num_anchors_per_level(FS640)


@pytest.mark.parametrize("inside", ["scrfd", "mmdet"])
@pytest.mark.parametrize("m, seed", [(0, 0), (1, 1), (1, 2), (12, 3), (300, 4)])
def test_atss_matches_reference(scrfd_anchors, inside, m, seed):
    a, levels = scrfd_anchors
    gt = random_faces(m, seed)
    assigned, _ = check(a, levels, gt, inside=inside)
    if m == 0:
        assert not assigned.any()
    else:
        assert (assigned > 0).any()


@pytest.mark.parametrize("seed", range(2))
def test_atss_tiny_and_huge_faces(scrfd_anchors, seed):
    a, levels = scrfd_anchors
    tiny = random_faces(60, 10 + seed, lo=1, hi=6)
    huge = random_faces(8, 20 + seed, lo=500, hi=1200)
    zero = torch.tensor([[100.0, 100.0, 100.0, 120.0]])  # zero width
    check(a, levels, torch.cat([tiny, huge, zero]))
    check(a, levels, torch.cat([huge, tiny]), inside="mmdet")


def test_atss_grid_aligned_ties(scrfd_anchors):
    # faces centred on anchor centres and duplicated faces: distance ties and equal-IoU claims
    a, levels = scrfd_anchors
    gt = torch.tensor([[48.0, 48.0, 80.0, 80.0], [48.0, 48.0, 80.0, 80.0], [56.0, 56.0, 72.0, 72.0], [0, 0, 32, 32]])
    assigned, _ = check(a, levels, gt)
    assert (assigned == 1).any() and not (assigned == 2).any()  # the duplicate loses every tie


def test_atss_topk_and_ignore(scrfd_anchors):
    a, levels = scrfd_anchors
    gt = random_faces(40, 7)
    ign = random_faces(10, 8, lo=20, hi=120)
    for topk in (1, 2, 9, 32):
        check(a, levels, gt, topk=topk)
    assigned, _ = check(a, levels, gt, ignore=ign, ignore_iof_thr=0.3)
    assert (assigned == -1).any()
    # mmdet: no faces -> all negative; a threshold <= 0 (SCRFD's -1) ignores nothing
    assigned, _ = check(a, levels, torch.zeros(0, 4), ignore=ign, ignore_iof_thr=0.3)
    assert (assigned == 0).all()
    for thr in (0.0, -1.0):
        assigned, _ = check(a, levels, gt, ignore=ign, ignore_iof_thr=thr)
        assert torch.equal(assigned, ops.atss_assign(a, levels, gt)[0]) and not (assigned == -1).any()
    check(a, levels, gt, ignore=torch.zeros(0, 4), ignore_iof_thr=0.3)


@pytest.mark.parametrize("seed", range(3))
def test_atss_scattered_anchors(seed):
    # anchors off any grid (the bucket search must not depend on a layout), clustered and spread out
    g = torch.Generator().manual_seed(seed)
    c = torch.cat([torch.rand(900, 2, generator=g) * 600, 300 + torch.randn(600, 2, generator=g) * 5])
    side = torch.rand(1500, 1, generator=g) * 60 + 2
    a = torch.cat([c - side / 2, c + side / 2], 1)
    a[1400:] = a[1400:1401]  # many identical anchors: distance ties
    gt = torch.cat([random_faces(50, seed), torch.tensor([[290.0, 290, 310, 310], [-500, -500, -400, -380]])])
    check(a, [700, 500, 300], gt)
    check(a, [700, 500, 300], gt, ignore=random_faces(6, seed + 9, lo=50, hi=200), topk=16)


def test_atss_degenerate_level_spread():
    # all centres on one line or one point: the linear scan handles the level
    x = torch.arange(400, dtype=torch.float32)
    line = torch.stack([x, torch.zeros(400), x + 8, torch.full((400,), 8.0)], 1)
    point = torch.tensor([[0.0, 0, 10, 10]]).repeat(300, 1)
    check(torch.cat([line, point]), [400, 300], torch.tensor([[10.0, 0, 30, 8], [0, 0, 9, 9]]))


def test_atss_small_levels_and_single_candidate():
    a = torch.tensor([[0.0, 0, 10, 10], [5, 5, 15, 15], [0, 0, 30, 30]])
    gt = torch.tensor([[1.0, 1, 12, 12]])
    check(a, [2, 1], gt)  # fewer anchors than topk per level
    check(a, [0, 3], gt)  # an empty level
    assigned, max_iou = ops.atss_assign(a[:1], [1], gt)  # one candidate: std undefined, no positive
    assert assigned.tolist() == [0] and max_iou.tolist() == [0.0]
    out = ops.atss_assign(torch.zeros(0, 4), [0], gt)
    assert out[0].shape == (0,) and out[1].shape == (0,)


def test_atss_float16(scrfd_anchors):
    a, levels = scrfd_anchors
    gt = random_faces(20, 5)
    assigned, max_iou = ops.atss_assign(a.half(), levels, gt.half())
    ra, ri = ref_atss(a.half().float(), levels, gt.half().float())
    assert torch.equal(assigned, ra) and torch.equal(max_iou, ri)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((torch.zeros(4, 4), [3], torch.zeros(1, 4)), {}, "sums to"),
        ((torch.zeros(4, 4), [], torch.zeros(1, 4)), {}, "non-empty"),
        ((torch.zeros(4, 4), [5, -1], torch.zeros(1, 4)), {}, "non-negative"),
        ((torch.zeros(4, 4), [4], torch.zeros(1, 4)), {"topk": 0}, "topk"),
        ((torch.zeros(4, 4), [4], torch.zeros(1, 4)), {"inside": "center"}, "inside"),
        ((torch.zeros(4, 4), [4], torch.zeros(1, 4)), {"ignore_iof_thr": -1.5}, "ignore_iof_thr"),
        ((torch.zeros(4, 4), [4], torch.zeros(1, 4, dtype=torch.float16)), {}, "one dtype"),
        ((torch.zeros(4, 4), [4], torch.zeros(1, 4, device="meta")), {}, "CPU or CUDA"),
        ((torch.zeros(4, 4), [4], torch.tensor([[0.0, 0, math.inf, 1]])), {}, "NaN or infinite"),
        ((torch.zeros(4, 4), [4], torch.tensor([[5.0, 0, 1, 1]])), {}, "x2 < x1"),
        ((torch.full((4, 4), math.nan), [4], torch.zeros(1, 4)), {}, "NaN or infinite"),
        ((torch.zeros(4, 4), [4], torch.zeros(1, 4)), {"ignore": torch.zeros(1, 3)}, "last dimension"),
        ((torch.zeros(4, 4), [4], torch.zeros(4)), {}, "dimension"),
        ((torch.zeros(4, 4), "4", torch.zeros(1, 4)), {}, "sequence of integers"),
    ],
)
def test_atss_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ops.atss_assign(*args, **kwargs)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device and a CUDA build of pyddsar")
@pytest.mark.parametrize("m", [0, 1, 10, 100, 500])
def test_atss_cuda_matches_cpu(scrfd_anchors, m):
    a, levels = scrfd_anchors
    gt = torch.cat([random_faces(m, m), random_faces(m // 10, m + 1, lo=1, hi=6)])
    ign = random_faces(5, 99, lo=20, hi=120)
    for kw in ({}, {"inside": "mmdet"}, {"ignore": ign, "topk": 32}):
        cpu = ops.atss_assign(a, levels, gt, **kw)
        kw_gpu = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        gpu = ops.atss_assign(a.cuda(), levels, gt.cuda(), **kw_gpu)
        assert torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])
