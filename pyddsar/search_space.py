"""Search spaces and budgets of the evolutionary backbone search (SPEC section 3).

Two of the spaces are the DamoFD release's (ly19965/DamoFD, folder DDSAR/), rule for rule:
``damofd-mb`` (its 0.5G search, SearchSpace/search_space_IDW_fixfc.py) and ``damofd-res`` (its
2.5G/10G/34G searches, SearchSpace/search_space_XXBL.py), with the budgets, layer limits, seeds
and the 224x224 budget check of scripts/DamoFd_*.sh. docs/search.md cites the file and line of
each rule. ``mb`` and ``res-btn`` are wider spaces of the same blocks (widths may shrink to 8 and
the stem mutates) for exploring beyond the release.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Optional, Tuple

from . import _core
from ._validate import integer
from .arch import BLOCK_TYPES, Arch, Block

#: The main job's limit on the width growth from one stage to the next (docs/search.md, "The default").
DEFAULT_MAX_WIDTH_RATIO = 2.5

#: The release's nine factors (get_select_student_bottleneck_channels_list: x2.5 ... /2.5).
BOTH_WAYS = (2.5, 2.0, 1.5, 1.25, 1.0, 1 / 1.25, 1 / 1.5, 1 / 2, 1 / 2.5)


@dataclass(frozen=True)
class SearchSpace:
    """What a mutation may produce and how it draws it (the release's rules, as data).

    Stage blocks (C2..C5) take one of the forms ``itertools.product(types, kernels, expansions)``
    (expansions for MB only), drawn with ``choice_weights`` (None: equally likely). A redrawn block's
    out channels are drawn uniformly among the distinct values round8(clamp(c * f)) over
    ``channel_factors`` (clamped to min/max_channels; only factors >= 1 = widths that only grow),
    its bottleneck likewise with ``bottleneck_factors``, its layers uniformly among L-2..L+2 (>= 1);
    a child with a stage block over ``max_block_layers`` or more than ``max_total_layers`` layers
    in all (stem included) is dropped. The stem stays a stride-2 3x3 Conv; with ``mutate_stem`` its
    channels and layers change too. Children come from the seed while the population has at most
    ``seed_children`` members, afterwards from a random member with ``mutations`` block draws."""

    name: str
    types: Tuple[str, ...]
    kernels: Tuple[int, ...] = (3, 5, 7)
    expansions: Tuple[int, ...] = (1,)
    choice_weights: Optional[Tuple[int, ...]] = None
    channel_factors: Tuple[float, ...] = BOTH_WAYS
    bottleneck_factors: Tuple[float, ...] = BOTH_WAYS
    min_channels: int = 8
    max_channels: int = 256
    min_bottleneck: int = 8
    max_bottleneck: int = 256
    max_layer_step: int = 2
    max_block_layers: int = 5
    max_total_layers: int = 20
    mutate_stem: bool = False
    stem_min_channels: int = 8
    stem_max_channels: int = 64
    stem_max_layers: int = 2
    seed_children: int = 10
    mutations: int = 2
    seed: str = ""  # structure string children are made from (a budget preset may name its own)
    description: str = ""

    def forms(self) -> list:
        """The stage block forms (type, kernel, expansion), in the order `choice_weights` follows."""
        return [(t, k, e) for t in self.types for k in self.kernels for e in (self.expansions if t == "MB" else (1,))]

    def native(self):
        """The native space (validated; ValueError names the field)."""
        for t in self.types:
            if t not in BLOCK_TYPES[1:]:
                raise ValueError(f"search space {self.name!r}: stage type {t!r} is not one of Res, Btn, MB")
        forms = self.forms()
        weights = self.choice_weights if self.choice_weights is not None else (1,) * len(forms)
        if len(weights) != len(forms):
            raise ValueError(f"search space {self.name!r}: choice_weights has {len(weights)} values for {len(forms)} forms")
        weights = [integer(w, f"search space {self.name!r}: choice_weights") for w in weights]
        s = _core.SearchSpace()
        s.choices = [(BLOCK_TYPES.index(t), k, e, w) for (t, k, e), w in zip(forms, weights)]
        for name in (
            "min_channels", "max_channels", "min_bottleneck", "max_bottleneck", "max_layer_step", "max_block_layers",
            "max_total_layers", "mutate_stem", "stem_min_channels", "stem_max_channels", "stem_max_layers",
            "seed_children", "mutations",
        ):
            setattr(s, name, getattr(self, name))
        s.channel_factors = [float(f) for f in self.channel_factors]
        s.bottleneck_factors = [float(f) for f in self.bottleneck_factors]
        try:
            s.validate()
        except (ValueError, TypeError) as e:
            raise ValueError(f"search space {self.name!r}: {e}") from None
        return s

    def smallest(self, check: str = "pyddsar") -> Arch:
        """The cheapest network of the space (minimal channels, one layer each, the cheapest form; the
        seed's stem when the stem does not mutate)."""
        cheapest = None
        # a space whose stem never mutates keeps its seed's stem (a search could not leave it)
        stem = Arch.parse(self.seed).blocks[0] if self.seed and not self.mutate_stem else \
            Block("Conv", 3, 3, self.stem_min_channels, 2, 0, 1)
        for t, k, e in self.forms():
            blocks = [stem]
            c = stem.out_channels
            for _ in range(4):
                blocks.append(Block(t, k, c, self.min_channels, 2, self.min_bottleneck, 1, e))
                c = self.min_channels
            arch = Arch(tuple(blocks))
            if cheapest is None or budget_flops_of(arch, check) < budget_flops_of(cheapest, check):
                cheapest = arch
        return cheapest

    def why_outside(self, arch: Arch) -> str:
        """'' when `arch` lies inside the space, else the first reason it does not."""
        return self.native().why_outside(arch._native)

    def contains(self, arch: Arch) -> bool:
        return not self.why_outside(arch)


def _release_weights(family_sizes) -> Tuple[int, ...]:
    """How often gen_search_space lists each block type of a family (docs/search.md). The list is
    appended inside the type loop and then rebound to a de-duplicated copy, so the list object just
    appended still receives the next type's candidates: list k holds types 1..k+1 (the last one
    types 1..n), and type j (1-based) appears in n - max(j - 1, 1) + 1 lists, e.g. 3, 3, 2 for n = 3."""
    return tuple(n - max(j - 1, 1) + 1 for n in family_sizes for j in range(1, n + 1))


SPACES: Mapping[str, SearchSpace] = MappingProxyType(
    {
        "damofd-mb": SearchSpace(
            name="damofd-mb",
            types=("MB",),
            kernels=(3, 5, 7),
            expansions=(1, 2, 4, 6),
            choice_weights=_release_weights([12]),
            channel_factors=(2.5, 2.0, 1.5, 1.25, 1.0),
            bottleneck_factors=BOTH_WAYS,
            max_channels=128,
            max_bottleneck=8192,  # the release has no cap (max(8, x) only); 8192 is pyddsar's limit
            max_total_layers=14,
            seed="SuperConvK3BNRELU(3,32,2,1)SuperResIDWE1K3(32,32,2,8,1)SuperResIDWE4K3(32,48,2,32,1)"
            "SuperResIDWE1K3(48,96,2,48,1)SuperResIDWE1K3(96,128,2,96,1)",
            description="the release's 0.5G space: MB stages E{1,2,4,6} x K{3,5,7}, out channels that only "
            "grow (x1..x2.5, at most 128), bottleneck x2.5../2.5, 1..5 layers per stage, 14 in all, fixed stem",
        ),
        "damofd-res": SearchSpace(
            name="damofd-res",
            types=("Btn", "Res"),
            kernels=(3, 5, 7),
            choice_weights=_release_weights([3, 3]),
            channel_factors=(2.0, 1.75, 1.5, 1.25, 1.0, 1 / 1.25, 1 / 1.5, 1 / 2, 1 / 2.5),
            bottleneck_factors=BOTH_WAYS,
            max_channels=1024,
            max_bottleneck=256,
            max_total_layers=20,
            seed="SuperConvK3BNRELU(3,24,2,2)SuperResK3K3(24,32,2,32,3)SuperResK3K3(32,48,2,64,2)"
            "SuperResK3K3(48,64,2,128,2)SuperResK3K3(64,128,2,16,3)",
            description="the release's 2.5G/10G/34G space: Btn (K1KXK1) and Res (KXKX) stages, K{3,5,7}, "
            "out channels x2../2.5 (8..1024), bottleneck x2.5../2.5 (8..256), 1..5 layers per stage, 20 in all, "
            "fixed stem",
        ),
        "mb": SearchSpace(
            name="mb",
            types=("MB",),
            kernels=(3, 5, 7),
            expansions=(1, 2, 4, 6),
            max_channels=256,
            max_bottleneck=256,
            max_total_layers=14,
            mutate_stem=True,
            seed="SuperConvK3BNRELU(3,32,2,1)SuperResIDWE1K3(32,32,2,8,1)SuperResIDWE4K3(32,48,2,32,1)"
            "SuperResIDWE1K3(48,96,2,48,1)SuperResIDWE1K3(96,128,2,96,1)",
            description="wide MB space: every form equally likely, out channels and bottleneck x2.5../2.5 "
            "(8..256), 1..5 layers per stage, 14 in all, the stem mutates (8..64 channels, 1..2 layers)",
        ),
        "res-btn": SearchSpace(
            name="res-btn",
            types=("Res", "Btn"),
            kernels=(3, 5, 7),
            max_channels=1024,
            max_bottleneck=256,
            max_block_layers=6,
            max_total_layers=20,
            mutate_stem=True,
            seed="SuperConvK3BNRELU(3,24,2,2)SuperResK3K3(24,32,2,32,3)SuperResK3K3(32,48,2,64,2)"
            "SuperResK3K3(48,64,2,128,2)SuperResK3K3(64,128,2,16,3)",
            description="wide Res/Btn space: every form equally likely, out channels x2.5../2.5 (8..1024), "
            "bottleneck (8..256), 1..6 layers per stage, 20 in all, the stem mutates",
        ),
    }
)


@dataclass(frozen=True)
class BudgetPreset:
    """A named budget: MACs at 640x480 (pyddsar's counting), the space it is searched in, the
    release's number for its own 224x224 check (scripts/DamoFd_*.sh budget_flops) and its seed."""

    name: str
    flops: int
    space: str
    release_flops_224: int
    seed: str
    published: str  # the preset of the published backbone


BUDGET_PRESETS: Mapping[str, BudgetPreset] = MappingProxyType(
    {
        "0.5g": BudgetPreset("0.5g", 403_000_000, "damofd-mb", 65_000_000, SPACES["damofd-mb"].seed, "ddsar-0.5g"),
        "2.5g": BudgetPreset("2.5g", 2_118_000_000, "damofd-res", 345_000_000, SPACES["damofd-res"].seed, "ddsar-2.5g"),
        "10g": BudgetPreset(
            "10g", 8_659_000_000, "damofd-res", 1_414_000_000,
            "SuperConvK3BNRELU(3,24,2,1)SuperResK3K3(24,48,2,64,5)SuperResK3K3(48,64,2,64,5)"
            "SuperResK3K3(64,96,2,128,3)SuperResK3K3(96,128,2,16,1)", "ddsar-10g",
        ),
        "34g": BudgetPreset(
            "34g", 26_787_000_000, "damofd-res", 4_375_000_000,
            "SuperConvK3BNRELU(3,56,2,2)SuperResK3K3(56,112,2,96,5)SuperResK3K3(112,224,2,96,5)"
            "SuperResK3K3(224,448,2,128,3)SuperResK3K3(448,1024,2,16,1)", "ddsar-34g",
        ),
    }
)

#: Budget name -> (MACs at 640x480, default space), kept for the API of earlier releases.
BUDGETS: Mapping[str, Tuple[int, str]] = MappingProxyType({k: (p.flops, p.space) for k, p in BUDGET_PRESETS.items()})

_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}
_NUMBER = re.compile(r"^\s*((?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*([kmg]?)\s*$", re.IGNORECASE)


def parse_budget(budget):
    """A preset name ('0.5g', '2.5g', '10g', '34g'), or MACs at 640x480 as a number or a string
    such as '403m', '1g', '2.1e9'. Returns the preset name or an int; ValueError otherwise."""
    if isinstance(budget, str):
        key = budget.strip().lower()
        if key in BUDGET_PRESETS:
            return key
        m = _NUMBER.match(key)
        if not m:
            raise ValueError(
                f"unknown budget {budget!r}; use a preset ({', '.join(BUDGET_PRESETS)}) or MACs at 640x480 "
                "such as 403m, 1g or 2.1e9"
            )
        budget = float(m.group(1)) * _SUFFIX[m.group(2).lower()]
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real):
        raise ValueError(f"budget must be a preset name ({', '.join(BUDGET_PRESETS)}) or a number, got {budget!r}")
    if not math.isfinite(budget) or budget < 1:
        raise ValueError(f"budget must be a positive number of MACs at 640x480, got {budget!r}")
    return int(budget)


