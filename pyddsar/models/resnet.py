"""The ResNets of the package, one implementation with the two layouts it needs:

* :class:`ResNetV1e`: SCRFD's backbone (scrfd-2.5g/10g/34g): a deep stem of three 3x3 convs and a 2x2
  max-pool; projection shortcuts that average-pool before their 1x1 conv (``avg_down``).
* :class:`ResNet`: the standard ResNet-18/34/50 of ASFD's baseline: a 7x7 stride-2 stem and a 3x3
  stride-2 max-pool; projection shortcuts are a strided 1x1 conv.

Both put the stride of a bottleneck on its 3x3 conv and return the four stage outputs C2..C5
(strides 4, 8, 16, 32). No pretrained downloads: :func:`load_backbone_weights` loads a user's file.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from .._validate import integer
from .layers import ConvNorm, stage_outputs


class Shortcut(nn.Sequential):
    """The projection shortcut: 1x1 conv + BN, after a ``stride`` average pool when ``avg_down``
    (ResNet-D / V1e), else with the stride on the conv."""

    def __init__(self, cin, cout, stride, avg_down=True, fused=False):
        layers = []
        if avg_down and stride > 1:
            layers.append(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False))
        layers.append(ConvNorm(cin, cout, 1, 1 if avg_down else stride, act=False, fused=fused))
        super().__init__(*layers)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, avg_down=True, fused=False):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = ConvNorm(cin, planes, 3, stride, fused=fused)
        self.conv2 = ConvNorm(planes, cout, 3, act=False, fused=fused)
        self.shortcut = Shortcut(cin, cout, stride, avg_down, fused) if stride != 1 or cin != cout else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        return self.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, avg_down=True, fused=False):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = ConvNorm(cin, planes, 1, fused=fused)
        self.conv2 = ConvNorm(planes, planes, 3, stride, fused=fused)  # the stride sits on the 3x3
        self.conv3 = ConvNorm(planes, cout, 1, act=False, fused=fused)
        self.shortcut = Shortcut(cin, cout, stride, avg_down, fused) if stride != 1 or cin != cout else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.conv3(self.conv2(self.conv1(x)))
        return self.relu(out + (x if self.shortcut is None else self.shortcut(x)))


def _stem(in_channels: int, width: int, deep: bool, fused: bool) -> nn.Sequential:
    if deep:  # V1e: three 3x3 convs (strides 2, 1, 1; widths w/2, w/2, w), then a 2x2 max-pool
        half = width // 2
        return nn.Sequential(
            ConvNorm(in_channels, half, 3, 2, fused=fused), ConvNorm(half, half, 3, fused=fused),
            ConvNorm(half, width, 3, fused=fused), nn.MaxPool2d(2, 2))
    # a 7x7 stride-2 conv (ConvNorm pads (k - 1) // 2 = 3), then a 3x3 stride-2 max-pool
    return nn.Sequential(ConvNorm(in_channels, width, 7, 2, fused=fused), nn.MaxPool2d(3, 2, 1))


class _ResNetBody(nn.Module):
    """A stem and four stages of ``blocks[i]`` blocks of ``planes[i]`` (stage 1 stride 1, then 2)."""

    def __init__(self, block: str, planes: Sequence[int], blocks: Sequence[int], stem: int, deep_stem: bool,
                 avg_down: bool, fused: bool = False, in_channels: int = 3):
        super().__init__()
        planes, blocks = list(planes), list(blocks)
        name = type(self).__name__
        if block not in ("basic", "bottleneck"):
            raise ValueError(f"{name} block must be 'basic' or 'bottleneck', got {block!r}")
        if len(planes) != 4 or len(blocks) != 4:
            raise ValueError(f"{name} needs 4 stage widths and 4 block counts, got {planes} / {blocks}")
        cls = BasicBlock if block == "basic" else Bottleneck
        self.in_channels = in_channels
        self.stem = _stem(in_channels, stem, deep_stem, fused)
        self.stages = nn.ModuleList()
        cin = stem
        for i, (p, n) in enumerate(zip(planes, blocks)):
            layers = []
            for j in range(n):
                layers.append(cls(cin, p, 2 if (i > 0 and j == 0) else 1, avg_down, fused))
                cin = p * cls.expansion
            self.stages.append(nn.Sequential(*layers))
        self.out_channels: List[int] = [p * cls.expansion for p in planes]
        self.strides = [4, 8, 16, 32]

    def forward(self, x):
        return stage_outputs(self.stem, self.stages, x)


class ResNetV1e(_ResNetBody):
    """SCRFD's ResNetV1e: ``block`` "basic" or "bottleneck"; ``planes``/``blocks`` per stage; ``stem`` =
    width of the stem. Returns the 4 stage outputs (strides 4..32)."""

    def __init__(self, block: str, planes: Sequence[int], blocks: Sequence[int], stem: int, fused: bool = False):
        super().__init__(block, planes, blocks, stem, deep_stem=True, avg_down=True, fused=fused)


_DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


class ResNet(_ResNetBody):
    """Standard ResNet of ``depth`` 18, 34 or 50 with stem width ``base_width`` (64 in the standard nets;
    stage ``i`` has ``base_width * 2**i`` planes). ``forward(x)`` returns ``[C2, C3, C4, C5]``;
    ``channels`` lists their widths."""

    def __init__(self, depth: int = 18, base_width: int = 64, in_channels: int = 3):
        if depth not in _DEPTHS:
            raise ValueError(f"depth must be one of {sorted(_DEPTHS)}, got {depth!r}")
        base_width = integer(base_width, "base_width", low=1)
        kind, layers = _DEPTHS[depth]
        super().__init__(kind, [base_width * 2**i for i in range(4)], layers, base_width, deep_stem=False,
                         avg_down=False, in_channels=in_channels)
        self.depth = depth
        self.base_width = base_width

    @property
    def channels(self) -> List[int]:
        return list(self.out_channels)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"expected a [B, C, H, W] image batch, got shape {tuple(x.shape)}")
        return super().forward(x)


def resnet18(base_width: int = 64) -> ResNet:
    return ResNet(18, base_width)


def resnet34(base_width: int = 64) -> ResNet:
    return ResNet(34, base_width)


def resnet50(base_width: int = 64) -> ResNet:
    return ResNet(50, base_width)


BACKBONES = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}


def build_backbone(name: str, base_width: int = 64) -> ResNet:
    """``"resnet18"``, ``"resnet34"`` or ``"resnet50"``."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")
    return BACKBONES[name](base_width)


def load_backbone_weights(backbone: nn.Module, path: str, strict: bool = True) -> None:
    """Load a user-supplied state dict (a file saved by ``torch.save``) into ``backbone``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    backbone.load_state_dict(state, strict=strict)
