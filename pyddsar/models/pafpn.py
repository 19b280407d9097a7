"""PAFPN neck over C3..C5 (SPEC section 4): lateral 1x1 convs, a top-down path with nearest
upsampling, 3x3 output convs, then a bottom-up path of stride-2 3x3 convs. Convs have biases; no norm,
no activation."""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import nn


class PAFPN(nn.Module):
    def __init__(self, in_channels: Sequence[int], out_channels: int):
        super().__init__()
        in_channels = list(in_channels)
        if len(in_channels) != 3:
            raise ValueError(f"PAFPN takes 3 levels (C3..C5), got in_channels {in_channels}")
        c = int(out_channels)
        if c <= 0:
            raise ValueError(f"neck channels must be positive, got {out_channels}")
        self.lateral = nn.ModuleList(nn.Conv2d(ci, c, 1) for ci in in_channels)
        self.smooth = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in in_channels)
        self.down = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for _ in in_channels[1:])
        self.bottom_up = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in in_channels[1:])
        self.out_channels = c

    def forward(self, feats):
        lat = [conv(f) for conv, f in zip(self.lateral, feats)]
        for i in range(len(lat) - 1, 0, -1):  # top-down
            lat[i - 1] = lat[i - 1] + _upsample_to(lat[i], lat[i - 1])
        mid = [conv(x) for conv, x in zip(self.smooth, lat)]
        for i in range(len(mid) - 1):  # bottom-up
            mid[i + 1] = mid[i + 1] + self.down[i](mid[i])
        return [mid[0]] + [conv(x) for conv, x in zip(self.bottom_up, mid[1:])]


def _upsample_to(x, ref):
    """``x`` upsampled (nearest) to ``ref``'s size. When the size is exactly double, as it is for inputs
    that are multiples of 32, it is written as a scale factor: the same pixels, but an ONNX export then
    has a constant-scale Resize that onnxruntime runs in its blocked layout (a size computed from the
    input's shape put 12 layout reorders around the two Resizes of SCRFD-2.5G, docs/deploy.md)."""
    if ref.shape[-2] == 2 * x.shape[-2] and ref.shape[-1] == 2 * x.shape[-1]:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return F.interpolate(x, size=ref.shape[-2:], mode="nearest")
