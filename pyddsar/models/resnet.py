"""SCRFD's ResNetV1e backbone (scrfd-2.5g/10g/34g): a deep 3-conv stem, a 2x2 max-pool, then stages of
basic or bottleneck blocks whose projection shortcuts average-pool before a 1x1 conv."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from .layers import ConvNorm, stage_outputs


class Shortcut(nn.Sequential):
    """avg-pool (stride > 1) then 1x1 conv + BN."""

    def __init__(self, cin, cout, stride, fused=False):
        layers = []
        if stride > 1:
            layers.append(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False))
        layers.append(ConvNorm(cin, cout, 1, act=False, fused=fused))
        super().__init__(*layers)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, fused=False):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = ConvNorm(cin, planes, 3, stride, fused=fused)
        self.conv2 = ConvNorm(planes, cout, 3, act=False, fused=fused)
        self.shortcut = Shortcut(cin, cout, stride, fused) if stride != 1 or cin != cout else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        return self.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, fused=False):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = ConvNorm(cin, planes, 1, fused=fused)
        self.conv2 = ConvNorm(planes, planes, 3, stride, fused=fused)  # the stride sits on the 3x3
        self.conv3 = ConvNorm(planes, cout, 1, act=False, fused=fused)
        self.shortcut = Shortcut(cin, cout, stride, fused) if stride != 1 or cin != cout else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.conv3(self.conv2(self.conv1(x)))
        return self.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class ResNetV1e(nn.Module):
    """``block`` "basic" or "bottleneck"; ``planes``/``blocks`` per stage (stage 1 stride 1, then 2);
    ``stem`` = width of the stem. Returns the 4 stage outputs (strides 4..32)."""

    def __init__(self, block: str, planes: Sequence[int], blocks: Sequence[int], stem: int, fused: bool = False):
        super().__init__()
        planes, blocks = list(planes), list(blocks)
        if block not in ("basic", "bottleneck"):
            raise ValueError(f"ResNetV1e block must be 'basic' or 'bottleneck', got {block!r}")
        if len(planes) != 4 or len(blocks) != 4:
            raise ValueError(f"ResNetV1e needs 4 stage widths and 4 block counts, got {planes} / {blocks}")
        cls = BasicBlock if block == "basic" else Bottleneck
        half = stem // 2
        self.stem = nn.Sequential(
            ConvNorm(3, half, 3, 2, fused=fused), ConvNorm(half, half, 3, fused=fused), ConvNorm(half, stem, 3, fused=fused),
            nn.MaxPool2d(2, 2),
        )
        self.stages = nn.ModuleList()
        cin = stem
        for i, (p, n) in enumerate(zip(planes, blocks)):
            layers = []
            for j in range(n):
                layers.append(cls(cin, p, 2 if (i > 0 and j == 0) else 1, fused))
                cin = p * cls.expansion
            self.stages.append(nn.Sequential(*layers))
        self.out_channels = [p * cls.expansion for p in planes]
        self.strides = [4, 8, 16, 32]

    def forward(self, x):
        return stage_outputs(self.stem, self.stages, x)
