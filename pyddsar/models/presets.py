"""Detector presets and :func:`build_detector`."""

from __future__ import annotations

import json
import os
from types import MappingProxyType
from typing import Mapping, Union

from ..arch import Arch, presets as arch_presets
from ..asfd.config import ASFDConfig  # plain data; the asfd package is imported with it (lazy loading saved no measurable time)
from .detector import SCRFD, DetectorConfig

AnyConfig = Union[DetectorConfig, ASFDConfig]

# neck channels / head stacked convs x feat channels / GN groups / depthwise (SPEC section 4)
_DDSAR_HEADS = {
    "0.5g": dict(neck_channels=16, stacked_convs=2, feat_channels=64, gn_groups=16, dw_conv=True),
    "2.5g": dict(neck_channels=24, stacked_convs=2, feat_channels=64, gn_groups=16),
    "10g": dict(neck_channels=56, stacked_convs=3, feat_channels=80, gn_groups=16),
    "34g": dict(neck_channels=128, stacked_convs=2, feat_channels=256, gn_groups=32),
}

_CONFIGS = {}
for _k, _h in _DDSAR_HEADS.items():
    _CONFIGS[f"ddsar-{_k}"] = DetectorConfig(name=f"ddsar-{_k}", backbone="ddsar", arch=str(arch_presets[f"ddsar-{_k}"]), **_h)

# SCRFD's own models: insightface detection/scrfd/configs/scrfd/scrfd_{500m,1g,2.5g,10g,34g}.py (GroupNorm
# head shared across levels) and scrfd_{500m,2.5g,10g}_bnkps.py (BN, one head per level, 5 keypoints;
# 500m_bnkps has scale_mode=0: no box scales)
_CONFIGS["scrfd-0.5g"] = DetectorConfig(
    name="scrfd-0.5g", backbone="mobilenetv1", stage_planes=(16, 16, 40, 72, 152, 288), stage_blocks=(2, 3, 2, 6),
    **_DDSAR_HEADS["0.5g"])
_CONFIGS["scrfd-1g"] = DetectorConfig(
    name="scrfd-1g", backbone="mobilenetv1", stage_planes=(32, 48, 48, 160, 216, 312), stage_blocks=(3, 2, 1, 5),
    neck_channels=24, stacked_convs=2, feat_channels=96, gn_groups=8, dw_conv=True)
_CONFIGS["scrfd-2.5g"] = DetectorConfig(
    name="scrfd-2.5g", backbone="resnetv1e", block="basic", stage_planes=(24, 48, 48, 80), stage_blocks=(3, 5, 3, 2),
    stem_channels=24, **_DDSAR_HEADS["2.5g"])
_CONFIGS["scrfd-10g"] = DetectorConfig(
    name="scrfd-10g", backbone="resnetv1e", block="basic", stage_planes=(56, 88, 88, 224), stage_blocks=(3, 4, 2, 3),
    stem_channels=56, **_DDSAR_HEADS["10g"])
_CONFIGS["scrfd-34g"] = DetectorConfig(
    name="scrfd-34g", backbone="resnetv1e", block="bottleneck", stage_planes=(56, 56, 144, 184),
    stage_blocks=(17, 16, 2, 8), stem_channels=56, **_DDSAR_HEADS["34g"])
_CONFIGS["scrfd-0.5g-kps"] = _CONFIGS["scrfd-0.5g"].replace(name="scrfd-0.5g-kps", norm="bn", shared_head=False,
                                                            use_kps=True, use_scale=False)
_CONFIGS["scrfd-2.5g-kps"] = _CONFIGS["scrfd-2.5g"].replace(name="scrfd-2.5g-kps", norm="bn", shared_head=False, use_kps=True)
_CONFIGS["scrfd-10g-kps"] = _CONFIGS["scrfd-10g"].replace(name="scrfd-10g-kps", norm="bn", shared_head=False, use_kps=True)

