"""SCRFD's detection head (SPEC section 4): a tower of 3x3 conv + norm + ReLU (or depthwise-separable
pairs) shared by classification and boxes, 3x3 predictors for 1 class, 4 distances and optionally 10
keypoint offsets per anchor, a learnable scale per level on the box output. The tower and predictors are
shared across levels or one per level."""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

import math

import torch
from torch import nn

from .layers import ConvNorm, Scale


class HeadOutputs(NamedTuple):
    """Per level (strides 8, 16, 32), flattened row-major (y, x) then anchor:
    ``cls`` [B, H*W*A, 1] logits, ``bbox`` [B, H*W*A, 4] distances (l, t, r, b) in stride units,
    ``kps`` [B, H*W*A, 10] keypoint offsets (x, y) x 5 in stride units, or None."""

    cls: List[torch.Tensor]
    bbox: List[torch.Tensor]
    kps: Optional[List[torch.Tensor]]


def _tower_conv(cin, cout, dw, norm, groups, fused):
    if dw:
        return nn.Sequential(
            ConvNorm(cin, cin, 3, groups=cin, norm=norm, gn_groups=groups, fused=fused),
            ConvNorm(cin, cout, 1, norm=norm, gn_groups=groups, fused=fused),
        )
    return ConvNorm(cin, cout, 3, norm=norm, gn_groups=groups, fused=fused)


class HeadBranch(nn.Module):
    """One tower with its predictors (used for every level, or for one level)."""

    def __init__(self, cin, feat, stacked, num_anchors, use_kps, norm, groups, dw, fused):
        super().__init__()
        self.tower = nn.Sequential(*[_tower_conv(cin if i == 0 else feat, feat, dw, norm, groups, fused) for i in range(stacked)])
        c = feat if stacked else cin
        self.cls = nn.Conv2d(c, num_anchors, 3, padding=1)
        self.reg = nn.Conv2d(c, 4 * num_anchors, 3, padding=1)
        self.kps = nn.Conv2d(c, 10 * num_anchors, 3, padding=1) if use_kps else None
        self.init_weights()

    def init_weights(self, prior: float = 0.01) -> None:
        """Small predictor weights and a face prior of 1 % (RetinaNet / SCRFD): with the default
        init every anchor starts at p = 0.5 and the tens of thousands of negatives swamp the first
        steps, driving every score to zero before the boxes can learn."""
        for conv in (self.cls, self.reg, self.kps):
            if conv is not None:
                nn.init.normal_(conv.weight, std=0.01)
                nn.init.zeros_(conv.bias)
        nn.init.constant_(self.cls.bias, -math.log((1 - prior) / prior))


def _rows(t: torch.Tensor, k: int) -> torch.Tensor:
    # [B, A*k, H, W] -> [B, H*W*A, k]: channels of one location are anchor-major
    return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1, k)


def _flat(t: torch.Tensor, k: int) -> torch.Tensor:
    return _FlatForOnnx.apply(t, k) if torch.onnx.is_in_onnx_export() else _rows(t, k)


class _FlatForOnnx(torch.autograd.Function):
    """:func:`_rows` as ONNX writes it best: Transpose, then Reshape to the constant shape
    ``[0, -1, k]`` (0 copies the batch). Traced, the batch would be read with Shape / Gather /
    Unsqueeze / Concat before every one of the 6 or 9 outputs."""

    @staticmethod
    def forward(ctx, t, k: int):
        return _rows(t, k)

    @staticmethod
    def symbolic(g, t, k: int):
        nhwc = g.op("Transpose", t, perm_i=[0, 2, 3, 1])
        return g.op("Reshape", nhwc, g.op("Constant", value_t=torch.tensor([0, -1, k], dtype=torch.int64)))


class SCRFDHead(nn.Module):
    def __init__(self, in_channels: int, feat_channels: int, stacked_convs: int, num_levels: int = 3,
                 num_anchors: int = 2, use_kps: bool = False, norm: str = "gn", gn_groups: int = 16,
                 dw_conv: bool = False, shared: bool = True, use_scale: bool = True, fused: bool = False):
        super().__init__()
        if stacked_convs < 0 or feat_channels <= 0:
            raise ValueError(f"head needs stacked_convs >= 0 and feat_channels > 0, got {stacked_convs} / {feat_channels}")
        n = 1 if shared else num_levels
        self.branches = nn.ModuleList(
            HeadBranch(in_channels, feat_channels, stacked_convs, num_anchors, use_kps, norm, gn_groups, dw_conv, fused)
            for _ in range(n)
        )
        self.scales = nn.ModuleList(Scale(1.0) for _ in range(num_levels)) if use_scale else None
        self.use_kps = use_kps
        self.num_levels = num_levels

    def forward(self, feats: Sequence[torch.Tensor]) -> HeadOutputs:
        cls, bbox, kps = [], [], []
        for i, x in enumerate(feats):
            br = self.branches[0 if len(self.branches) == 1 else i]
            f = br.tower(x)
            c = br.cls(f)
            b = br.reg(f)
            if self.scales is not None:
                b = self.scales[i](b)
            cls.append(_flat(c, 1))
            bbox.append(_flat(b, 4))
            if br.kps is not None:
                kps.append(_flat(br.kps(f), 10))
        return HeadOutputs(cls, bbox, kps if self.use_kps else None)
