"""Exact region count of a concrete small conv layer: the cells of its neurons' hyperplane arrangement.

Theorem 1 (:func:`pyddsar.linear_regions`) gives the maximal number of linear regions of a one-layer
ReLU CNN as a formula. This module counts the regions of one given layer, weights and biases fixed:
every output neuron (filter j at output cell (a, b)) is an affine function of the flattened input,
and the layer's linear regions are the non-empty open cells of the arrangement of the hyperplanes
where those functions vanish. Hyperplanes are added one at a time; a region splits in two exactly
when both sides of the new hyperplane meet it, which a small linear program (scipy's HiGHS)
decides. Each region keeps an interior point, so one of the two sides never needs a program.

See docs/linear_regions.md for where the count agrees with Theorem 1 and where it does not.
"""

from __future__ import annotations

import numpy as np

from ._validate import pair, positive_int, real, shape3

#: Arrangements of more hyperplanes can have up to 2**n regions, each needing programs.
DEFAULT_MAX_HYPERPLANES = 14  # 2^14 regions: 17 s measured (2026-12-02); each 2 more neurons ~4x


def _array(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def layer_hyperplanes(weights, bias, input_shape, stride) -> np.ndarray:
    """Rows (a, b) of the affine functions a.x + b of every output neuron, x the input flattened
    in (row, column, channel) order. weights: (d1, d0, f1, f2) like torch's Conv2d; no padding."""
    w = _array(weights, "weights")
    b = _array(bias, "bias")
    if w.ndim != 4:
        raise ValueError(f"weights must have shape (d1, d0, f1, f2) like a torch Conv2d weight, got {w.shape}")
    d1, d0w, f1, f2 = w.shape
    if min(w.shape) < 1:
        raise ValueError(f"weights has an empty dimension: {w.shape}")
    if b.shape != (d1,):
        raise ValueError(f"bias must have shape ({d1},) (one per filter), got {b.shape}")
    h0, w0, d0 = shape3(input_shape, "input_shape")
    if d0 != d0w:
        raise ValueError(f"input depth d0 = {d0} does not match the weights' {d0w} input channels")
    s1, s2 = pair(stride, "stride")
    if f1 > h0 or f2 > w0:
        raise ValueError(f"kernel {f1}x{f2} is larger than the input {h0}x{w0}")
    h1, w1 = (h0 - f1) // s1 + 1, (w0 - f2) // s2 + 1
    rows = []
    for i in range(h1):
        for j in range(w1):
            for k in range(d1):
                a = np.zeros((h0, w0, d0))
                # input (r, c, ch) meets weight w[k, ch, r - i*s1, c - j*s2]
                a[i * s1 : i * s1 + f1, j * s2 : j * s2 + f2, :] = w[k].transpose(1, 2, 0)
                rows.append(np.append(a.ravel(), b[k]))
    return np.array(rows)


def _distinct(planes: np.ndarray, tol: float) -> list:
    """Normalised hyperplanes, dropping constant neurons (a = 0: no hyperplane) and repeats of a
    hyperplane already present (also with the opposite orientation): they split nothing."""
    kept = []
    for row in planes:
        norm = np.linalg.norm(row[:-1])
        if norm <= tol:
            continue
        row = row / norm
        if any(np.allclose(row, k, atol=tol) or np.allclose(row, -k, atol=tol) for k in kept):
            continue
        kept.append(row)
    return kept


def _interior_point(constraints: list, tol: float):
    """A point strictly inside {x : a.x + b > 0 for every (a, b)}, or None when that set is empty.
    Maximises the common margin t (capped at 1) of all constraints."""
    from scipy.optimize import linprog

    rows = np.array(constraints)
    n = rows.shape[1] - 1
    # a.x + b >= t  <=>  -a.x + t <= b
    A_ub = np.hstack([-rows[:, :-1], np.ones((len(rows), 1))])
    b_ub = rows[:, -1]
    c = np.zeros(n + 1)
    c[-1] = -1.0
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=[(None, None)] * n + [(None, 1.0)], method="highs")
    if res.status != 0 or -res.fun <= tol:
        return None
    return res.x[:-1]


def count_arrangement_regions(weights, bias, input_shape, stride=1, *, max_hyperplanes: int = DEFAULT_MAX_HYPERPLANES,
                              tol: float = 1e-9) -> int:
    """Number of linear regions of one concrete conv layer (ReLU after it), exactly.

    weights: (d1, d0, f1, f2) like a torch Conv2d weight (numpy array or tensor); bias: (d1,);
    input_shape: (h0, w0, d0); stride: s or (s1, s2); no padding. Counts the non-empty open cells
    of the arrangement of the output neurons' hyperplanes in R^(h0*w0*d0). For generic weights it
    equals Theorem 1 on 1-D layers and non-overlapping windows; see docs/linear_regions.md.
    max_hyperplanes (default 14, about 17 s at worst here) refuses larger layers up front (up to 2**n
    regions, each needing linear programs; 16 neurons would take about a minute, 24 hours).
    """
    max_hyperplanes = positive_int(max_hyperplanes, "max_hyperplanes")
    tol = real(tol, "tol", low=0, high=1e-3, low_open=True, high_open=True)
    planes = layer_hyperplanes(weights, bias, input_shape, stride)
    if len(planes) > max_hyperplanes:
        raise ValueError(
            f"the layer has {len(planes)} neurons (output cells x filters); counting its arrangement is limited "
            f"to max_hyperplanes = {max_hyperplanes}: use a smaller input, fewer filters or raise max_hyperplanes"
        )
    planes = _distinct(planes, 1e-7)
    dim = planes[0].size - 1 if planes else 0
    if dim > 400:
        raise ValueError(f"the input has {dim} values; use an input of at most 400 values")
    # Each region: (constraints as signed rows, an interior point).
    regions = [([], np.zeros(dim))]
    for plane in planes:
        grown = []
        for constraints, point in regions:
            side = plane[:-1] @ point + plane[-1]
            here, there = (plane, -plane) if side >= 0 else (-plane, plane)
            # the interior point's side is non-empty unless the point lies on the plane
            keep = point if abs(side) > tol else _interior_point(constraints + [here], tol)
            other = _interior_point(constraints + [there], tol)
            if keep is not None:
                grown.append((constraints + [here], keep))
            if other is not None:
                grown.append((constraints + [there], other))
        regions = grown
    return len(regions)
