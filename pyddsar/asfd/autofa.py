"""AutoFA (feature aggregation) cells and the AutoFAE neck of ASFD (SPEC section 6).

An AutoFA cell visits the pyramid levels in order (top-down: coarsest -> finest; bottom-up: the
reverse). At the k-th visited level, with pyramid feature ``F`` and the already aggregated features
``C_0..C_{k-1}`` of this cell::

    C_k = f_post(beta0 * F + beta1 * f_pre(sum_j alpha_j * f_re(C_j)))     alpha = softmax(arch_alpha)

``f_re`` resizes to level k's size (bilinear upsampling in the top-down cell, repeated 3x3 / stride 2
max-pooling in the bottom-up cell), ``f_pre`` is a 1x1 conv, ``f_post`` a 3x3 conv followed by ReLU
(both with bias; our choice, the SPEC leaves them open). The first visited level has no
predecessor: ``C_0 = f_post(beta0 * F)``. ``beta`` (``arch_beta``) is used as is, initialised to 1.

Derive rule: keep every ``C_j`` with ``alpha_j >= 0.5``, or the argmax when none reaches 0.5; the kept
weights are ``alpha`` renormalised over the kept set (1.0 for a single one); keep ``beta``.
``forward(..., discrete=True)`` evaluates the supernet with exactly these choices.

:class:`AutoFAE` chains the top-down cell, the bottom-up cell and one AutoFE cell (weights shared
across levels, applied to every level) placed ``"before"``, ``"between"`` (the paper's best),
``"after"`` the two cells, or ``"none"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import integer
from .autofe import DEFAULT_OPS, AutoFE, AutoFESpec, DerivedAutoFE, OpSpec, _check_channels
from .slicing import SlicedConv2d

DIRECTIONS = ("top_down", "bottom_up")
PLACEMENTS = ("before", "between", "after", "none")


def _check_levels(num_levels) -> int:
    return integer(num_levels, "num_levels", low=1)


def visit_order(num_levels: int, direction: str) -> List[int]:
    """Level indices (0 = finest) in the order a cell visits them."""
    num_levels = _check_levels(num_levels)
    if direction == "top_down":
        return list(range(num_levels - 1, -1, -1))
    if direction == "bottom_up":
        return list(range(num_levels))
    raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def resize(x: torch.Tensor, size: Tuple[int, int], steps: int) -> torch.Tensor:
    """``f_re``: bilinear upsampling to ``size`` (``steps < 0``) or ``steps`` 3x3/2 max-pools (``steps > 0``).

    After pooling, a size that still differs from ``size`` (odd input sizes) is matched by adaptive
    max-pooling.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if steps < 0 or x.shape[-2] < size[0] or x.shape[-1] < size[1]:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    for _ in range(steps):
        x = F.max_pool2d(x, 3, stride=2, padding=1)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.adaptive_max_pool2d(x, size)
    return x


def _check_feats(feats, num_levels: int, channels: int) -> None:
    if not isinstance(feats, (list, tuple)) or len(feats) != num_levels:
        raise ValueError(f"expected a list of {num_levels} feature maps (finest first)")
    for f in feats:
        if not isinstance(f, torch.Tensor) or f.dim() != 4 or f.shape[1] > channels:
            raise ValueError(f"each feature must be [B, <= {channels}, H, W]")


@dataclass(frozen=True)
class AutoFACellSpec:
    """A derived cell: per visited position k, the kept earlier positions, their weights and beta."""

    direction: str
    kept: Tuple[Tuple[int, ...], ...]
    weights: Tuple[Tuple[float, ...], ...]
    betas: Tuple[Tuple[float, ...], ...]

    def __post_init__(self):
        visit_order(len(self.kept), self.direction)
        if len(self.weights) != len(self.kept) or len(self.betas) != len(self.kept):
            raise ValueError("kept, weights and betas must have one entry per level")
        for k, (kept, w, b) in enumerate(zip(self.kept, self.weights, self.betas)):
            if len(kept) != len(w) or (k > 0 and not kept) or (k == 0 and kept):
                raise ValueError(f"position {k}: bad kept set {kept}")
            if any(not 0 <= j < k for j in kept) or len(set(kept)) != len(kept):
                raise ValueError(f"position {k} can keep only distinct earlier positions, got {kept}")
            if len(b) != (1 if k == 0 else 2):
                raise ValueError(f"position {k}: beta must have {1 if k == 0 else 2} values")

    @property
    def num_levels(self) -> int:
        return len(self.kept)

    def describe(self, first_level: int = 2) -> str:
        order = visit_order(self.num_levels, self.direction)
        name = [f"P{first_level + lvl}" for lvl in order]
        parts = []
        for k, (kept, w, b) in enumerate(zip(self.kept, self.weights, self.betas)):
            text = f"{name[k]} = post({b[0]:.3g}*F{first_level + order[k]}"
            if kept:
                agg = " + ".join(name[j] if len(kept) == 1 else f"{wj:.3g}*{name[j]}" for j, wj in zip(kept, w))
                text += f" + {b[1]:.3g}*pre({agg})"
            parts.append(text + ")")
        return f"{self.direction.replace('_', '-')}: " + "; ".join(parts)


