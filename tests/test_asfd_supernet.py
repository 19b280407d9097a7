import random

import pytest
import torch

from pyddsar.asfd.autofa import AutoFAE
from pyddsar.asfd.retinanet import ASFDDetector
from pyddsar.asfd.slicing import SlicedConv2d, SlicedGroupNorm, group_count
from pyddsar.asfd.supernet import (
    Genes,
    ScalingSpace,
    ScalingSupernet,
    StackedAutoFAE,
    channel_cap,
    crossover,
    genetic_search,
    measure_latency_ms,
    mutate,
)

SPACE = ScalingSpace(backbones=("resnet18", "resnet34"), module_counts=(1, 2), head_convs=(1, 2), channels=(6, 10, 16))


def _supernet(seed=0):
    torch.manual_seed(seed)
    spec = AutoFAE(4, 6).spec()
    net = ScalingSupernet(SPACE, spec, base_width=4).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-trivial biases and betas everywhere
        for p in net.parameters():
            if p.dim() <= 1:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return net, spec


def test_sliced_conv_equals_plain_conv():
    conv = SlicedConv2d(8, 12, 3, padding=1)
    conv.active_out = 5
    x = torch.randn(2, 3, 7, 7)
    plain = torch.nn.Conv2d(3, 5, 3, padding=1)
    with torch.no_grad():
        plain.weight.copy_(conv.weight[:5, :3])
        plain.bias.copy_(conv.bias[:5])
    assert torch.allclose(conv(x), plain(x), atol=1e-6)


@pytest.mark.parametrize("c, groups", [(256, 32), (128, 16), (48, 6), (32, 4), (24, 3), (20, 2), (16, 2),
                                       (12, 1), (8, 1), (4, 1)])
