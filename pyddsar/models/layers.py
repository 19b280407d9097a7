"""Small building blocks shared by the backbones, the neck and the head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class PointwiseStridedConv(nn.Conv2d):
    """A 1x1 conv with a stride, computed on the CPU under autograd as subsampling + a stride-1 1x1
    conv (the same values). torch 2.13 / 2.14's CPU (oneDNN) backward of a strided 1x1 conv on
    channels_last input with 2..15 input channels corrupts the heap and kills the process
    (tests/test_torch_cpu_workaround.py holds the smallest case); the stride-1 conv is unaffected,
    and channels_last trains 1.45x faster on this CPU than contiguous tensors (docs/training.md)."""

    def forward(self, x):
        if x.device.type == "cpu" and torch.is_grad_enabled() and not torch.onnx.is_in_onnx_export():
            return F.conv2d(x[:, :, :: self.stride[0], :: self.stride[1]], self.weight, self.bias, groups=self.groups)
        return super().forward(x)


def conv2d(cin, cout, kernel, stride=1, padding=0, groups=1, bias=True) -> nn.Conv2d:
    """nn.Conv2d, or :class:`PointwiseStridedConv` for the 1x1 strided convs torch's CPU backward
    cannot train on channels_last (fewer than 16 input channels)."""
    cls = PointwiseStridedConv if kernel == 1 and stride > 1 and cin < 16 else nn.Conv2d
    return cls(cin, cout, kernel, stride, padding, groups=groups, bias=bias)


class ConvNorm(nn.Sequential):
    """conv (no bias) + norm [+ ReLU]; with ``fused=True`` (BN folded into the conv, as in SCRFD's ONNX
    files) a BN conv carries a bias and the norm is an identity. GroupNorm cannot be folded: it stays."""

    def __init__(self, cin, cout, kernel, stride=1, groups=1, act=True, norm="bn", gn_groups=16,
                 fused=False, eps=1e-5):
        fold = fused and norm == "bn"
        conv = conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=fold)
        layers = [conv, norm_layer("none" if fold else norm, cout, gn_groups, eps)]
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
