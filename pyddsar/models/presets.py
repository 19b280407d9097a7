"""Detector presets and :func:`build_detector`."""

from __future__ import annotations

import json
import os
from types import MappingProxyType
from typing import Mapping

from ..arch import Arch, presets as arch_presets
from .detector import SCRFD, DetectorConfig

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

# SCRFD's own models (insightface configs scrfd_500m / 2.5g / 10g / 34g / 2.5g_bnkps)
_CONFIGS["scrfd-0.5g"] = DetectorConfig(
    name="scrfd-0.5g", backbone="mobilenetv1", stage_planes=(16, 16, 40, 72, 152, 288), stage_blocks=(2, 3, 2, 6),
    **_DDSAR_HEADS["0.5g"])
_CONFIGS["scrfd-2.5g"] = DetectorConfig(
    name="scrfd-2.5g", backbone="resnetv1e", block="basic", stage_planes=(24, 48, 48, 80), stage_blocks=(3, 5, 3, 2),
    stem_channels=24, **_DDSAR_HEADS["2.5g"])
_CONFIGS["scrfd-10g"] = DetectorConfig(
    name="scrfd-10g", backbone="resnetv1e", block="basic", stage_planes=(56, 88, 88, 224), stage_blocks=(3, 4, 2, 3),
    stem_channels=56, **_DDSAR_HEADS["10g"])
_CONFIGS["scrfd-34g"] = DetectorConfig(
    name="scrfd-34g", backbone="resnetv1e", block="bottleneck", stage_planes=(56, 56, 144, 184),
    stage_blocks=(17, 16, 2, 8), stem_channels=56, **_DDSAR_HEADS["34g"])
_CONFIGS["scrfd-2.5g-kps"] = _CONFIGS["scrfd-2.5g"].replace(name="scrfd-2.5g-kps", norm="bn", shared_head=False, use_kps=True)

#: Read-only mapping preset name -> DetectorConfig.
presets: Mapping[str, DetectorConfig] = MappingProxyType(_CONFIGS)


def _arch_from_file(path: str) -> Arch:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return Arch.parse(text)
    if isinstance(data, dict) and "structure" in data:  # a search's best.json
        return Arch.parse(data["structure"])
    return Arch.parse(text)


def config_for(name_or_config, **overrides) -> DetectorConfig:
    """The :class:`DetectorConfig` for a preset name, a config, a config dict, an :class:`Arch`, a
    structure string or a path to a search's ``best.json``; ``overrides`` replace config fields."""
    x = name_or_config
    if isinstance(x, DetectorConfig):
        cfg = x
    elif isinstance(x, dict):
        cfg = DetectorConfig.from_dict(x)
    elif isinstance(x, Arch):
        cfg = DetectorConfig(name="custom", backbone="ddsar", arch=str(x))
    elif isinstance(x, (str, os.PathLike)):
        s = os.fspath(x)
        if s in presets:
            cfg = presets[s]
        elif os.path.isfile(s):
            cfg = DetectorConfig(name=os.path.basename(s), backbone="ddsar", arch=str(_arch_from_file(s)))
        else:
            try:
                arch = Arch.parse(s)
            except ValueError:
                raise ValueError(
                    f"unknown detector {s!r}: not a preset ({', '.join(presets)}), a file or an architecture"
                ) from None
            cfg = DetectorConfig(name="custom", backbone="ddsar", arch=str(arch))
    else:
        raise ValueError(f"build_detector takes a preset name, DetectorConfig, dict, Arch or path; got {type(x).__name__}")
    return cfg.replace(**overrides) if overrides else cfg


def build_detector(name_or_config, **overrides) -> SCRFD:
    """Build a detector (random weights) from a preset name, :class:`DetectorConfig` (or its dict), an
    :class:`Arch`, a structure string or a search's ``best.json``; keyword overrides change config
    fields (``neck_channels=24, stacked_convs=2, feat_channels=64, use_kps=True``...)."""
    return SCRFD(config_for(name_or_config, **overrides))
