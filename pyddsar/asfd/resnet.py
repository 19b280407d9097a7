"""Plain ResNet-18/34/50 backbones returning C2..C5 (strides 4, 8, 16, 32), trained from scratch
or from user weights (``load_backbone_weights``); no downloads."""

from __future__ import annotations

from typing import List

import torch
from torch import nn

from ..models.layers import stage_outputs

_DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    """ResNet of ``depth`` 18, 34 or 50 with stem width ``base_width`` (64 in the standard nets).

    ``forward(x)`` returns ``[C2, C3, C4, C5]``; ``channels`` lists their widths.
    """

    def __init__(self, depth: int = 18, base_width: int = 64, in_channels: int = 3):
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"depth must be one of {sorted(_DEPTHS)}, got {depth!r}")
        if not isinstance(base_width, int) or isinstance(base_width, bool) or base_width < 1:
            raise ValueError(f"base_width must be a positive int, got {base_width!r}")
        kind, layers = _DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth = depth
        self.base_width = base_width
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base_width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(base_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages: List[nn.Module] = []
        channels: List[int] = []
        cin = base_width
        for i, n in enumerate(layers):
            width = base_width * 2**i
            blocks = []
            for b in range(n):
                blocks.append(block(cin, width, 2 if (b == 0 and i > 0) else 1))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
            channels.append(cin)
        self.stages = nn.ModuleList(stages)
        self.channels: List[int] = channels

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"expected a [B, C, H, W] image batch, got shape {tuple(x.shape)}")
        return stage_outputs(self.stem, self.stages, x)


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
