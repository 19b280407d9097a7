"""Channel-sliceable convolution and GroupNorm, the weight-sharing units of the scaling supernet (SPEC section 6).

A :class:`SlicedConv2d` built for ``in_channels -> out_channels`` runs on any narrower input: it uses
``weight[:out, :in]`` and ``bias[:out]`` where ``in`` is the input's channel count and ``out`` is
``active_out`` (``None``: all outputs). With the full width it is an ordinary ``nn.Conv2d``.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import integer


class SlicedConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose leading input / output channels can be used alone (groups must be 1).

    ``slice_out=False`` marks a conv whose output width is fixed (e.g. a class predictor): setting
    its ``active_out`` is refused.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, *, slice_out: bool = True, **kwargs):
        if kwargs.get("groups", 1) != 1:
            raise ValueError("SlicedConv2d supports groups=1 only")
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        self.slice_out = slice_out
        self._active_out: Optional[int] = None

    @property
    def active_out(self) -> Optional[int]:
        return self._active_out

    @active_out.setter
    def active_out(self, value: Optional[int]) -> None:
        if value is not None:
            if not self.slice_out:
                raise ValueError("this convolution has a fixed output width")
            value = integer(value, "active_out", low=1, high=self.out_channels)
        self._active_out = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cin = x.shape[1]
        if cin > self.in_channels:
            raise ValueError(f"input has {cin} channels, this convolution takes at most {self.in_channels}")
        cout = self.out_channels if self._active_out is None else self._active_out
        w = self.weight[:cout, :cin]
        b = None if self.bias is None else self.bias[:cout]
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, 1)


CHANNELS_PER_GROUP = 8


def group_count(channels: int) -> int:
    """GroupNorm groups for ``channels``: about 8 channels per group (GN 32 at 256 channels), the
    largest count not above ``channels // 8`` that divides ``channels`` (1 for narrow maps)."""
    g = max(1, channels // CHANNELS_PER_GROUP)
    while channels % g:
        g -= 1
    return g


class SlicedGroupNorm(nn.Module):
    """GroupNorm with affine parameters for ``channels`` that normalises any narrower input: ``c``
    input channels use ``weight[:c]``, ``bias[:c]`` and :func:`group_count` (c) groups, so a sliced path
    equals a standalone network of width ``c`` (no running statistics to share between widths)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels, self.eps = channels, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c > self.channels:
            raise ValueError(f"input has {c} channels, this norm takes at most {self.channels}")
        return F.group_norm(x, group_count(c), self.weight[:c], self.bias[:c], self.eps)


def sliced_convs(module: nn.Module) -> Iterable[SlicedConv2d]:
    """All :class:`SlicedConv2d` of ``module`` in ``named_modules`` order."""
    return (m for m in module.modules() if isinstance(m, SlicedConv2d))


def set_active_width(module: nn.Module, channels: Optional[int]) -> None:
    """Set ``active_out`` of every output-sliceable conv of ``module`` (``None`` = full width)."""
    for conv in sliced_convs(module):
        if conv.slice_out:
            conv.active_out = None if channels is None else min(channels, conv.out_channels)


def copy_sliced_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy ``src``'s parameters and buffers into the narrower ``dst`` of the same structure.

    Tensors are matched by name; each destination tensor receives the leading slice of the source
    tensor along every axis (``weight[:out, :in, ...]``). Raises ValueError on a structural mismatch.
    """
    s_state = src.state_dict()
    d_state = dst.state_dict()
    missing = [k for k in d_state if k not in s_state]
    if missing:
        raise ValueError(f"source lacks tensors {missing[:5]}")
    with torch.no_grad():
        for name, d in d_state.items():
            s = s_state[name]
            if s.dim() != d.dim() or any(ds > ss for ds, ss in zip(d.shape, s.shape)):
                raise ValueError(f"tensor {name}: source shape {tuple(s.shape)} cannot cover {tuple(d.shape)}")
            d.copy_(s[tuple(slice(0, n) for n in d.shape)])
