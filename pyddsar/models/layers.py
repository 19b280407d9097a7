"""Small building blocks shared by the backbones, the neck and the head."""

from __future__ import annotations

import torch
from torch import nn


def norm_layer(kind: str, channels: int, groups: int = 16, eps: float = 1e-5) -> nn.Module:
    """``"bn"`` -> BatchNorm2d, ``"gn"`` -> GroupNorm(groups), ``"none"`` -> Identity."""
    if kind == "bn":
        return nn.BatchNorm2d(channels, eps=eps)
    if kind == "gn":
        if channels % groups:
            raise ValueError(f"GroupNorm: {channels} channels are not divisible into {groups} groups")
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; use 'bn', 'gn' or 'none'")


class ConvNorm(nn.Sequential):
    """conv (no bias) + norm [+ ReLU]; with ``fused=True`` (BN folded into the conv, as in SCRFD's ONNX
    files) the conv carries a bias and the norm is an identity."""

    def __init__(self, cin, cout, kernel, stride=1, groups=1, act=True, norm="bn", gn_groups=16,
                 fused=False, eps=1e-5):
        conv = nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=fused)
        layers = [conv, norm_layer("none" if fused else norm, cout, gn_groups, eps)]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)

    @property
    def conv(self) -> nn.Conv2d:
        return self[0]


class Scale(nn.Module):
    """A learnable scalar multiplier (the per-level scale of the box output)."""

    def __init__(self, value: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x):
        return x * self.scale


def stage_outputs(stem: nn.Module, stages, x: torch.Tensor) -> list:
    """Run a backbone laid out as a stem and a sequence of stages; the outputs of every stage."""
    x = stem(x)
    outs = []
    for stage in stages:
        x = stage(x)
        outs.append(x)
    return outs
