"""Exact linear-region counts of ReLU CNN layers (SPEC section 1).

`linear_regions` evaluates Theorem 1 of Xiong et al. (2020): the sum over the integer points t of
the polymatroid K of prod C(d1, t_ij). The native core splits the layer into independent parts,
uses closed forms for non-overlapping windows and a single cell, and otherwise runs a dynamic
program over the output cells whose state is the past's deficiency on the overlap frontier
(see docs/linear_regions.md). Counts are exact Python ints; logs are floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import _core
from ._validate import pair, positive_int, real, shape3


def _layer_args(input_shape, kernel, stride, filters):
    h0, w0, d0 = shape3(input_shape, "input_shape")
    f1, f2 = pair(kernel, "kernel")
    s = positive_int(stride, "stride")
    d1 = positive_int(filters, "filters")
    if f1 > h0 or f2 > w0:
        raise ValueError(
            f"kernel {f1}x{f2} is larger than the input {h0}x{w0}; use a kernel of at most the input size"
        )
    return h0, w0, d0, f1, f2, s, d1


def linear_regions(input_shape, kernel, stride=1, filters=1, *, max_states: int = 0, max_seconds: float = 60.0) -> int:
    """Maximal (and expected) number of linear regions of a one-layer ReLU CNN, exactly.

    input_shape: (h0, w0, d0); kernel: k or (f1, f2); stride: s; filters: d1. No padding.
    Layers whose windows overlap in both directions are counted by a dynamic program whose cost is
    estimated before it starts (from runs on narrow strips of the layer, a fraction of a second):
    a layer estimated to need more than max_states states (0: the built-in 20 million), 2 GiB or
    max_seconds is refused at once with ValueError giving the estimate; an accepted one is
    stopped at those limits all the same (the estimate is within a factor of two on the layers
    measured, docs/linear_regions.md).

    >>> linear_regions((5, 5, 1), kernel=3, stride=1, filters=7)
    560134574838141912
    """
    args = _layer_args(input_shape, kernel, stride, filters)
    return _core.linear_regions(*args, max_states=_max_states(max_states), max_seconds=_max_seconds(max_seconds))


def log_linear_regions(input_shape, kernel, stride=1, filters=1, *, max_states: int = 0,
                       max_seconds: float = 60.0) -> float:
    """Natural log of :func:`linear_regions`, computed in log space (the integer is never built;
    the same limits)."""
    args = _layer_args(input_shape, kernel, stride, filters)
    return _core.log_linear_regions(*args, max_states=_max_states(max_states), max_seconds=_max_seconds(max_seconds))


def _max_seconds(value) -> float:
    return real(value, "max_seconds", low=0, low_open=True)


def _max_states(value) -> int:
    """0 (the built-in limit) or a positive integer; anything else is a ValueError, not a default."""
    if value == 0 and not isinstance(value, bool) and isinstance(value, int):
        return 0
    return positive_int(value, "max_states")


@dataclass(frozen=True)
class LowerBound:
    """Theorem 2 lower bound for a chain of conv layers: the exact integer and its natural log."""

    value: int | None  # None when exact=False was asked for
    log: float


_MAX_EXACT_BITS = 1 << 26  # an 8 MiB integer; beyond that only the log is useful


def linear_regions_lower_bound(layers, input_shape, *, exact: bool = True) -> LowerBound:
    """Theorem 2 (Xiong et al. 2020, Thm 5): a lower bound on the maximal number of linear regions
    of an L-layer ReLU CNN (no padding).

    layers: [(filters, kernel, stride), ...] in forward order; input_shape: (h0, w0, d0).
    N >= N(N') * prod_{l<L} floor(d_l / d0) ** (h_l * w_l * d0), where N' is the one-layer CNN with
    input h_{L-1} x w_{L-1} x d0, the last layer's filters, kernel and stride. Every layer but the
    last needs d_l >= d0. With exact=False only the log is computed (value is None); exact=True
    refuses bounds of more than 2**26 bits, which no one can use as an integer.
    """
    h, w, d0 = shape3(input_shape, "input_shape")
    layers = list(layers)
    if not layers:
        raise ValueError("layers must list at least one (filters, kernel, stride)")
    exponent_terms = []  # (floor(d_l/d0), h_l*w_l*d0)
    for i, layer in enumerate(layers):
        try:
            filters, kernel, stride = layer
        except (TypeError, ValueError):
            raise ValueError(f"layers[{i}] must be (filters, kernel, stride), got {layer!r}") from None
        filters = positive_int(filters, f"layers[{i}] filters")
        f1, f2 = pair(kernel, f"layers[{i}] kernel")
        s = positive_int(stride, f"layers[{i}] stride")
        if i == len(layers) - 1:
            last = (h, w, d0, f1, f2, s, filters)
            _layer_args((h, w, d0), (f1, f2), s, filters)
            break
        if f1 > h or f2 > w:
            raise ValueError(f"layers[{i}]: kernel {f1}x{f2} is larger than its input {h}x{w}")
        if filters < d0:
            raise ValueError(f"layers[{i}] has {filters} filters, fewer than the input depth d0 = {d0} (Theorem 2 needs d_l >= d0)")
        h, w = (h - f1) // s + 1, (w - f2) // s + 1
        exponent_terms.append((filters // d0, h * w * d0))
    log = _core.log_linear_regions(*last, max_states=0) + sum(e * math.log(q) for q, e in exponent_terms)
    if not exact:
        return LowerBound(value=None, log=log)
    if log / math.log(2) > _MAX_EXACT_BITS:
        raise ValueError(
            f"the bound has about {log / math.log(2):.3g} bits; pass exact=False to get only its log"
        )
    base = _core.linear_regions(*last)
    value = base
    for q, e in exponent_terms:
        value *= q**e
    return LowerBound(value=value, log=log)
