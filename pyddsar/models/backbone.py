"""Backbone built from any searched :class:`pyddsar.Arch` (SPEC section 3), returning C2..C5."""

from __future__ import annotations

from typing import List

from torch import nn

from .._core import round8
from ..arch import Arch
from .layers import ConvNorm

BN_EPS = 1e-3  # DamoFD's MasterNet sets every BN eps to 1e-3


class Residual(nn.Module):
    """``relu(branch(x) + shortcut(x))``; the shortcut is a 1x1 conv + BN carrying the stride when
    ``project`` is true, the identity otherwise."""

    def __init__(self, branch: nn.Sequential, cin: int, cout: int, stride: int, project: bool, fused: bool):
        super().__init__()
        self.branch = branch
        project = project or stride != 1 or cin != cout
        self.shortcut = ConvNorm(cin, cout, 1, stride, act=False, fused=fused, eps=BN_EPS) if project else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.branch(x) + self.shortcut(x))


def _cbr(cin, cout, k, s=1, groups=1, act=True, fused=False):
    return ConvNorm(cin, cout, k, s, groups=groups, act=act, fused=fused, eps=BN_EPS)


def _block_units(block, fused: bool) -> List[nn.Module]:
    """The units of one searched block in forward order (SPEC section 3)."""
    k, out, btn, units = block.kernel, block.out_channels, block.bottleneck, []
    for i in range(block.layers):
        cin = block.in_channels if i == 0 else out
        s = block.stride if i == 0 else 1
        first = i == 0
        if block.type == "Conv":
            units.append(_cbr(cin, out, k, s, fused=fused))
        elif block.type == "Res":
            branch = nn.Sequential(_cbr(cin, btn, k, s, fused=fused), _cbr(btn, out, k, act=False, fused=fused))
            units.append(Residual(branch, cin, out, s, first, fused))
        elif block.type == "Btn":
            for j, (c, st) in enumerate(((cin, s), (out, 1))):
                branch = nn.Sequential(
                    _cbr(c, btn, 1, fused=fused), _cbr(btn, btn, k, st, fused=fused), _cbr(btn, out, 1, act=False, fused=fused)
                )
                units.append(Residual(branch, c, out, st, first and j == 0, fused))
        elif block.type == "MB":
            e = block.expansion
            d1, d2 = round8(e * btn), round8(e * out)
            half_a = nn.Sequential(
                _cbr(cin, d1, 1, fused=fused), _cbr(d1, d1, k, s, groups=d1, fused=fused), _cbr(d1, btn, 1, act=False, fused=fused)
            )
            half_b = nn.Sequential(
                _cbr(btn, d2, 1, fused=fused), _cbr(d2, d2, k, 1, groups=d2, fused=fused), _cbr(d2, out, 1, act=False, fused=fused)
            )
            units.append(Residual(half_a, cin, btn, s, first, fused))
            units.append(Residual(half_b, btn, out, 1, False, fused))
        else:  # Arch validates types; kept for clarity
            raise ValueError(f"unknown block type {block.type!r}")
    return units


class Backbone(nn.Module):
    """A torch network for a 5-block :class:`~pyddsar.Arch`: the stem (block 0) then blocks 1..4, whose
    outputs C2..C5 (strides 4, 8, 16, 32 for the usual stride-2 blocks) are returned as a list.

    Its convs (order, shapes, groups, strides) are those of ``arch.convs()``; ``out_channels`` lists the
    channels of C2..C5.
    """

    def __init__(self, arch, fused: bool = False):
        super().__init__()
        if isinstance(arch, str):
            arch = Arch.parse(arch)
        if not isinstance(arch, Arch):
            raise ValueError(f"Backbone needs an Arch or a structure string, got {type(arch).__name__}")
        if len(arch) != 5:
            raise ValueError(f"a detector backbone needs 5 blocks (stem + C2..C5), this Arch has {len(arch)}")
        if arch[0].in_channels != 3:
            raise ValueError(f"the stem must take 3 input channels, got {arch[0].in_channels}")
        self.structure = str(arch)  # (an Arch holds a native object that cannot be deep-copied)
        self.blocks = nn.ModuleList(nn.Sequential(*_block_units(b, fused)) for b in arch)
        self.out_channels = [b.out_channels for b in arch.blocks[1:]]
        self.strides = []
        s = 1
        for b in arch:
            s *= b.stride
            self.strides.append(s)
        self.strides = self.strides[1:]

    def forward(self, x):
        x = self.blocks[0](x)
        outs = []
        for blk in self.blocks[1:]:
            x = blk(x)
            outs.append(x)
        return outs
