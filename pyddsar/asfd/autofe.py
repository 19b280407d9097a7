"""AutoFE: the searchable feature-enhancement cell of ASFD (SPEC section 6).

A DAG of ``num_nodes`` nodes; node 0 is the input. Node ``i >= 1`` takes exactly one predecessor
``j < i``: the choice is a Gumbel-max sample over ``kappa_i`` (straight-through, see
:mod:`pyddsar.asfd.gumbel`) in training, the argmax otherwise. The edge ``j -> i`` is a weighted sum,
``softmax(gamma_ji)``, of candidate convolutions (each conv + GroupNorm + ReLU, same width,
"same" padding). The cell's output is the sum of the leaf nodes (nodes no other node takes).

``derive()`` gives a :class:`DerivedAutoFE`: per node the argmax predecessor and, on that edge, the
argmax op, with that op's weights copied. It computes the same function as the supernet evaluated
with ``discrete=True`` (argmax predecessor, one-hot argmax op weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from .._validate import integer
from .gumbel import _check_tau, gumbel_max_st
from .slicing import SlicedConv2d, SlicedGroupNorm


@dataclass(frozen=True)
class OpSpec:
    """A candidate convolution: kernel ``(kh, kw)`` and dilation."""

    kh: int
    kw: int
    dilation: int = 1

    @property
    def name(self) -> str:
        base = f"conv{self.kh}x{self.kw}"
        return base if self.dilation == 1 else f"{base}_d{self.dilation}"

    @staticmethod
    def parse(name: str) -> "OpSpec":
        """Inverse of :attr:`name` (``"conv3x3"``, ``"conv1x3_d2"``)."""
        text = name.strip()
        try:
            if not text.startswith("conv"):
                raise ValueError
            body, _, dil = text[4:].partition("_d")
            kh, kw = body.split("x")
            return OpSpec(int(kh), int(kw), int(dil) if dil else 1)
        except ValueError:
            raise ValueError(f"not an op name: {name!r} (expected like 'conv3x3' or 'conv1x3_d2')") from None


#: The default candidate pool: 7 plain kernels and the 1x3 / 3x1 / 3x3 kernels at dilation 2 and 3.
DEFAULT_OPS: Tuple[OpSpec, ...] = tuple(
    [OpSpec(1, 1), OpSpec(1, 3), OpSpec(3, 1), OpSpec(3, 3), OpSpec(1, 5), OpSpec(5, 1), OpSpec(5, 5)]
    + [OpSpec(kh, kw, d) for d in (2, 3) for kh, kw in ((1, 3), (3, 1), (3, 3))]
)


def _check_ops(ops: Sequence[OpSpec], unique: bool = True) -> Tuple[OpSpec, ...]:
    ops = tuple(OpSpec.parse(o) if isinstance(o, str) else o for o in ops)
    if not ops:
        raise ValueError("the candidate op list is empty")
    for o in ops:
        if not isinstance(o, OpSpec):
            raise ValueError(f"not an OpSpec: {o!r}")
        if o.kh < 1 or o.kw < 1 or o.kh % 2 == 0 or o.kw % 2 == 0 or o.dilation < 1:
            raise ValueError(f"op {o}: kernels must be odd and positive, dilation >= 1")
    if unique and len(set(ops)) != len(ops):
        raise ValueError("duplicate candidate ops")
    return ops


def _check_channels(channels) -> int:
    return integer(channels, "channels", low=1)


class ConvOp(nn.Module):
    """One candidate op: a (sliceable) conv with "same" padding, GroupNorm, ReLU.

    The norm is our choice (the SPEC names only the kernels): without it the cell's output, a mixture
    of 13 ReLU convs on a randomly sampled path, was up to 30x smaller than its input at
    initialisation and the supernet's box loss stayed flat for 450 SGD steps (docs/asfd.md).
    """

    def __init__(self, channels: int, op: OpSpec):
        super().__init__()
        self.op = op
        pad = (op.dilation * (op.kh - 1) // 2, op.dilation * (op.kw - 1) // 2)
        self.conv = SlicedConv2d(channels, channels, (op.kh, op.kw), padding=pad, dilation=op.dilation, bias=False)
        self.norm = SlicedGroupNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(x)))


def leaves(preds: Sequence[int]) -> List[int]:
    """Leaf nodes of a DAG where node ``i + 1`` takes ``preds[i]``: nodes >= 1 that no node takes."""
    used = set(preds)
    return [i for i in range(1, len(preds) + 1) if i not in used]


@dataclass(frozen=True)
class AutoFESpec:
    """A discrete AutoFE cell: ``preds[i]`` / ``ops[i]`` are node ``i + 1``'s predecessor and op."""

    preds: Tuple[int, ...]
    ops: Tuple[OpSpec, ...]

    def __post_init__(self):
        if len(self.preds) != len(self.ops) or not self.preds:
            raise ValueError("preds and ops must be non-empty and of equal length")
        for i, j in enumerate(self.preds):
            if not isinstance(j, int) or not 0 <= j <= i:
                raise ValueError(f"node {i + 1} cannot take node {j!r} (predecessors are 0..{i})")
        _check_ops(self.ops, unique=False)

    @property
    def leaves(self) -> List[int]:
        return leaves(self.preds)

    def describe(self) -> str:
        lines = [f"node {i + 1} = {o.name}(node {j})" for i, (j, o) in enumerate(zip(self.preds, self.ops))]
        lines.append("out = " + " + ".join(f"node {k}" for k in self.leaves))
        return "\n".join(lines)


