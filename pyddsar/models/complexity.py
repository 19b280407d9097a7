"""Multiply-accumulates and parameters of a model, counted with forward hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import torch
from torch import nn


@dataclass(frozen=True)
class Complexity:
    """``flops``: operations of one forward pass at batch 1, counted the way SCRFD's published table
    was (mmcv's counter): conv multiply-accumulates plus one per output element for a bias; 2 per BN
    output element (affine); 1 per ReLU output element; 1 per pooling input element. GroupNorm,
    upsampling and adds are not counted. ``params``: all parameters. ``per_module``: module name -> count."""

    flops: int
    params: int
    per_module: Dict[str, int] = field(default_factory=dict)


def _conv_macs(m: nn.Conv2d, out: torch.Tensor) -> int:
    per_out = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
    n = out[0].numel()  # one image
    return n * per_out + (n if m.bias is not None else 0)


def complexity(model: nn.Module, resolution=(640, 480)) -> Complexity:
    """Count MACs of ``model`` on a zero image of ``resolution`` = (width, height), batch 1."""
    try:
        w, h = resolution
        w, h = int(w), int(h)
    except (TypeError, ValueError):
        raise ValueError(f"resolution must be (width, height), got {resolution!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"resolution must be positive, got {resolution!r}")
    per: Dict[str, int] = {}
    hooks = []

    def hook(name):
        def f(m, inp, out):
            if isinstance(m, nn.Conv2d):
                v = _conv_macs(m, out)
            elif isinstance(m, nn.BatchNorm2d):
                v = out[0].numel() * (2 if m.affine else 1)
            elif isinstance(m, nn.ReLU):
                v = out[0].numel()
            else:  # pooling
                v = inp[0][0].numel()
            per[name] = per.get(name, 0) + v
        return f

    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d)):
            hooks.append(m.register_forward_hook(hook(name)))
    p = next(model.parameters(), None)
    dev = p.device if p is not None else "cpu"
    dt = p.dtype if p is not None else torch.float32
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, h, w, device=dev, dtype=dt))
    finally:
        for hk in hooks:
            hk.remove()
        model.train(was_training)
    params = sum(t.numel() for t in model.parameters())
    return Complexity(int(sum(per.values())), int(params), per)
