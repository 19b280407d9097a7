import pytest
import torch

from pyddsar.asfd.autofa import PLACEMENTS, AutoFA, AutoFACell, AutoFAE, DerivedAutoFAE
from pyddsar.asfd.autofe import AutoFE, AutoFESpec, DerivedAutoFE, OpSpec
from pyddsar.asfd.params import arch_parameters, weight_parameters


def _randomise(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in arch_parameters(module):
            p.copy_(torch.randn(p.shape, generator=g) * 2)


def _feats(c=6, levels=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, 20 // 2**i + 1, 17 // 2**i + 1, generator=g) for i in range(levels)]


def test_autofe_derived_equals_supernet_argmax():
    torch.manual_seed(0)
    fe = AutoFE(6).eval()
    _randomise(fe)
    x = torch.randn(2, 6, 11, 9)
    d = fe.derive()
    assert isinstance(d, DerivedAutoFE)
    assert torch.allclose(fe(x, discrete=True), d(x), atol=1e-6)
    # peaked architecture parameters: the relaxed supernet converges to the same function
    spec = d.spec
    with torch.no_grad():
        for i, (j, op) in enumerate(zip(spec.preds, spec.ops)):
            fe.arch_kappa[i][j] += 100.0
            fe.arch_gamma[i][j, fe.op_specs.index(op)] += 100.0
    assert torch.allclose(fe(x), d(x), atol=1e-5)
    text = d.describe()
    assert "node 3 =" in text and text.splitlines()[-1].startswith("out = ")


def test_autofe_spec_and_leaves():
    spec = AutoFESpec((0, 0, 1), (OpSpec(3, 3), OpSpec.parse("conv1x3_d2"), OpSpec(5, 1)))
    assert spec.leaves == [2, 3]
    x = torch.randn(1, 4, 8, 8)
    d = DerivedAutoFE(4, spec)
    ref = d.nodes[1](x) + d.nodes[2](d.nodes[0](x))
    assert torch.allclose(d(x), ref)
    assert OpSpec.parse("conv1x3_d2") == OpSpec(1, 3, 2)


def test_autofe_training_samples_with_gradient_to_kappa():
    fe = AutoFE(4, generator=torch.Generator().manual_seed(0)).train()
    y = fe(torch.randn(1, 4, 6, 6))
    y.square().mean().backward()
    assert fe.last_preds[0] == 0
    assert all(k.grad is not None for k in fe.arch_kappa)
    assert fe.arch_kappa[2].grad.abs().sum() > 0


@pytest.mark.parametrize("direction", ["top_down", "bottom_up"])
def test_autofa_cell_derived_equals_supernet(direction):
    torch.manual_seed(0)
    cell = AutoFACell(6, 4, direction)
    _randomise(cell, 2)
    feats = _feats()
    d = cell.derive()
    for a, b in zip(cell(feats, discrete=True), d(feats)):
        assert torch.allclose(a, b, atol=1e-6)
    for k, kept in enumerate(d.spec.kept[1:], start=1):
        alpha = torch.softmax(cell.arch_alpha[k - 1].detach(), 0)
        strong = [j for j in range(k) if alpha[j] >= 0.5]
        assert list(kept) == (strong or [int(alpha.argmax())])
    assert d.describe().startswith(direction.replace("_", "-"))


def test_autofa_keeps_all_alphas_at_half():
    cell = AutoFACell(4, 3, "top_down")
    with torch.no_grad():
        cell.arch_alpha[1].copy_(torch.tensor([0.0, 0.0]))  # softmax = (0.5, 0.5): both kept
        cell.arch_beta[2].copy_(torch.tensor([0.7, 1.3]))
    spec = cell.spec()
    assert spec.kept[2] == (0, 1) and spec.weights[2] == pytest.approx((0.5, 0.5))
    assert spec.betas[2] == pytest.approx((0.7, 1.3))


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_autofae_derived_equals_supernet(placement):
    torch.manual_seed(0)
    m = AutoFAE(6, 4, placement=placement).eval()
    _randomise(m, 5)
    feats = _feats()
    d = m.derive()
    assert isinstance(d, DerivedAutoFAE)
    for a, b in zip(m(feats, discrete=True), d(feats)):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-6)
    assert ("AutoFE" in d.describe()) == (placement != "none")


def test_autofa_is_autofae_without_fe():
    assert AutoFA(4, 3).fe is None


def test_bilevel_toy_search_freezes_then_moves_arch():
    torch.manual_seed(0)
    m = AutoFAE(4, 3, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(2, 4, 16 // 2**i, 16 // 2**i, generator=g) for i in range(3)]
    target = [torch.randn(f.shape, generator=g) for f in feats]
    w_opt = torch.optim.SGD(weight_parameters(m), lr=0.01, momentum=0.9)
    a_opt = torch.optim.Adam(arch_parameters(m), lr=0.01)
    loss_fn = lambda: sum((o - t).square().mean() for o, t in zip(m(feats), target))  # noqa: E731
    snapshot = lambda: [p.detach().clone() for p in arch_parameters(m)]  # noqa: E731
    start = snapshot()
    steps = 6
    for step in range(steps):
        m.train()
        w_opt.zero_grad()
        loss_fn().backward()
        w_opt.step()
        if step >= steps // 2:  # architecture frozen for the first half
            a_opt.zero_grad()
            loss_fn().backward()
            a_opt.step()
        if step == steps // 2 - 1:
            assert all(torch.equal(a, b) for a, b in zip(start, snapshot()))
    moved = [not torch.equal(a, b) for a, b in zip(start, snapshot())]
    assert any(moved)
    d = m.eval().derive()
    out = d(feats)
    assert [o.shape for o in out] == [f.shape for f in feats]
    assert all(torch.isfinite(o).all() for o in out)


@pytest.mark.parametrize(
    "call",
    [
        lambda: AutoFE(0),
        lambda: AutoFE(4, num_nodes=1),
        lambda: AutoFE(4, ops=[]),
        lambda: AutoFE(4, ops=["conv2x2"]),
        lambda: OpSpec.parse("pool3x3"),
        lambda: AutoFESpec((1,), (OpSpec(1, 1),)),
        lambda: AutoFAE(4, 3, placement="middle"),
        lambda: AutoFACell(4, 3, "sideways"),
        lambda: AutoFACell(4, 0),
        lambda: AutoFAE(4, 3)([torch.zeros(1, 4, 4, 4)]),
        lambda: AutoFE(4)(torch.zeros(1, 5, 4, 4)),
    ],
)
def test_bad_input(call):
    with pytest.raises(ValueError):
        call()
