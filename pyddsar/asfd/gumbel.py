"""Straight-through Gumbel-max selection (ASFD's AutoFE predecessor choice, SPEC section 6).

Forward: an exact one-hot vector at ``argmax(kappa + o)`` where ``o`` is standard Gumbel noise.
Backward: the gradient of the relaxation ``softmax(kappa + o / tau)``; the temperature divides the
noise only (the paper's Eq. 6 as the SPEC reads it), so ``kappa`` itself is never rescaled.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .._validate import integer


def _check_tau(tau) -> float:
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise ValueError(f"tau must be a positive number, got {tau!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"tau must be a positive finite number, got {tau!r}")
    return t


def gumbel_noise(shape, generator: Optional[torch.Generator] = None, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard Gumbel samples ``-log(-log(U))`` with ``U`` uniform in ``(0, 1)``, drawn from ``generator``.

    ``None`` uses torch's global RNG. A generator on another device than ``device`` (a seeded CPU
    generator driving a search on the GPU) draws on its own device and the samples are moved, so a
    seed gives the same samples on every device.
    """
    if generator is not None and device is not None and torch.device(device) != generator.device:
        u = torch.rand(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
    else:
        u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    u = u.clamp(min=tiny, max=1.0 - torch.finfo(dtype).eps)
    return -torch.log(-torch.log(u))


class _StraightThroughGumbel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kappa, noise, tau, dim):
        hard_index = torch.argmax(kappa + noise, dim=dim, keepdim=True)
        hard = torch.zeros_like(kappa).scatter_(dim, hard_index, 1.0)
        soft = torch.softmax(kappa + noise / tau, dim=dim)
        ctx.save_for_backward(soft)
        ctx.dim = dim
        return hard

    @staticmethod
    def backward(ctx, grad):
        (soft,) = ctx.saved_tensors
        # Jacobian-vector product of softmax: s * (g - <g, s>)
        inner = (grad * soft).sum(dim=ctx.dim, keepdim=True)
        return soft * (grad - inner), None, None, None


def gumbel_max_st(
    kappa: torch.Tensor,
    tau: float = 1.0,
    *,
    dim: int = -1,
    noise: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """One-hot sample over ``dim`` of ``kappa`` with the straight-through softmax gradient.

    ``noise`` (Gumbel samples of ``kappa``'s shape) may be given to make the draw reproducible or to
    share it with a reference computation; otherwise it is drawn from ``generator``. The result is
    exactly one-hot (0.0 / 1.0); its gradient w.r.t. ``kappa`` is that of
    ``softmax(kappa + noise / tau, dim)``.
    """
    if not isinstance(kappa, torch.Tensor) or not kappa.is_floating_point():
        raise ValueError("kappa must be a floating-point tensor")
    if kappa.numel() == 0 or kappa.dim() == 0:
        raise ValueError("kappa must have at least one dimension and one element")
    t = _check_tau(tau)
    if noise is None:
        noise = gumbel_noise(kappa.shape, generator, device=kappa.device, dtype=kappa.dtype)
    elif not isinstance(noise, torch.Tensor) or noise.shape != kappa.shape:
        raise ValueError(f"noise must be a tensor of shape {tuple(kappa.shape)}")
    if not torch.isfinite(kappa).all():
        raise ValueError("kappa contains NaN or infinite values")
    return _StraightThroughGumbel.apply(kappa, noise.to(kappa.dtype).detach(), t, dim)


def tau_schedule(step: int, total_steps: int, start: float = 1.0, end: float = 0.1, kind: str = "exp") -> float:
    """Temperature at ``step`` of ``total_steps``, annealed from ``start`` (step 0) to ``end`` (last step).

    ``kind="exp"`` interpolates geometrically (``start * (end / start) ** t``), ``"linear"`` linearly;
    ``t = step / (total_steps - 1)`` is clamped to [0, 1].
    """
    s, e = _check_tau(start), _check_tau(end)
    total_steps = integer(total_steps, "total_steps", low=1)
    step = integer(step, "step", low=0)
    t = 1.0 if total_steps == 1 else min(1.0, step / (total_steps - 1))
    if kind == "exp":
        return s * (e / s) ** t
    if kind == "linear":
        return s + (e - s) * t
    raise ValueError(f"kind must be 'exp' or 'linear', got {kind!r}")