def test_group_count_is_largest_divisor_near_8_channels_per_group(c, groups):
    assert group_count(c) == groups
    assert c % groups == 0 and max(d for d in range(1, max(1, c // 8) + 1) if c % d == 0) == groups


@pytest.mark.parametrize("c", [4, 12, 24, 32])
def test_sliced_group_norm_equals_plain_group_norm(c):
    norm = SlicedGroupNorm(32)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, c, 5, 6) * 3 + 1
    plain = torch.nn.GroupNorm(group_count(c), c)
    with torch.no_grad():
        plain.weight.copy_(norm.weight[:c])
        plain.bias.copy_(norm.bias[:c])
    torch.testing.assert_close(norm(x), plain(x))
    # each group of the output has zero mean and unit variance before the affine map
    g = group_count(c)
    z = (norm(x) - norm.bias[:c].view(1, c, 1, 1)) / norm.weight[:c].view(1, c, 1, 1)
    z = z.detach().reshape(2, g, -1)
    torch.testing.assert_close(z.mean(-1), torch.zeros(2, g), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(-1, unbiased=False), torch.ones(2, g), atol=1e-3, rtol=0)
    with pytest.raises(ValueError):
        norm(torch.zeros(1, 33, 2, 2))


def _manual_standalone(net, genes, spec):
    """Build the standalone detector independently and copy the slices by hand."""
    c = genes.channels
    bb = net.backbones[genes.backbone]
    det = ASFDDetector(type(bb)(bb.depth, 4), bb.channels, StackedAutoFAE(c, spec, genes.num_modules, genes.skip_fe),
                       c, genes.head_convs).eval()
    det.backbone.load_state_dict(bb.state_dict())
    src = {"inputs": net.inputs[genes.backbone], "neck": net.neck, "head": net.head}
    with torch.no_grad():
        for name, p in list(det.named_parameters()) + list(det.named_buffers()):
            top, rest = name.split(".", 1)
            if top == "backbone":
                continue
            q = dict(list(src[top].named_parameters()) + list(src[top].named_buffers()))[rest]
            p.copy_(q[tuple(slice(0, n) for n in p.shape)])
    return det


def test_channel_slicing_equals_standalone_network():
    net, spec = _supernet()
    x = torch.randn(1, 3, 48, 64)
    for genes in [Genes("resnet18", 2, (False, True), 2, 10), Genes("resnet34", 1, (False,), 1, 6),
                  Genes("resnet18", 1, (True,), 2, 16)]:
        with torch.no_grad():
            a = net(x, genes)
            sub = net.subnet(genes).eval()
            b = sub(x)
            c = _manual_standalone(net, genes, spec)(x)
        for key in ("logits", "deltas"):
            assert torch.allclose(a[key], b[key], atol=1e-5)
            assert torch.allclose(a[key], c[key], atol=1e-5)
        assert sub.inputs.lateral[0].weight.shape[0] == genes.channels
        assert len(sub.head.cls_convs) == genes.head_convs


def test_subnet_of_a_channels_last_supernet_is_a_plain_contiguous_detector():
    """The scaling search trains its supernet channels-last; the subnet it times must be laid out like
    the saved model (contiguous), else the fitness latency is not the deployed one."""
    net, _ = _supernet()
    net.to(memory_format=torch.channels_last)
    sub = net.subnet(Genes("resnet18", 1, (False,), 1, 6))
    convs = [p for p in sub.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous() for p in convs)


def test_single_path_training_step_updates_only_shared_slices():
    net, _ = _supernet()
    net.train()
    genes = Genes("resnet18", 1, (False,), 1, 6)
    before = net.head.cls_convs[0].weight.detach().clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    out = net(torch.randn(2, 3, 32, 32), genes)
    (out["logits"].mean() + out["deltas"].mean()).backward()
    opt.step()
    after = net.head.cls_convs[0].weight.detach()
    assert not torch.equal(before[:6, :6], after[:6, :6])
    assert torch.equal(before[6:], after[6:]) and torch.equal(before[:, 6:], after[:, 6:])


def test_sampling_mutation_crossover_stay_in_space():
    rng = random.Random(0)
    for _ in range(200):
        a, b = SPACE.sample(rng), SPACE.sample(rng)
        SPACE.validate(a)
        SPACE.validate(mutate(a, SPACE, rng, 0.5))
        SPACE.validate(crossover(a, b, rng))
    assert SPACE.sample(rng, max_channels=6).channels == 6
    caps = [channel_cap(s, 100, SPACE) for s in range(100)]
    assert caps[0] == 16 and caps[-1] == 6 and caps == sorted(caps, reverse=True)


def test_genetic_search_finds_toy_optimum():
    space = ScalingSpace(backbones=("resnet18", "resnet34", "resnet50"), module_counts=(1, 2, 3),
                         head_convs=(1, 2, 3, 4), channels=(32, 64, 96, 128, 192, 256))
    target = Genes("resnet34", 3, (True, False, True), 2, 96)

    calls = []

    def fitness(g):
        calls.append(g)
        s = -abs(space.backbones.index(g.backbone) - 1) - abs(g.num_modules - 3) - abs(g.head_convs - 2)
        s -= abs(g.channels - 96) / 32
        s -= sum(a != b for a, b in zip(g.skip_fe, target.skip_fe))
        return s

    r1 = genetic_search(space, fitness, population=30, iterations=30, top_k=8, seed=1)
    assert list(r1.scored) == calls and r1.evaluated == len(set(calls)) == len(calls)  # each path scored once
    r2 = genetic_search(space, fitness, population=30, iterations=30, top_k=8, seed=1)
    assert r1.best == target and r1.fitness == 0
    assert r1 == r2
    bests = [b for _, b, _ in r1.history]
    assert bests == sorted(bests)


def test_measure_latency():
    ms = measure_latency_ms(lambda t: t @ t, torch.randn(32, 32), warmup=1, runs=3)
    assert ms >= 0


@pytest.mark.parametrize(
    "call",
    [
        lambda: ScalingSpace(backbones=("vgg",)),
        lambda: ScalingSpace(channels=()),
        lambda: ScalingSpace(head_convs=(0,)),
        lambda: SPACE.validate(Genes("resnet18", 2, (False,), 1, 6)),
        lambda: SPACE.validate(Genes("resnet18", 1, (False,), 1, 7)),
        lambda: genetic_search(SPACE, lambda g: 0.0, population=4, top_k=5),
        lambda: genetic_search(SPACE, None),
        lambda: measure_latency_ms(lambda: None, (), runs=0),
        lambda: SlicedConv2d(4, 4, 1, slice_out=False).__setattr__("active_out", 2),
        lambda: SlicedConv2d(4, 4, 1)(torch.zeros(1, 5, 2, 2)),
    ],
)
def test_bad_input(call):
    with pytest.raises(ValueError):
        call()


def test_searched_backbone_genes():
    space = ScalingSpace(backbones=("resnet18", "ddsar-0.5g"), module_counts=(1,), head_convs=(1,), channels=(6, 10))
    torch.manual_seed(0)
    net = ScalingSupernet(space, AutoFAE(4, 6).spec(), base_width=4).eval()
    genes = Genes("ddsar-0.5g", 1, (True,), 1, 6)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = net(x, genes)
        sub = net.subnet(genes).eval()
        b = sub(x)
    assert torch.allclose(a["logits"], b["logits"], atol=1e-5)
    from pyddsar import presets

    assert sub.config.backbone == "ddsar" and sub.config.arch == str(presets["ddsar-0.5g"])
    assert (sub.config.name, sub.config.skip_fe, sub.config.channels) == ("asfd-scaled", (True,), 6)
    with pytest.raises(ValueError, match="unknown backbone"):
        ScalingSpace(backbones=("vgg16",))