class DerivedAutoFE(nn.Module):
    """The discrete AutoFE cell of ``spec`` at ``channels`` width."""

    def __init__(self, channels: int, spec: AutoFESpec):
        super().__init__()
        channels = _check_channels(channels)
        self.spec = spec
        self.channels = channels
        self.nodes = nn.ModuleList(ConvOp(channels, o) for o in spec.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for j, op in zip(self.spec.preds, self.nodes):
            states.append(op(states[j]))
        out = states[self.spec.leaves[0]]
        for k in self.spec.leaves[1:]:
            out = out + states[k]
        return out

    def describe(self) -> str:
        return self.spec.describe()


class MixedOp(nn.Module):
    """An edge of the supernet: all candidate ops, mixed by given weights."""

    def __init__(self, channels: int, ops: Sequence[OpSpec]):
        super().__init__()
        self.ops = nn.ModuleList(ConvOp(channels, o) for o in ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = None
        for w, op in zip(weights, self.ops):
            if not w.requires_grad and float(w) == 0.0:
                continue  # a zero weight of a constant one-hot: the op contributes nothing
            y = w * op(x)
            out = y if out is None else out + y
        return out


class AutoFE(nn.Module):
    """Searchable AutoFE cell (the supernet).

    Args:
        channels: feature width (input = output).
        num_nodes: nodes including the input node 0 (SPEC: 4).
        ops: candidate ops (:data:`DEFAULT_OPS`), OpSpec or names.
        tau: Gumbel temperature (anneal it with :func:`~pyddsar.asfd.gumbel.tau_schedule`).
        generator: optional ``torch.Generator`` for the Gumbel noise (seeded sampling).

    Architecture parameters: ``arch_kappa[i - 1]`` (``i`` entries, node ``i``'s predecessors) and
    ``arch_gamma[i - 1]`` (``[i, len(ops)]``, op weights of each edge into node ``i``).
    """

    def __init__(
        self,
        channels: int,
        num_nodes: int = 4,
        ops: Sequence[OpSpec] = DEFAULT_OPS,
        tau: float = 1.0,
        generator: Optional[torch.Generator] = None,
    ):
        super().__init__()
        self.channels = channels = _check_channels(channels)
        self.num_nodes = num_nodes = integer(num_nodes, "num_nodes", low=2)
        self.op_specs = _check_ops(ops)
        self.tau = _check_tau(tau)
        self.generator = generator
        self.edges = nn.ModuleList(
            nn.ModuleList(MixedOp(channels, self.op_specs) for _ in range(i)) for i in range(1, num_nodes)
        )
        self.arch_kappa = nn.ParameterList(nn.Parameter(torch.zeros(i)) for i in range(1, num_nodes))
        self.arch_gamma = nn.ParameterList(
            nn.Parameter(torch.zeros(i, len(self.op_specs))) for i in range(1, num_nodes)
        )
        self.last_preds: Optional[Tuple[int, ...]] = None

    def _choices(self, discrete: bool) -> List[torch.Tensor]:
        out = []
        for kappa in self.arch_kappa:
            if self.training and not discrete:
                out.append(gumbel_max_st(kappa, self.tau, generator=self.generator))
            else:
                out.append(torch.zeros_like(kappa).scatter_(0, kappa.argmax().view(1), 1.0))
        return out

    def forward(self, x: torch.Tensor, discrete: bool = False) -> torch.Tensor:
        """Supernet forward.

        ``discrete=False``: predecessors sampled (training mode) or argmax (eval mode), op weights
        ``softmax(gamma)``. ``discrete=True``: argmax predecessors and one-hot argmax op weights, the
        function :meth:`derive` reproduces.
        """
        if x.dim() != 4 or x.shape[1] > self.channels:
            raise ValueError(f"expected [B, <= {self.channels}, H, W] input, got {tuple(x.shape)}")
        states = [x]
        preds = []
        for i, (hot, gamma, edges) in enumerate(zip(self._choices(discrete), self.arch_gamma, self.edges)):
            j_star = int(hot.argmax())
            preds.append(j_star)
            node = None
            for j in range(i + 1):
                if j != j_star and not hot.requires_grad:
                    continue
                if discrete:
                    w = torch.zeros_like(gamma[j]).scatter_(0, gamma[j].argmax().view(1), 1.0).detach()
                else:
                    w = torch.softmax(gamma[j], dim=0)
                # hot[j] is exactly 0 or 1; the unchosen edges (value 0) carry kappa's gradient only.
                y = hot[j] * edges[j](states[j], w)
                node = y if node is None else node + y
            states.append(node)
        self.last_preds = tuple(preds)
        out = None
        for k in leaves(preds):
            out = states[k] if out is None else out + states[k]
        return out

    def spec(self) -> AutoFESpec:
        """The argmax architecture."""
        preds, ops = [], []
        for kappa, gamma in zip(self.arch_kappa, self.arch_gamma):
            j = int(kappa.argmax())
            preds.append(j)
            ops.append(self.op_specs[int(gamma[j].argmax())])
        return AutoFESpec(tuple(preds), tuple(ops))

    def derive(self) -> DerivedAutoFE:
        """The discrete cell (argmax choices) with the chosen ops' weights copied."""
        spec = self.spec()
        derived = DerivedAutoFE(self.channels, spec).to(self.arch_kappa[0].device)
        with torch.no_grad():
            for i, (j, op) in enumerate(zip(spec.preds, spec.ops)):
                src = self.edges[i][j].ops[self.op_specs.index(op)]
                derived.nodes[i].load_state_dict(src.state_dict())
        return derived

    def describe(self) -> str:
        return self.spec().describe()
