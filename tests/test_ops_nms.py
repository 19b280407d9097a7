"""NMS, batched NMS and the detection post-process against plain references written here."""

import pytest

torch = pytest.importorskip("torch")

import pyddsar  # noqa: E402
from pyddsar import ops  # noqa: E402

CUDA = torch.cuda.is_available() and pyddsar.has_cuda()


def ref_iou_matrix(boxes):
    """IoU = inter / (area_i + area_j - inter) in float32, one pair at a time broadcast."""
    b = boxes.float()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = (torch.minimum(b[:, None, 2], b[None, :, 2]) - torch.maximum(b[:, None, 0], b[None, :, 0])).clamp(min=0)
    h = (torch.minimum(b[:, None, 3], b[None, :, 3]) - torch.maximum(b[:, None, 1], b[None, :, 1])).clamp(min=0)
    inter = w * h
    return inter / ((area[:, None] + area[None, :]) - inter)


def ref_nms(boxes, scores, thr, idxs=None):
    """Greedy O(n^2) NMS: visit by decreasing score (ties: lower index), drop IoU > thr."""
    n = boxes.shape[0]
    order = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    iou = ref_iou_matrix(boxes).double()
    removed = [False] * n
    keep = []
    for a, i in enumerate(order):
        if removed[i]:
            continue
        keep.append(i)
        for j in order[a + 1 :]:
            if idxs is not None and int(idxs[j]) != int(idxs[i]):
                continue
            if float(iou[i, j]) > thr:
                removed[j] = True
    return keep


def random_scene(n, seed, ties=True, dup=True, degenerate=True):
    g = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, 100, (n, 2), generator=g).float()
    wh = torch.randint(1, 40, (n, 2), generator=g).float()
    boxes = torch.cat([xy, xy + wh], 1)
    if degenerate:
        k = max(1, n // 10)
        boxes[:k, 2] = boxes[:k, 0]  # zero width
        boxes[k : 2 * k, 3] = boxes[k : 2 * k, 1]  # zero height
    if dup and n > 4:
        boxes[n // 2 : n // 2 + n // 5] = boxes[: n // 5].clone()
    scores = torch.rand(n, generator=g)
    if ties:
        scores = (scores * 8).floor() / 8  # many equal scores
    perm = torch.randperm(n, generator=g)
    return boxes[perm].contiguous(), scores[perm].contiguous()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.45, 0.5, 0.7, 1.0])
def test_nms_matches_reference(seed, thr):
    boxes, scores = random_scene(120 + 40 * seed, seed)
    keep = ops.nms(boxes, scores, thr)
    assert keep.dtype == torch.int64
    assert keep.tolist() == ref_nms(boxes, scores, thr)


def test_nms_exact_threshold_ties():
    # IoU exactly 1/3 and 1/2: `>` means equality keeps the box.
    boxes = torch.tensor([[0, 0, 2, 1], [1, 0, 3, 1], [0, 0, 4, 1], [0, 0, 2, 1]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.9])
    for thr in (1 / 3, 0.5, 0.3333, 0.0, 1.0):
        assert ops.nms(boxes, scores, thr).tolist() == ref_nms(boxes, scores, thr)
    # duplicates with equal scores: the lower index survives
    assert ops.nms(boxes, scores, 0.5).tolist()[0] == 0


def test_nms_orders_by_decreasing_score():
    boxes, scores = random_scene(300, 11, ties=False)
    keep = ops.nms(boxes, scores, 0.5)
    s = scores[keep]
    assert bool((s[:-1] >= s[1:]).all())


def test_nms_float16_is_computed_in_float32():
    boxes, scores = random_scene(200, 3)
    keep = ops.nms(boxes.half(), scores.half(), 0.4)
    assert keep.tolist() == ref_nms(boxes.half().float(), scores.half().float(), 0.4)


def test_nms_torch_ops_entry_point():
    boxes, scores = random_scene(50, 5)
    assert torch.ops.pyddsar.nms(boxes, scores, 0.5).tolist() == ops.nms(boxes, scores, 0.5).tolist()


@pytest.mark.parametrize("seed", range(4))
def test_batched_nms_matches_reference(seed):
    boxes, scores = random_scene(200, 100 + seed)
    idxs = torch.randint(0, 3, (200,), generator=torch.Generator().manual_seed(seed))
    keep = ops.batched_nms(boxes, scores, idxs, 0.5)
    assert keep.tolist() == ref_nms(boxes, scores, 0.5, idxs)
    # int32 categories work too
    assert ops.batched_nms(boxes, scores, idxs.int(), 0.5).tolist() == keep.tolist()