# ASFD's RetinaNet-style baseline (SPEC section 6): ResNet-18, FPN, 256 channels, 4 head convs; any
# pyddsar backbone through build_detector("asfd-baseline", backbone="resnet50" | "ddsar-2.5g" | ...)
_CONFIGS["asfd-baseline"] = ASFDConfig()

#: Read-only mapping preset name -> DetectorConfig (SCRFD framework) or ASFDConfig (asfd-baseline).
presets: Mapping[str, AnyConfig] = MappingProxyType(_CONFIGS)


def config_from_dict(d: dict) -> AnyConfig:
    """The config of a ``to_dict()`` output: an :class:`ASFDConfig` when it says ``family: asfd``, a
    :class:`DetectorConfig` otherwise."""
    if isinstance(d, dict) and d.get("family") == ASFDConfig.family:
        return ASFDConfig.from_dict(d)
    return DetectorConfig.from_dict(d)


def matches_preset(config: AnyConfig, name: str) -> bool:
    """Whether weights of ``config`` belong to preset ``name``: the same modules (name and BN folding
    aside); for ``asfd-baseline`` any backbone / width choice of that preset (the name it was built as)."""
    base = presets[name]
    if type(config) is not type(base):
        return False
    if isinstance(base, ASFDConfig):
        return config.name == name
    return config.replace(name=name, fused=base.fused) == base


def _config_file(path: str):
    """The config in a JSON file holding a detector config dict (``family`` key), else None."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(data, dict) and "family" in data:
        try:
            return config_from_dict(data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a valid detector config ({e})") from None
    return None


def config_for(name_or_config, **overrides) -> DetectorConfig:
    """The config (:class:`DetectorConfig` or :class:`ASFDConfig`) for a preset name, a config, a config
    dict, an :class:`Arch`, a structure string, a path to a search's ``best.json`` or to a JSON config
    (``detector.json`` of ``pyddsar asfd``); ``overrides`` replace config fields."""
    x = name_or_config
    if isinstance(x, (DetectorConfig, ASFDConfig)):
        cfg = x
    elif isinstance(x, dict):
        cfg = config_from_dict(x)
    elif isinstance(x, Arch):
        cfg = DetectorConfig(name="custom", backbone="ddsar", arch=str(x))
    elif isinstance(x, (str, os.PathLike)):
        s = os.fspath(x)
        if s in presets:
            cfg = presets[s]
        elif os.path.isfile(s):
            saved = _config_file(s)  # a detector.json (a config's to_dict) or else an architecture file
            cfg = saved or DetectorConfig(name=os.path.basename(s), backbone="ddsar", arch=str(Arch.load(s)))
        else:
            try:
                arch = Arch.load(s)  # a structure string, table, JSON, best.json content or "-" (stdin)
            except ValueError:
                raise ValueError(
                    f"unknown detector {s!r}: not a preset ({', '.join(presets)}), a file or an architecture"
                ) from None
            cfg = DetectorConfig(name="custom", backbone="ddsar", arch=str(arch))
    else:
        raise ValueError(f"build_detector takes a preset name, DetectorConfig, dict, Arch or path; got {type(x).__name__}")
    return cfg.replace(**overrides) if overrides else cfg


def build_detector(name_or_config, **overrides):
    """Build a detector (random weights) from a preset name, :class:`DetectorConfig` / :class:`ASFDConfig`
    (or its dict), an :class:`Arch`, a structure string or a search's ``best.json``; keyword overrides
    change config fields (``neck_channels=24, stacked_convs=2, feat_channels=64, use_kps=True``...;
    for ``asfd-baseline``: ``backbone="resnet50"`` or any searched backbone, ``channels``, ...).
    Returns an :class:`SCRFD` or, for an ASFD config, an :class:`~pyddsar.asfd.ASFDDetector`."""
    cfg = config_for(name_or_config, **overrides)
    if isinstance(cfg, ASFDConfig):
        from ..asfd.build import build_asfd

        return build_asfd(cfg)
    return SCRFD(cfg)
