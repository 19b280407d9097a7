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
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[2:], mode="nearest")
        mid = [conv(x) for conv, x in zip(self.smooth, lat)]
        for i in range(len(mid) - 1):  # bottom-up
            mid[i + 1] = mid[i + 1] + self.down[i](mid[i])
        return [mid[0]] + [conv(x) for conv, x in zip(self.bottom_up, mid[1:])]