def resolve_space(space) -> SearchSpace:
    if isinstance(space, str):
        if space not in SPACES:
            raise ValueError(f"unknown search space {space!r}; use one of {', '.join(SPACES)} or a SearchSpace")
        return SPACES[space]
    if not isinstance(space, SearchSpace):
        raise ValueError(f"space must be a name ({', '.join(SPACES)}) or a SearchSpace, got {space!r}")
    return space


#: How a budget is checked: "pyddsar" = MACs at 640x480 in pyddsar's counting (SPEC section 3);
#: "release" = the DamoFD release's check, FLOPs at 224x224 in its own counting (residual
#: projections at a quarter of their size, see _core.release_flops) against its scripts' numbers.
BUDGET_CHECKS = ("pyddsar", "release")


def check_budget_check(check) -> str:
    if check not in BUDGET_CHECKS:
        raise ValueError(f"budget_check must be one of {', '.join(BUDGET_CHECKS)}, got {check!r}")
    return check


def budget_flops_of(arch: Arch, check: str = "pyddsar") -> float:
    """FLOPs of `arch` as the budget check `check` counts them."""
    return _core.release_flops(arch._native, 224, 224) if check == "release" else arch.flops((640, 480))


def checked_budget(budget, check: str = "pyddsar") -> int:
    """The number the budget check compares with: MACs at 640x480, or for the release's check a
    preset's own number at 224x224 (a number asked is scaled by 224^2 / (640 x 480), as the
    release's scripts derive theirs)."""
    if check == "release":
        if isinstance(budget, str):
            return BUDGET_PRESETS[budget].release_flops_224
        return int(budget * (224 * 224) / (640 * 480))
    return BUDGET_PRESETS[budget].flops if isinstance(budget, str) else int(budget)


def default_space(budget) -> str:
    if isinstance(budget, str):
        return BUDGET_PRESETS[budget].space
    return "damofd-mb" if budget <= 1_000_000_000 else "damofd-res"


def default_variant(space: SearchSpace) -> str:
    """The score the main job maximises in a space (docs/search.md, "The default"): the release's
    own score in its 0.5G space, the paper's elsewhere (the release's score widens the late stages
    of Res/Btn backbones to 2-7x the published parameters)."""
    return "damofd-release" if space.name == "damofd-mb" else "paper"


def default_seed(budget, space: SearchSpace) -> str:
    if isinstance(budget, str) and BUDGET_PRESETS[budget].space == space.name:
        return BUDGET_PRESETS[budget].seed
    return space.seed
