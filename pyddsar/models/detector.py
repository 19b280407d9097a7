"""The SCRFD-framework face detector: backbone -> PAFPN (C3..C5) -> SCRFD head; its config dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

import torch
from torch import nn

from .. import ops
from .._validate import integer
from .backbone import Backbone
from .mobilenet import MobileNetV1
from .pafpn import PAFPN
from .resnet import ResNetV1e
from .scrfd_head import HeadOutputs, SCRFDHead

BACKBONES = ("ddsar", "mobilenetv1", "resnetv1e")
NORMS = ("gn", "bn")


@dataclass(frozen=True)
class DetectorConfig:
    """Everything that defines a detector's modules (weights aside).

    backbone: ``"ddsar"`` (a searched :class:`~pyddsar.Arch`, ``arch`` = its structure string),
    ``"mobilenetv1"`` (``stage_planes`` 6 widths, ``stage_blocks`` 4 counts) or ``"resnetv1e"``
    (``block`` basic|bottleneck, ``stage_planes``/``stage_blocks`` 4 each, ``stem_channels``).
    Neck: PAFPN with ``neck_channels``. Head: ``stacked_convs`` x ``feat_channels``, ``norm`` gn|bn
    (``gn_groups``), ``dw_conv`` depthwise-separable tower, ``shared_head`` (one tower for all levels) or
    one per level, ``use_kps`` 5 keypoints, ``use_scale`` learnable per-level box scale.
    ``fused``: BN folded into conv biases everywhere (imported inference weights); a GroupNorm head
    keeps its GroupNorm (it cannot be folded).
    """

    name: str = "custom"
    backbone: str = "ddsar"
    arch: str = ""
    block: str = ""
    stage_planes: Tuple[int, ...] = ()
    stage_blocks: Tuple[int, ...] = ()
    stem_channels: int = 0
    neck_channels: int = 16
    stacked_convs: int = 2
    feat_channels: int = 64
    norm: str = "gn"
    gn_groups: int = 16
    dw_conv: bool = False
    shared_head: bool = True
    use_kps: bool = False
    use_scale: bool = True
    fused: bool = False

    def __post_init__(self):
        for f in ("stage_planes", "stage_blocks"):
            object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; use one of {', '.join(BACKBONES)}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown head norm {self.norm!r}; use 'gn' or 'bn'")
        if self.backbone == "ddsar" and not self.arch:
            raise ValueError("a 'ddsar' backbone needs arch (a structure string)")
        for f in ("neck_channels", "feat_channels", "gn_groups"):
            object.__setattr__(self, f, integer(getattr(self, f), f, low=1))
        object.__setattr__(self, "stacked_convs", integer(self.stacked_convs, "stacked_convs", low=0))
        if self.norm == "gn" and self.feat_channels % self.gn_groups:
            raise ValueError(f"feat_channels {self.feat_channels} is not divisible by gn_groups {self.gn_groups}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["stage_planes"], d["stage_blocks"] = list(self.stage_planes), list(self.stage_blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorConfig":
        if not isinstance(d, dict):
            raise ValueError(f"a detector config must be a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown detector config keys: {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **changes) -> "DetectorConfig":
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown detector config keys: {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)


class RawPredictions(NamedTuple):
    """Decoded predictions of a batch, all levels concatenated (order of :func:`pyddsar.ops.anchors`):
    ``scores`` [B, N] sigmoid, ``boxes`` [B, N, 4] x1y1x2y2 pixels, ``kps`` [B, N, 5, 2] pixels or None."""

    scores: torch.Tensor
    boxes: torch.Tensor
    kps: Optional[torch.Tensor]


def build_backbone(cfg: DetectorConfig) -> nn.Module:
    if cfg.backbone == "ddsar":
        return Backbone(cfg.arch, fused=cfg.fused)
    if cfg.backbone == "mobilenetv1":
        return MobileNetV1(cfg.stage_planes, cfg.stage_blocks, fused=cfg.fused)
    return ResNetV1e(cfg.block, cfg.stage_planes, cfg.stage_blocks, cfg.stem_channels, fused=cfg.fused)


class SCRFD(nn.Module):
    """Face detector in the SCRFD framework.

    ``model(x)`` with ``x`` float [B, 3, H, W] (H, W multiples of 32, normalised) returns
    :class:`HeadOutputs`; ``model.predict_raw(x)`` returns :class:`RawPredictions` in pixels.
    """

    strides = (8, 16, 32)
    num_anchors = 2
    anchor_sizes = ((16, 32), (64, 128), (256, 512))

    def __init__(self, config: DetectorConfig):
        super().__init__()
        if not isinstance(config, DetectorConfig):
            raise ValueError(f"SCRFD needs a DetectorConfig, got {type(config).__name__}")
        self.config = config
        self.use_kps = bool(config.use_kps)
        self.backbone = build_backbone(config)
        if list(self.backbone.strides) != [4, 8, 16, 32]:
            raise ValueError(f"the backbone's C2..C5 must have strides 4, 8, 16, 32, got {self.backbone.strides}")
        self.neck = PAFPN(self.backbone.out_channels[1:], config.neck_channels)
        self.head = SCRFDHead(
            config.neck_channels, config.feat_channels, config.stacked_convs, 3, self.num_anchors, config.use_kps,
            config.norm, config.gn_groups, config.dw_conv, config.shared_head, config.use_scale, config.fused,
        )

    def extra_repr(self) -> str:
        return f"name={self.config.name!r}"

    @staticmethod
    def check_input(x) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"input must be a tensor [B, 3, H, W], got {shape}")
        if not x.dtype.is_floating_point:
            raise ValueError(f"input must be floating point, got {x.dtype}")
        h, w = int(x.shape[2]), int(x.shape[3])
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            raise ValueError(f"input height and width must be positive multiples of 32, got {h}x{w}")

    def forward(self, x: torch.Tensor) -> HeadOutputs:
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            self.check_input(x)
        feats = self.backbone(x)
        return self.head(self.neck(feats[1:]))

    def predict_raw(self, x: torch.Tensor) -> RawPredictions:
        """Forward and decode: sigmoid scores, boxes and keypoints in input pixels."""
        out = self(x)
        return decode(out, x.shape[2], x.shape[3], self.strides, self.num_anchors)


def decode(out: HeadOutputs, height: int, width: int, strides=(8, 16, 32), num_anchors: int = 2) -> RawPredictions:
    """Decode :class:`HeadOutputs` of an input of ``height`` x ``width`` pixels."""
    sizes = [(height // s, width // s) for s in strides]
    b = out.cls[0].shape[0]
    dev, dt = out.bbox[0].device, out.bbox[0].dtype
    centers = ops.anchor_centers(sizes, strides, num_anchors, device=dev, dtype=torch.float32)
    stride_col = torch.cat([torch.full((n,), float(s), device=dev) for n, s in
                            zip(ops.num_anchors_per_level(sizes, num_anchors), strides)])
    scores = torch.cat(out.cls, 1).squeeze(-1).sigmoid()
    dist = torch.cat(out.bbox, 1).float() * stride_col[None, :, None]
    n = dist.shape[1]
    pts = centers.expand(b, n, 2).reshape(-1, 2)
    boxes = ops.distance2bbox(pts, dist.reshape(-1, 4)).reshape(b, n, 4).to(dt)
    kps = None
    if out.kps is not None:
        k = torch.cat(out.kps, 1).float().reshape(b, n, 5, 2) * stride_col[None, :, None, None]
        kps = (k + centers[None, :, None, :]).to(dt)
    return RawPredictions(scores, boxes, kps)