class _CellBase(nn.Module):
    def __init__(self, channels: int, num_levels: int, direction: str):
        super().__init__()
        self.channels = channels = _check_channels(channels)
        self.num_levels = num_levels = _check_levels(num_levels)
        self.direction = direction
        self.order = visit_order(num_levels, direction)
        self.f_pre = nn.ModuleList(SlicedConv2d(channels, channels, 1) for _ in range(num_levels - 1))
        self.f_post = nn.ModuleList(SlicedConv2d(channels, channels, 3, padding=1) for _ in range(num_levels))

    def _run(self, feats, mix) -> List[torch.Tensor]:
        """``mix(k)`` -> (positions, weights tensor, beta tensor) for position k."""
        _check_feats(feats, self.num_levels, self.channels)
        done: List[torch.Tensor] = []
        out: List[Optional[torch.Tensor]] = [None] * self.num_levels
        for k, lvl in enumerate(self.order):
            f = feats[lvl]
            positions, w, beta = mix(k)
            z = beta[0] * f
            if k > 0:
                size = tuple(f.shape[-2:])
                agg = None
                for j, wj in zip(positions, w):
                    steps = abs(k - j) if self.direction == "bottom_up" else -1
                    y = wj * resize(done[j], size, steps)
                    agg = y if agg is None else agg + y
                z = z + beta[1] * self.f_pre[k - 1](agg)
            c = torch.relu(self.f_post[k](z))
            done.append(c)
            out[lvl] = c
        return out


class AutoFACell(_CellBase):
    """Searchable AutoFA cell over ``num_levels`` levels of width ``channels``.

    Architecture parameters: ``arch_alpha[k - 1]`` (``k`` logits, position k's candidates) and
    ``arch_beta[k]`` (1 value at position 0, 2 after).
    """

    def __init__(self, channels: int, num_levels: int, direction: str = "top_down"):
        super().__init__(channels, num_levels, direction)
        self.arch_alpha = nn.ParameterList(nn.Parameter(torch.zeros(k)) for k in range(1, num_levels))
        self.arch_beta = nn.ParameterList(
            nn.Parameter(torch.ones(1 if k == 0 else 2)) for k in range(num_levels)
        )

    def _kept(self, k: int) -> Tuple[Tuple[int, ...], torch.Tensor]:
        alpha = torch.softmax(self.arch_alpha[k - 1].detach(), dim=0)
        kept = [j for j in range(k) if float(alpha[j]) >= 0.5]
        if not kept:
            kept = [int(alpha.argmax())]
        w = alpha[kept]
        return tuple(kept), w / w.sum()

    def forward(self, feats: Sequence[torch.Tensor], discrete: bool = False) -> List[torch.Tensor]:
        """``feats``: ``num_levels`` maps, finest first; returns the aggregated maps in the same order."""

        def mix(k):
            if k == 0:
                return (), None, self.arch_beta[0]
            if discrete:
                kept, w = self._kept(k)
                return kept, w, self.arch_beta[k]
            return tuple(range(k)), torch.softmax(self.arch_alpha[k - 1], dim=0), self.arch_beta[k]

        return self._run(feats, mix)

    def spec(self) -> AutoFACellSpec:
        kept, weights, betas = [()], [()], [tuple(float(v) for v in self.arch_beta[0].detach())]
        for k in range(1, self.num_levels):
            kk, w = self._kept(k)
            kept.append(kk)
            weights.append(tuple(float(v) for v in w))
            betas.append(tuple(float(v) for v in self.arch_beta[k].detach()))
        return AutoFACellSpec(self.direction, tuple(kept), tuple(weights), tuple(betas))

    def derive(self) -> "DerivedAutoFACell":
        derived = DerivedAutoFACell(self.channels, self.spec()).to(self.arch_beta[0].device)
        derived.f_pre.load_state_dict(self.f_pre.state_dict())
        derived.f_post.load_state_dict(self.f_post.state_dict())
        return derived


