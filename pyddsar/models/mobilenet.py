"""SCRFD's MobileNetV1 backbone (the scrfd-0.5g model): a 3x3 stem, then depthwise-separable layers."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from .layers import ConvNorm, stage_outputs


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise conv + BN + ReLU, then 1x1 conv + BN + ReLU."""

    def __init__(self, cin, cout, stride, fused=False):
        super().__init__(ConvNorm(cin, cin, 3, stride, groups=cin, fused=fused), ConvNorm(cin, cout, 1, fused=fused))


class MobileNetV1(nn.Module):
    """``planes`` = 6 widths: stem conv, stem depthwise layer, then the 4 stages; ``blocks`` = layers per
    stage (the first of each stage has stride 2). Returns the 4 stage outputs (strides 4..32)."""

    def __init__(self, planes: Sequence[int], blocks: Sequence[int], fused: bool = False):
        super().__init__()
        planes, blocks = list(planes), list(blocks)
        if len(planes) != 6 or len(blocks) != 4:
            raise ValueError(f"MobileNetV1 needs 6 planes and 4 stage block counts, got {planes} / {blocks}")
        self.stem = nn.Sequential(ConvNorm(3, planes[0], 3, 2, fused=fused), DepthwiseSeparable(planes[0], planes[1], 1, fused))
        self.stages = nn.ModuleList()
        for i, n in enumerate(blocks):
            layers = [DepthwiseSeparable(planes[i + 1] if j == 0 else planes[i + 2], planes[i + 2], 2 if j == 0 else 1, fused)
                      for j in range(n)]
            self.stages.append(nn.Sequential(*layers))
        self.out_channels = planes[2:]
        self.strides = [4, 8, 16, 32]

    def forward(self, x):
        return stage_outputs(self.stem, self.stages, x)
