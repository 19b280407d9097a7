"""Building ASFD detectors: from an :class:`~pyddsar.asfd.config.ASFDConfig` (:func:`build_asfd`), from
parts (:func:`build_asfd_baseline`), and back from a detector to its config (:func:`config_of`).

The config (plain data) and the modules (:mod:`.retinanet`) do not know each other; this module joins them.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

from torch import nn

from .autofa import AutoFAESpec, DerivedAutoFAE, StackedAutoFAE
from .config import ASFDConfig, backbone_fields
from ..models.resnet import ResNet, build_backbone
from .retinanet import FPN, STRIDES, ASFDDetector


def make_backbone(text, base_width: int = 64):
    """``(module returning C2..C5, their widths)`` for a backbone given as :func:`backbone_fields`
    reads it (a ResNet of stem width ``base_width``, or a searched backbone)."""

    fields = backbone_fields(text)
    if fields["backbone"] != "ddsar":
        m = build_backbone(fields["backbone"], base_width)
        return m, list(m.channels)

    from ..models.backbone import Backbone  # lazily: pyddsar.models imports this module

    m = Backbone(fields["arch"])
    if list(m.strides) != list(STRIDES[:4]):
        raise ValueError(f"an ASFD backbone's C2..C5 must have strides 4, 8, 16, 32, got {m.strides}")
    return m, list(m.out_channels)


def build_asfd(config: ASFDConfig):
    """An :class:`~pyddsar.asfd.retinanet.ASFDDetector` (fresh weights) with ``.config = config``."""

    if not isinstance(config, ASFDConfig):
        raise ValueError(f"build_asfd needs an ASFDConfig, got {type(config).__name__}")
    backbone, widths = make_backbone(config.arch or config.backbone, config.base_width)
    neck = "fpn"
    if config.neck == "autofae":
        spec = AutoFAESpec.from_dict(config.autofae)
        neck = StackedAutoFAE(config.channels, spec, config.num_modules, config.skip_fe)
    det = ASFDDetector(backbone, widths, neck, config.channels, config.head_convs)
    det.config = config
    return det


def build_asfd_baseline(
    backbone: Union[str, nn.Module] = "resnet18",
    neck: Union[str, nn.Module] = "fpn",
    channels: int = 256,
    head_convs: int = 4,
    backbone_channels: Optional[Sequence[int]] = None,
    base_width: int = 64,
) -> ASFDDetector:
    """An ASFD detector from a backbone and a neck given by name or as modules (the ``asfd-baseline``
    preset of :mod:`pyddsar.models.presets` is ``build_detector("asfd-baseline", ...)``); ``.config``
    is set when the parts are ones a config can name (:func:`config_of`), else None.

    ``backbone``: ``"resnet18" | "resnet34" | "resnet50"`` (built from scratch, stem width
    ``base_width``), a searched backbone (``"ddsar-2.5g"``, a structure string, a ``best.json``) or
    any module returning C2..C5 (``backbone_channels`` or its ``.channels`` gives their widths). ``neck``: ``"fpn"`` or a module mapping six maps to six (e.g. an AutoFAE or a
    derived AutoFAE of width ``channels``).
    """
    if isinstance(backbone, str):  # a ResNet name, a ddsar preset, a structure string or a best.json
        backbone = make_backbone(backbone, base_width)[0]
    if not isinstance(backbone, nn.Module):
        raise ValueError("backbone must be a name or an nn.Module")
    if backbone_channels is None:
        backbone_channels = getattr(backbone, "channels", None) or getattr(backbone, "out_channels", None)
        if backbone_channels is None:
            raise ValueError("backbone_channels is required for a backbone without a .channels attribute")
    if isinstance(neck, DerivedAutoFAE):  # the stacked form, so the detector has a config
        neck = StackedAutoFAE.of(neck)
    det = ASFDDetector(backbone, backbone_channels, neck, channels, head_convs)
    det.config = config_of(det)
    return det


def config_of(det: ASFDDetector):
    """The :class:`~pyddsar.asfd.config.ASFDConfig` of a detector made of parts pyddsar knows (a
    pyddsar ResNet or searched backbone, an FPN or stacked derived AutoFAE neck), else None."""

    from ..models.backbone import Backbone

    bb, neck = det.backbone, det.neck
    if isinstance(bb, ResNet) and bb.in_channels == 3:
        fields = {"backbone": f"resnet{bb.depth}", "base_width": bb.base_width}
    elif isinstance(bb, Backbone):
        fields = {"backbone": "ddsar", "arch": bb.structure}
    else:
        return None
    if isinstance(neck, StackedAutoFAE):
        fields.update(neck="autofae", autofae=neck.modules_[0].spec.to_dict(), num_modules=len(neck.modules_),
                      skip_fe=tuple(neck.skip_fe[:len(neck.modules_)]))
        if neck.active_modules != len(neck.modules_) or any(m.spec != neck.modules_[0].spec for m in neck.modules_):
            return None
    elif not isinstance(neck, FPN):
        return None
    return ASFDConfig(channels=det.inputs.lateral[0].out_channels, head_convs=det.head.num_convs, **fields)
