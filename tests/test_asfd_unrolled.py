"""DARTS' second-order architecture gradient against the exact unrolled derivative (double backward)."""

import pytest
import torch

from pyddsar.asfd.unrolled import unrolled_arch_grads

torch.manual_seed(0)
M = torch.randn(3, 2, dtype=torch.float64)
T = torch.randn(3, dtype=torch.float64)


def l_train(w, a):
    return ((w - torch.tanh(M @ a)) ** 2).sum() + 0.1 * (w @ w) * torch.nn.functional.softplus(a[0])


def l_val(w, a):
    return ((w - T) ** 2).sum() + 0.5 * (a @ a) + (w[0] * a[1]) ** 2


def exact(w0, a0, xi):
    """d/da L_val(w - xi grad_w L_train(w, a), a), differentiating through the virtual step."""
    w = w0.clone().requires_grad_(True)
    a = a0.clone().requires_grad_(True)
    gw, = torch.autograd.grad(l_train(w, a), w, create_graph=True)
    ga, = torch.autograd.grad(l_val(w - xi * gw, a), a)
    return ga


@pytest.mark.parametrize("xi", [0.0, 0.05, 0.3])
def test_matches_exact_unrolled_gradient(xi):
    w0, a0 = torch.randn(3, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    w, a = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(a0.clone())
    grads, lv = unrolled_arch_grads(lambda: l_train(w, a), lambda: l_val(w, a), [w], [a], xi=xi, eps=1e-4)
    torch.testing.assert_close(grads[0], exact(w0, a0, xi), rtol=1e-6, atol=1e-8)
    assert torch.equal(w.detach(), w0)  # weights restored exactly
    w1 = w0 - xi * torch.autograd.functional.jacobian(lambda v: l_train(v, a0), w0)
    assert lv == pytest.approx(float(l_val(w1, a0)))


def test_second_order_term_matters():
    w0, a0 = torch.randn(3, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    first, second = exact(w0, a0, 0.0), exact(w0, a0, 0.3)
    assert (first - second).abs().max() > 1e-3  # the toy is coupled: the test above is not vacuous


def test_bad_input():
    w, a = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="xi >= 0"):
        unrolled_arch_grads(lambda: w.sum(), lambda: a.sum(), [w], [a], xi=-1)
    assert unrolled_arch_grads(lambda: w.sum(), lambda: a.sum(), [w], [], xi=0.1)[0] == []
