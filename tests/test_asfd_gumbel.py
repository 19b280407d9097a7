import pytest
import torch

from pyddsar.asfd.gumbel import gumbel_max_st, gumbel_noise, tau_schedule


@pytest.mark.parametrize("tau", [1.0, 0.5, 0.1])
def test_forward_one_hot_backward_softmax(tau):
    g = torch.Generator().manual_seed(3)
    kappa = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    noise = gumbel_noise((4, 5), g, dtype=torch.float64)
    w = torch.randn(4, 5, generator=g, dtype=torch.float64)
    y = gumbel_max_st(kappa, tau, noise=noise)
    # forward: exactly one-hot at argmax(kappa + noise)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(y.sum(-1), torch.ones(4, dtype=torch.float64))
    assert torch.equal(y.argmax(-1), (kappa + noise).argmax(-1))
    (y * w).sum().backward()
    # backward: the gradient of softmax(kappa + noise / tau), computed by autograd independently
    k2 = kappa.detach().clone().requires_grad_(True)
    (torch.softmax(k2 + noise / tau, dim=-1) * w).sum().backward()
    assert torch.allclose(kappa.grad, k2.grad, atol=1e-12)


def test_seeded_generator_reproducible():
    k = torch.zeros(10)
    a = gumbel_max_st(k, generator=torch.Generator().manual_seed(1))
    b = gumbel_max_st(k, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_tau_schedule():
    assert tau_schedule(0, 10) == pytest.approx(1.0)
    assert tau_schedule(9, 10) == pytest.approx(0.1)
    assert tau_schedule(100, 10) == pytest.approx(0.1)
    vals = [tau_schedule(i, 10) for i in range(10)]
    assert all(a > b for a, b in zip(vals, vals[1:]))
    assert tau_schedule(5, 11, kind="linear") == pytest.approx(0.55)


@pytest.mark.parametrize(
    "call",
    [
        lambda: gumbel_max_st(torch.zeros(3), tau=0.0),
        lambda: gumbel_max_st(torch.zeros(3), tau=float("nan")),
        lambda: gumbel_max_st(torch.zeros(3, dtype=torch.int64)),
        lambda: gumbel_max_st(torch.zeros(3), noise=torch.zeros(4)),
        lambda: gumbel_max_st(torch.tensor([0.0, float("inf")])),
        lambda: tau_schedule(0, 0),
        lambda: tau_schedule(0, 5, kind="cosine"),
        lambda: tau_schedule(-1, 5),
    ],
)
def test_bad_input(call):
    with pytest.raises(ValueError):
        call()
