"""The config of an ASFD detector (SPEC section 6); :func:`pyddsar.asfd.build.build_asfd` builds one.

An :class:`ASFDConfig` names everything that defines an :class:`~pyddsar.asfd.retinanet.ASFDDetector`
built from parts pyddsar knows, so a trained one can be saved as a pyddsar model file and loaded by
``pyddsar detect`` / ``pyddsar eval`` like the SCRFD-framework detectors. The preset
``asfd-baseline`` (``pyddsar.models.presets``) is ``ASFDConfig()``: ResNet-18, FPN, 256 channels,
4 head convs. Backbones: ``resnet18`` / ``resnet34`` / ``resnet50`` or ``ddsar`` (any searched
:class:`~pyddsar.Arch` with C2..C5 at strides 4..32, ``arch`` its structure string). Necks: ``fpn``,
or ``autofae``: ``num_modules`` stacked derived AutoFAE modules of the spec ``autofae``
(:meth:`AutoFAESpec.to_dict`), module i bypassing its AutoFE when ``skip_fe[i]``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import ClassVar, Optional, Tuple

from .._validate import int_at_least

RESNETS = ("resnet18", "resnet34", "resnet50")
BACKBONES = RESNETS + ("ddsar",)
NECKS = ("fpn", "autofae")


def backbone_fields(text) -> dict:
    """``{"backbone", "arch"}`` for a backbone given as text: a ResNet name, a pyddsar preset
    (``ddsar-2.5g``), a structure string, an :class:`~pyddsar.Arch` or a search's ``best.json``."""
    from ..arch import Arch, presets

    if isinstance(text, Arch):
        return {"backbone": "ddsar", "arch": str(text)}
    if not isinstance(text, (str, os.PathLike)):
        raise ValueError(f"a backbone must be a name, structure string, Arch or file, got {type(text).__name__}")
    s = os.fspath(text)
    if s in RESNETS:
        return {"backbone": s, "arch": ""}
    if s in presets:
        return {"backbone": "ddsar", "arch": str(presets[s])}
    if os.path.isfile(s):
        return {"backbone": "ddsar", "arch": str(Arch.load(s))}
    try:
        return {"backbone": "ddsar", "arch": str(Arch.load(s))}
    except ValueError:
        raise ValueError(f"unknown backbone {s!r}: not one of {', '.join(RESNETS)}, a pyddsar preset "
                         f"({', '.join(presets)}), a search's best.json or a structure string") from None


@dataclass(frozen=True)
class ASFDConfig:
    """Everything that defines an ASFD detector's modules (weights aside); see the module doc."""

    name: str = "asfd-baseline"
    backbone: str = "resnet18"
    arch: str = ""
    base_width: int = 64
    channels: int = 256
    head_convs: int = 4
    neck: str = "fpn"
    autofae: Optional[dict] = None
    num_modules: int = 1
    skip_fe: Tuple[bool, ...] = ()

    family: ClassVar[str] = "asfd"  # written by to_dict, how a saved config says which detector it is

    def __post_init__(self):
        from ..arch import Arch
        from .autofa import AutoFAESpec

        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown ASFD backbone {self.backbone!r}; use one of {', '.join(BACKBONES)}")
        if self.backbone == "ddsar":
            if not self.arch:
                raise ValueError("a 'ddsar' backbone needs arch (a structure string)")
            object.__setattr__(self, "arch", str(Arch.parse(self.arch)))
        elif self.arch:
            raise ValueError(f"arch is only used with the 'ddsar' backbone, not {self.backbone!r}")
        for f in ("base_width", "channels"):
            int_at_least(getattr(self, f), f)
        int_at_least(self.head_convs, "head_convs", 0)
        if self.neck not in NECKS:
            raise ValueError(f"unknown ASFD neck {self.neck!r}; use one of {', '.join(NECKS)}")
        if self.neck == "fpn":
            if self.autofae is not None or self.num_modules != 1 or self.skip_fe:
                raise ValueError("autofae, num_modules and skip_fe only apply to the 'autofae' neck")
        else:
            if self.autofae is None:
                raise ValueError("the 'autofae' neck needs autofae (a derived AutoFAE spec dict)")
            spec = self.autofae if isinstance(self.autofae, AutoFAESpec) else AutoFAESpec.from_dict(self.autofae)
            if spec.num_levels != 6:
                raise ValueError(f"an ASFD neck has 6 levels (P2..P7), the AutoFAE spec has {spec.num_levels}")
            object.__setattr__(self, "autofae", spec.to_dict())
            int_at_least(self.num_modules, "num_modules")
            skips = tuple(self.skip_fe) or (False,) * self.num_modules
            if len(skips) != self.num_modules or any(not isinstance(s, bool) for s in skips):
                raise ValueError(f"skip_fe needs {self.num_modules} bools (one per module), got {self.skip_fe!r}")
            object.__setattr__(self, "skip_fe", skips)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["skip_fe"] = list(self.skip_fe)
        d["family"] = self.family
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ASFDConfig":
        if not isinstance(d, dict):
            raise ValueError(f"an ASFD config must be a dict, got {type(d).__name__}")
        d = dict(d)
        if d.pop("family", cls.family) != cls.family:
            raise ValueError("not an ASFD detector config")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown ASFD config keys: {', '.join(unknown)}")
        if "skip_fe" in d:
            d["skip_fe"] = tuple(d["skip_fe"])
        return cls(**d)

    def replace(self, **changes) -> "ASFDConfig":
        """A copy with ``changes``; ``backbone`` may be any text :func:`backbone_fields` reads."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown ASFD config keys: {', '.join(unknown)}")
        if "backbone" in changes and changes["backbone"] != "ddsar":
            fields = backbone_fields(changes.pop("backbone"))
            if "arch" in changes and changes["arch"] != fields["arch"]:
                raise ValueError("give the backbone either as backbone= text or as backbone='ddsar', arch=...")
            changes.update(fields)
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        bb = self.backbone if self.backbone != "ddsar" else f"ddsar backbone {self.arch}"
        neck = "FPN" if self.neck == "fpn" else (
            f"{self.num_modules} AutoFAE [{''.join('s' if s else 'e' for s in self.skip_fe)}]")
        return f"{self.name}: {bb}, {neck}, head {self.head_convs} convs, {self.channels} channels"
