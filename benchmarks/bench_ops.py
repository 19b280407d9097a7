"""Benchmarks of the detection ops (pytest-benchmark): `python -m pytest benchmarks/bench_ops.py`.

NMS on 1k / 5k / 20k boxes (and torchvision.ops.nms when importable), ATSS for the 16,800 anchors of a
640x640 image against 10 / 100 / 500 faces (and the plain PyTorch reference of tests/test_ops_atss.py).
CUDA variants run when a GPU and a CUDA build are present. Figures: docs/ops.md.
"""

import math
import os
import sys

import pytest

torch = pytest.importorskip("torch")

import pyddsar  # noqa: E402
from pyddsar import ops  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from test_ops_atss import ref_atss  # noqa: E402

CUDA = torch.cuda.is_available() and pyddsar.has_cuda()
try:
    import torchvision
except ImportError:  # not installed here
    torchvision = None

torch.set_num_threads(max(1, torch.get_num_threads()))


def nms_scene(n, seed=0):
    """Detector-like boxes: clusters of jittered boxes around n / 20 objects, random scores."""
    g = torch.Generator().manual_seed(seed)
    k = max(1, n // 20)
    centres = torch.rand(k, 2, generator=g) * 640
    sizes = torch.exp(torch.empty(k, 1).uniform_(math.log(8), math.log(300), generator=g))
    pick = torch.randint(0, k, (n,), generator=g)
    c = centres[pick] + torch.randn(n, 2, generator=g) * sizes[pick] * 0.1
    wh = sizes[pick] * torch.empty(n, 2).uniform_(0.8, 1.2, generator=g)
    boxes = torch.cat([c - wh / 2, c + wh / 2], 1)
    return boxes, torch.rand(n, generator=g)


def faces(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    wh = torch.exp(torch.empty(m, 1).uniform_(math.log(8), math.log(400), generator=g)).repeat(1, 2)
    xy = torch.rand(m, 2, generator=g) * 640
    return torch.cat([xy - wh / 2, xy + wh / 2], 1)


FS = [(80, 80), (40, 40), (20, 20)]


@pytest.mark.parametrize("n", [1000, 5000, 20000])
def test_nms_cpu(benchmark, n):
    boxes, scores = nms_scene(n)
    benchmark.group = f"nms-{n}"
    keep = benchmark(ops.nms, boxes, scores, 0.45)
    assert keep.numel() > 0


@pytest.mark.skipif(torchvision is None, reason="torchvision is not installed")
@pytest.mark.parametrize("n", [1000, 5000, 20000])
def test_nms_torchvision_cpu(benchmark, n):
    boxes, scores = nms_scene(n)
    benchmark.group = f"nms-{n}"
    keep = benchmark(torchvision.ops.nms, boxes, scores, 0.45)
    assert set(keep.tolist()) == set(ops.nms(boxes, scores, 0.45).tolist())


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device and a CUDA build of pyddsar")
@pytest.mark.parametrize("n", [1000, 5000, 20000])
def test_nms_cuda(benchmark, n):
    boxes, scores = (t.cuda() for t in nms_scene(n))
    benchmark.group = f"nms-{n}"
    benchmark(lambda: ops.nms(boxes, scores, 0.45) and torch.cuda.synchronize())


@pytest.mark.skipif(not CUDA or torchvision is None, reason="needs CUDA and torchvision")
@pytest.mark.parametrize("n", [1000, 5000, 20000])
def test_nms_torchvision_cuda(benchmark, n):
    boxes, scores = (t.cuda() for t in nms_scene(n))
    benchmark.group = f"nms-{n}"
    benchmark(lambda: torchvision.ops.nms(boxes, scores, 0.45) and torch.cuda.synchronize())


@pytest.mark.parametrize("m", [10, 100, 500])
def test_atss_cpu(benchmark, m):
    a, levels, gt = ops.anchors(FS), ops.num_anchors_per_level(FS), faces(m)
    benchmark.group = f"atss-{m}"
    benchmark(ops.atss_assign, a, levels, gt)


@pytest.mark.parametrize("m", [10, 100, 500])
def test_atss_reference_cpu(benchmark, m):
    a, levels, gt = ops.anchors(FS), ops.num_anchors_per_level(FS), faces(m)
    benchmark.group = f"atss-{m}"
    out = benchmark.pedantic(ref_atss, (a, levels, gt), rounds=3, iterations=1)
    assert torch.equal(out[0], ops.atss_assign(a, levels, gt)[0])


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device and a CUDA build of pyddsar")
@pytest.mark.parametrize("m", [10, 100, 500])
def test_atss_cuda(benchmark, m):
    a, levels, gt = ops.anchors(FS, device="cuda"), ops.num_anchors_per_level(FS), faces(m).cuda()
    benchmark.group = f"atss-{m}"
    benchmark(lambda: ops.atss_assign(a, levels, gt) and torch.cuda.synchronize())