def test_nms_empty():
    keep = ops.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.int64
    assert ops.batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).shape == (0,)


def test_nms_single_and_all_degenerate():
    assert ops.nms(torch.tensor([[1.0, 1, 5, 5]]), torch.tensor([0.3]), 0.5).tolist() == [0]
    z = torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 1], [2, 2, 2, 5]])  # zero-area boxes never suppress
    assert ops.nms(z, torch.tensor([0.5, 0.5, 0.9]), 0.0).tolist() == [2, 0, 1]


@pytest.mark.parametrize(
    "boxes, scores, thr, match",
    [
        (torch.tensor([[0.0, 0, float("nan"), 1]]), torch.tensor([1.0]), 0.5, "NaN or infinite"),
        (torch.tensor([[0.0, 0, float("inf"), 1]]), torch.tensor([1.0]), 0.5, "NaN or infinite"),
        (torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([float("nan")]), 0.5, "NaN or infinite"),
        (torch.tensor([[2.0, 0, 1, 1]]), torch.tensor([1.0]), 0.5, "x2 < x1"),
        (torch.tensor([[0.0, 2, 1, 1]]), torch.tensor([1.0]), 0.5, "x2 < x1"),
        (torch.zeros(2, 4), torch.zeros(3), 0.5, "rows"),
        (torch.zeros(2, 5), torch.zeros(2), 0.5, "last dimension"),
        (torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), 0.5, "float32 or float16"),
        (torch.zeros(2, 4, dtype=torch.int64), torch.zeros(2), 0.5, "float32 or float16"),
        (torch.zeros(2, 4), torch.zeros(2, dtype=torch.float16), 0.5, "one dtype"),
        (torch.zeros(2, 4), torch.zeros(2), -0.1, r"\[0.0, 1.0\]"),
        (torch.zeros(2, 4), torch.zeros(2), 1.5, r"\[0.0, 1.0\]"),
        (torch.zeros(2, 4), torch.zeros(2), float("nan"), r"\[0.0, 1.0\]"),
        (torch.zeros(2, 4), torch.zeros(2), "0.5", "number"),
        ([[0, 0, 1, 1]], torch.zeros(1), 0.5, "torch.Tensor"),
        (torch.zeros(2, 4), torch.zeros(2, device="meta"), 0.5, "CPU or CUDA"),
    ],
)
def test_nms_bad_input(boxes, scores, thr, match):
    with pytest.raises(ValueError, match=match):
        ops.nms(boxes, scores, thr)


def test_batched_nms_bad_input():
    b, s = torch.zeros(2, 4), torch.zeros(2)
    with pytest.raises(ValueError, match="integer"):
        ops.batched_nms(b, s, torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match="entries"):
        ops.batched_nms(b, s, torch.zeros(3, dtype=torch.int64), 0.5)


def test_native_nms_rejects_bad_input_without_crashing():
    from pyddsar import _core

    b = torch.tensor([[0.0, 0, float("nan"), 1]])
    s = torch.ones(1)
    keep = torch.empty(1, dtype=torch.int64)
    with pytest.raises(ValueError):
        _core.nms_cpu(b.data_ptr(), s.data_ptr(), 0, 1, 0.5, keep.data_ptr())
    with pytest.raises(ValueError):
        _core.nms_cpu(b.data_ptr(), s.data_ptr(), 0, 1, -1.0, keep.data_ptr())


# --- post-process -------------------------------------------------------------------------------


def ref_postprocess(boxes, scores, st, k, thr, m):
    cand = [i for i in range(len(scores)) if float(scores[i]) > st]
    cand.sort(key=lambda i: (-float(scores[i]), i))
    cand = cand[:k]
    sub = ref_nms(boxes[cand], scores[cand], thr)
    return [cand[i] for i in sub][:m]


@pytest.mark.parametrize("seed", range(3))
def test_postprocess_matches_reference(seed):
    boxes, scores = random_scene(400, 40 + seed)
    out_boxes, out_scores, index = ops.postprocess(boxes, scores, 0.3, 150, 0.45, 20)
    expected = ref_postprocess(boxes, scores, 0.3, 150, 0.45, 20)
    assert index.tolist() == expected
    assert torch.equal(out_boxes, boxes[expected]) and torch.equal(out_scores, scores[expected])


