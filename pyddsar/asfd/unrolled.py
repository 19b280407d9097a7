"""The second-order architecture gradient of a bi-level search (DARTS' unrolled approximation).

The bi-level problem ``min_a L_val(w*(a), a)`` with ``w*(a) = argmin_w L_train(w, a)`` is approximated
by one virtual SGD step ``w' = w - xi * grad_w L_train(w, a)``; its architecture gradient is

    grad_a L_val(w', a)  -  xi * H_aw(L_train)(w, a) . grad_w' L_val(w', a)

and the mixed second-derivative product is a central finite difference along
``v = grad_w' L_val(w', a)``: ``(grad_a L_train(w + e v, a) - grad_a L_train(w - e v, a)) / (2 e)``
with ``e = eps / |v|``. Five forward/backward passes instead of one (the first-order update,
``xi = 0``, is the plain ``grad_a L_val(w, a)``).
"""

from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import torch


def _grads(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    gs = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)]


def unrolled_arch_grads(
    train_loss: Callable[[], torch.Tensor],
    val_loss: Callable[[], torch.Tensor],
    weights: Sequence[torch.nn.Parameter],
    arch: Sequence[torch.nn.Parameter],
    xi: float,
    eps: float = 0.01,
) -> Tuple[List[torch.Tensor], float]:
    """``(the unrolled architecture gradients, one per arch parameter; L_val(w', a))`` (module doc).

    ``train_loss()`` / ``val_loss()`` compute the loss of the current parameters on a fixed batch each
    (and, when the forward is stochastic, must redraw the same noise on every call). ``weights`` are
    changed in place during the computation and restored exactly before returning.
    """
    weights, arch = list(weights), list(arch)
    if not arch:
        return [], float("nan")
    if not (isinstance(xi, (int, float)) and xi >= 0 and eps > 0):
        raise ValueError(f"need xi >= 0 and eps > 0, got xi={xi!r}, eps={eps!r}")
    saved = [w.detach().clone() for w in weights]
    try:
        g_train = _grads(train_loss(), weights)
        with torch.no_grad():  # w' = w - xi * grad_w L_train(w, a)
            for w, g in zip(weights, g_train):
                w.sub_(xi * g)
        lv = val_loss()
        gv = _grads(lv, weights + arch)
        v, g_arch = gv[:len(weights)], gv[len(weights):]
        if xi == 0:
            return g_arch, float(lv.detach())
        norm = torch.sqrt(sum((t.double() ** 2).sum() for t in v))
        if float(norm) == 0.0:
            return g_arch, float(lv.detach())
        e = eps / float(norm)
        with torch.no_grad():
            for w, s, t in zip(weights, saved, v):
                w.copy_(s + e * t)
        plus = _grads(train_loss(), arch)
        with torch.no_grad():
            for w, s, t in zip(weights, saved, v):
                w.copy_(s - e * t)
        minus = _grads(train_loss(), arch)
        return [g - xi * (p - m) / (2 * e) for g, p, m in zip(g_arch, plus, minus)], float(lv.detach())
    finally:
        with torch.no_grad():
            for w, s in zip(weights, saved):
                w.copy_(s)