class DerivedAutoFACell(_CellBase):
    """A discrete AutoFA cell: fixed kept sets and weights; beta is a trainable parameter (from the spec)."""

    def __init__(self, channels: int, spec: AutoFACellSpec):
        super().__init__(channels, spec.num_levels, spec.direction)
        self.spec = spec
        self.beta = nn.ParameterList(nn.Parameter(torch.tensor(b, dtype=torch.float32)) for b in spec.betas)
        for k, w in enumerate(spec.weights):
            self.register_buffer(f"mix_{k}", torch.tensor(w, dtype=torch.float32), persistent=False)

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        return self._run(feats, lambda k: (self.spec.kept[k], getattr(self, f"mix_{k}"), self.beta[k]))

    def describe(self, first_level: int = 2) -> str:
        return self.spec.describe(first_level)


@dataclass(frozen=True)
class AutoFAESpec:
    """A derived AutoFAE: the two cells, the AutoFE cell (None when placement is "none") and its place."""

    top_down: AutoFACellSpec
    bottom_up: AutoFACellSpec
    fe: Optional[AutoFESpec]
    placement: str = "between"

    def __post_init__(self):
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")
        if (self.fe is None) != (self.placement == "none"):
            raise ValueError("fe must be given exactly when placement is not 'none'")
        if self.top_down.direction != "top_down" or self.bottom_up.direction != "bottom_up":
            raise ValueError("top_down / bottom_up cell specs have the wrong direction")
        if self.top_down.num_levels != self.bottom_up.num_levels:
            raise ValueError("the two cells must have the same number of levels")

    @property
    def num_levels(self) -> int:
        return self.top_down.num_levels

    def to_dict(self) -> dict:
        """Plain JSON-able form (``from_dict`` reads it back)."""
        def cell(c: AutoFACellSpec) -> dict:
            return {"direction": c.direction, "kept": [list(k) for k in c.kept],
                    "weights": [list(w) for w in c.weights], "betas": [list(b) for b in c.betas]}

        fe = None if self.fe is None else {"preds": list(self.fe.preds), "ops": [o.name for o in self.fe.ops]}
        return {"top_down": cell(self.top_down), "bottom_up": cell(self.bottom_up), "fe": fe,
                "placement": self.placement}

    @classmethod
    def from_dict(cls, d: dict) -> "AutoFAESpec":
        """The spec of :meth:`to_dict`'s output; ValueError saying what is wrong otherwise."""
        try:
            def cell(c):
                return AutoFACellSpec(c["direction"], tuple(tuple(int(j) for j in k) for k in c["kept"]),
                                      tuple(tuple(float(x) for x in w) for w in c["weights"]),
                                      tuple(tuple(float(x) for x in b) for b in c["betas"]))

            fe = None if d.get("fe") is None else AutoFESpec(tuple(int(j) for j in d["fe"]["preds"]),
                                                             tuple(OpSpec.parse(o) for o in d["fe"]["ops"]))
            return cls(cell(d["top_down"]), cell(d["bottom_up"]), fe, d.get("placement", "between"))
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not an AutoFAE spec ({type(e).__name__}: {e})") from None

    def describe(self, first_level: int = 2) -> str:
        lines = [self.top_down.describe(first_level), self.bottom_up.describe(first_level)]
        if self.fe is not None:
            lines.append(f"AutoFE ({self.placement}, shared by all levels):")
            lines.extend("  " + line for line in self.fe.describe().splitlines())
        return "\n".join(lines)


def _apply_fe(fe, feats, **kw):
    return [fe(f, **kw) for f in feats]