def test_postprocess_defaults_and_empty():
    b, s, i = ops.postprocess(torch.zeros(0, 4), torch.zeros(0))
    assert b.shape == (0, 4) and s.shape == (0,) and i.dtype == torch.int64
    boxes, scores = random_scene(100, 9)
    b, s, i = ops.postprocess(boxes, scores * 0.01)  # every score under 0.02
    assert i.numel() == 0
    with pytest.raises(ValueError, match="pre_nms_topk"):
        ops.postprocess(boxes, scores, pre_nms_topk=-1)
    with pytest.raises(ValueError, match="max_detections"):
        ops.postprocess(boxes, scores, max_detections=1.5)


# --- other implementations ----------------------------------------------------------------------


def test_nms_same_kept_set_as_torchvision():
    tv = pytest.importorskip("torchvision", reason="torchvision is not installed")
    boxes, scores = random_scene(500, 77, ties=False)
    for thr in (0.3, 0.5, 0.7):
        assert ops.nms(boxes, scores, thr).tolist() == tv.ops.nms(boxes, scores, thr).tolist()


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device and a CUDA build of pyddsar")
@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 700, 3000])
def test_nms_cuda_matches_cpu(n):
    boxes, scores = random_scene(n, n) if n else (torch.zeros(0, 4), torch.zeros(0))
    for thr in (0.0, 0.45, 0.5):
        cpu = ops.nms(boxes, scores, thr)
        gpu = ops.nms(boxes.cuda(), scores.cuda(), thr)
        assert gpu.device.type == "cuda" and gpu.cpu().tolist() == cpu.tolist()
    idxs = torch.arange(n) % 3
    assert (
        ops.batched_nms(boxes.cuda(), scores.cuda(), idxs.cuda(), 0.5).cpu().tolist()
        == ops.batched_nms(boxes, scores, idxs, 0.5).tolist()
    )


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device and a CUDA build of pyddsar")
def test_nms_cuda_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        ops.nms(torch.tensor([[0.0, 0, float("nan"), 1]]).cuda(), torch.ones(1).cuda(), 0.5)
    with pytest.raises(ValueError, match="device"):
        ops.nms(torch.zeros(2, 4).cuda(), torch.zeros(2), 0.5)


def test_postprocess_stops_nms_at_max_detections_with_the_same_result():
    # the early exit must give exactly the first max_detections boxes of a full NMS
    g = torch.Generator().manual_seed(7)
    xy = torch.rand(3000, 2, generator=g) * 600
    boxes = torch.cat([xy, xy + torch.rand(3000, 2, generator=g) * 80 + 1], 1)
    scores = torch.rand(3000, generator=g)
    full = ops.nms(boxes, scores, 0.45)
    assert len(full) > 300
    for m in (1, 50, 300, len(full), len(full) + 10):
        _, _, idx = ops.postprocess(boxes, scores, 0.0, None, 0.45, m)
        assert torch.equal(idx, full[:m])
    labels = torch.randint(0, 3, (3000,), generator=g)
    full_b = ops.batched_nms(boxes, scores, labels, 0.45)
    _, _, idx = ops.postprocess(boxes, scores, 0.0, None, 0.45, 100, idxs=labels)
    assert torch.equal(idx, full_b[:100])


def test_postprocess_nms_threshold_and_its_deprecated_alias():
    """``nms_threshold`` (the Preprocessing name) sets the IoU; ``iou_threshold`` still works, warned."""
    g = torch.Generator().manual_seed(3)
    xy = torch.rand(200, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + 10 + torch.rand(200, 2, generator=g) * 30], 1)
    scores = torch.rand(200, generator=g)
    for thr in (0.2, 0.5, 0.8):
        want = ops.nms(boxes, scores, thr)  # no score cut, no top-k, no cap: plain NMS
        got = ops.postprocess(boxes, scores, -1.0, None, nms_threshold=thr, max_detections=None)[2]
        assert torch.equal(got, want)
        with pytest.warns(DeprecationWarning, match="nms_threshold"):
            old = ops.postprocess(boxes, scores, -1.0, None, iou_threshold=thr, max_detections=None)[2]
        assert torch.equal(old, want)
    with pytest.raises(ValueError, match="nms_threshold"):
        ops.postprocess(boxes, scores, nms_threshold=1.5)