class AutoFAE(nn.Module):
    """Searchable AutoFAE neck: top-down AutoFA cell, bottom-up AutoFA cell and an AutoFE cell.

    Args:
        channels: width of every level (input = output).
        num_levels: pyramid levels (6 for P2..P7).
        placement: where AutoFE goes, one of ``PLACEMENTS``; ``"none"`` = plain AutoFA.
        fe_nodes, ops, tau, generator: the AutoFE cell's arguments.
    """

    def __init__(
        self,
        channels: int,
        num_levels: int = 6,
        placement: str = "between",
        fe_nodes: int = 4,
        ops: Sequence[OpSpec] = DEFAULT_OPS,
        tau: float = 1.0,
        generator: Optional[torch.Generator] = None,
    ):
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        self.channels = channels = _check_channels(channels)
        self.num_levels = num_levels = _check_levels(num_levels)
        self.placement = placement
        self.top_down = AutoFACell(channels, num_levels, "top_down")
        self.bottom_up = AutoFACell(channels, num_levels, "bottom_up")
        self.fe = None if placement == "none" else AutoFE(channels, fe_nodes, ops, tau, generator)

    @property
    def tau(self) -> Optional[float]:
        return None if self.fe is None else self.fe.tau

    def set_tau(self, tau: float) -> None:
        if self.fe is not None:
            from .gumbel import _check_tau

            self.fe.tau = _check_tau(tau)

    def forward(self, feats: Sequence[torch.Tensor], discrete: bool = False) -> List[torch.Tensor]:
        x = list(feats)
        if self.placement == "before":
            x = _apply_fe(self.fe, x, discrete=discrete)
        x = self.top_down(x, discrete=discrete)
        if self.placement == "between":
            x = _apply_fe(self.fe, x, discrete=discrete)
        x = self.bottom_up(x, discrete=discrete)
        if self.placement == "after":
            x = _apply_fe(self.fe, x, discrete=discrete)
        return x

    def spec(self) -> AutoFAESpec:
        fe = None if self.fe is None else self.fe.spec()
        return AutoFAESpec(self.top_down.spec(), self.bottom_up.spec(), fe, self.placement)

    def derive(self) -> "DerivedAutoFAE":
        """The discrete AutoFAE (weights copied); ``.describe()`` gives its readable form."""
        derived = DerivedAutoFAE(self.channels, self.spec())
        derived.top_down = self.top_down.derive()
        derived.bottom_up = self.bottom_up.derive()
        if self.fe is not None:
            derived.fe = self.fe.derive()
        return derived

    def describe(self) -> str:
        return self.spec().describe()


class AutoFA(AutoFAE):
    """Searchable AutoFA alone: the top-down and bottom-up cells, no AutoFE."""

    def __init__(self, channels: int, num_levels: int = 6):
        super().__init__(channels, num_levels, placement="none")


class DerivedAutoFAE(nn.Module):
    """A discrete AutoFAE of ``spec`` at ``channels`` width (fresh weights unless copied by ``derive``).

    ``forward(feats, skip_fe=True)`` bypasses the AutoFE cell (a gene of the scaling supernet).
    """

    def __init__(self, channels: int, spec: AutoFAESpec):
        super().__init__()
        self.channels = _check_channels(channels)
        self.spec = spec
        self.num_levels = spec.num_levels
        self.top_down = DerivedAutoFACell(channels, spec.top_down)
        self.bottom_up = DerivedAutoFACell(channels, spec.bottom_up)
        self.fe = None if spec.fe is None else DerivedAutoFE(channels, spec.fe)

    def forward(self, feats: Sequence[torch.Tensor], skip_fe: bool = False) -> List[torch.Tensor]:
        use_fe = self.fe is not None and not skip_fe
        x = list(feats)
        if use_fe and self.spec.placement == "before":
            x = _apply_fe(self.fe, x)
        x = self.top_down(x)
        if use_fe and self.spec.placement == "between":
            x = _apply_fe(self.fe, x)
        x = self.bottom_up(x)
        if use_fe and self.spec.placement == "after":
            x = _apply_fe(self.fe, x)
        return x

    def describe(self, first_level: int = 2) -> str:
        return self.spec.describe(first_level)


class StackedAutoFAE(nn.Module):
    """``max_modules`` derived AutoFAE modules of one spec; the first ``active_modules`` run, module
    i bypassing its AutoFE when ``skip_fe[i]``."""

    def __init__(self, channels: int, spec: AutoFAESpec, max_modules: int, skip_fe: Sequence[bool] = ()):
        super().__init__()
        if not isinstance(max_modules, int) or max_modules < 1:
            raise ValueError(f"max_modules must be a positive int, got {max_modules!r}")
        self.modules_ = nn.ModuleList(DerivedAutoFAE(channels, spec) for _ in range(max_modules))
        self.active_modules = max_modules
        self.skip_fe: Tuple[bool, ...] = tuple(skip_fe) or (False,) * max_modules

    @classmethod
    def of(cls, module: "DerivedAutoFAE") -> "StackedAutoFAE":
        """A one-module stack holding ``module`` itself (its weights kept)."""
        if not isinstance(module, DerivedAutoFAE):
            raise ValueError(f"expected a DerivedAutoFAE, got {type(module).__name__}")
        stack = cls(module.channels, module.spec, 1)
        stack.modules_[0] = module
        return stack

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        if len(self.skip_fe) < self.active_modules:
            raise ValueError("skip_fe has fewer flags than active modules")
        x = list(feats)
        for i in range(self.active_modules):
            x = self.modules_[i](x, skip_fe=self.skip_fe[i])
        return x
