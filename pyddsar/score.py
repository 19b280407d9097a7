"""DDSAR-Score of a backbone (DamoFD, ICLR 2023, section 4; SPEC section 2), computed natively.

Two variants:

* ``"paper"``: Eq. 5-8. Each of the five stages (stem C1, C2..C5) is the plain chain of its
  convolutions (BN and residual links removed; MB blocks give their 1x1 and depthwise convs).
  ``SAE = ln(h_L w_L d0) + sum_n h_n w_n d0 ln floor(d_n / d0)`` with d0 = 3 and h_n, w_n, d_n the
  output of conv n at the scoring resolution; ``FS = sum_l FS_l`` where FS_l comes from the exact
  linear-region count of a small probe layer with conv l's kernel and stride (:class:`FsProbe`);
  ``SAR = SAE + alpha FS``; the score is ``sum_i lambda_i SAR_i``. alpha defaults to 0.25.
* ``"damofd-release"``: the released DamoFD code's ``forward_ddsar_score``, reproduced to the bit
  (its quirks are listed in docs/score.md). alpha defaults to 0.005.

Resolutions are (width, height). Lambdas default to (0.2, 0.27, 0.25, 0.18, 0.10); ``"widerface"``
selects :data:`pyddsar.stage_weights.WIDERFACE_LAMBDAS`.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Iterable, List, Union

from . import _core
from ._validate import integer, real
from .arch import MAX_RESOLUTION, Arch, _resolution
from .stage_weights import WIDERFACE_LAMBDAS

__all__ = [
    "score",
    "score_batch",
    "score_report",
    "ScoreReport",
    "StageReport",
    "FsProbe",
    "fs_layer",
    "VARIANTS",
    "DEFAULT_ALPHA",
    "DEFAULT_LAMBDAS",
]

VARIANTS = ("paper", "damofd-release")
DEFAULT_ALPHA = {"paper": 0.25, "damofd-release": 0.005}
DEFAULT_LAMBDAS = (0.2, 0.27, 0.25, 0.18, 0.10)
STAGE_NAMES = ("C1", "C2", "C3", "C4", "C5")
LAMBDA_SUM_TOLERANCE = _core.LAMBDA_SUM_TOLERANCE
# Limits of the default-style probe (csrc/score/fs_probe.h): the exact enumerator's cost grows fast with the grid.
MAX_PROBE_GRID, MAX_PROBE_DEPTH, MAX_PROBE_FILTERS = _core.MAX_PROBE_GRID, _core.MAX_PROBE_DEPTH, _core.MAX_PROBE_FILTERS
LITERAL_FILTERS = 7  # d' of the paper


@dataclass(frozen=True)
class FsProbe:
    """The one-layer network N'_l whose linear regions give FS_l (paper Eq. 6).

    Output grid ``grid x grid`` (input side ``k + (grid - 1) * s``), input depth ``depth``,
    ``filters`` filters, layer l's kernel k and stride s; FS_l = ln N (exact count, Theorem 1).
    The default (3, 1, 7) makes FS_l grow with the kernel 3 < 5 < 7 at stride 1 and differ between
    strides 1 and 2 for kernels 3 and 5 (kernel 7 and kernel 5 at stride 2 reach the ceiling
    2^63). Pass ``fs_probe="literal"`` for the paper's literal 1x1 input instead.
    """

    grid: int = 3
    depth: int = 1
    filters: int = 7

    def __post_init__(self):
        for name, hi in (("grid", MAX_PROBE_GRID), ("depth", MAX_PROBE_DEPTH), ("filters", MAX_PROBE_FILTERS)):
            integer(getattr(self, name), f"FsProbe.{name}", low=1, high=hi)

    def describe(self) -> str:
        return f"grid {self.grid}x{self.grid}, depth {self.depth}, {self.filters} filters, FS_l = ln N"


@dataclass(frozen=True)
class StageReport:
    """One stage of a :class:`ScoreReport`.

    ``layers``: paper variant: (h, w, d, kernel, stride) of each conv of the plain chain, h x w x d
    being its output at the scoring resolution. damofd-release variant: one entry per term of the
    release's walk, (h, w) its input size (the release halves with true division; shown truncated),
    d the input channels the release uses, then the conv's kernel and stride.
    """

    index: int
    name: str
    layers: list
    sae: float
    fs: float
    sar: float
    lambda_: float
    weighted: float

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "name": self.name,
            "layers": [list(layer) for layer in self.layers],
            "sae": self.sae,
            "fs": self.fs,
            "sar": self.sar,
            "lambda": self.lambda_,
            "weighted": self.weighted,
        }


@dataclass(frozen=True)
class ScoreReport:
    """Per-stage SAE, FS, SAR, lambda and weighted term, and the total DDSAR-Score."""

    arch: str
    variant: str
    alpha: float
    lambdas: tuple
    resolution: tuple
    fs_probe: str
    stages: list
    total: float

    def to_dict(self) -> dict:
        return {
            "arch": self.arch,
            "variant": self.variant,
            "alpha": self.alpha,
            "lambdas": list(self.lambdas),
            "resolution": list(self.resolution),
            "fs_probe": self.fs_probe,
            "stages": [s.to_dict() for s in self.stages],
            "total": self.total,
        }

    def to_json(self, indent=None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def figure(self):
        """Bar chart of each stage's weighted term (a matplotlib Figure; see :mod:`pyddsar.plots`)."""
        from .plots import bar_figure

        return bar_figure([s.name for s in self.stages], [s.weighted for s in self.stages],
                          title=f"DDSAR-Score ({self.variant}) per stage, total {self.total:.6g}",
                          ylabel="weighted term")

    def write_png(self, path: str) -> None:
        """Save :meth:`figure` as a PNG at `path`."""
        from .plots import save_png

        save_png(self.figure(), path)

    def __str__(self) -> str:
        w, h = self.resolution
        head = [
            f"DDSAR-Score ({self.variant}), alpha {self.alpha:g}, resolution {w}x{h}",
            f"FS probe: {self.fs_probe}",
            self.arch,
        ]
        cols = ("stage", "layers", "SAE", "FS", "SAR", "lambda", "weighted")
        rows = [cols]
        for s in self.stages:
            rows.append(
                (
                    s.name,
                    str(len(s.layers)),
                    f"{s.sae:.6f}",
                    f"{s.fs:.6f}",
                    f"{s.sar:.6f}",
                    f"{s.lambda_:.6f}",
                    f"{s.weighted:.6f}",
                )
            )
        rows.append(("total", "", "", "", "", "", f"{self.total:.10f}"))
        widths = [max(len(r[c]) for r in rows) for c in range(len(cols))]
        lines = ["  ".join(v.ljust(wd) if c == 0 else v.rjust(wd) for c, (v, wd) in enumerate(zip(r, widths))) for r in rows]
        return "\n".join(head + lines)


# -- argument checks -----------------------------------------------------------------------------


def _check_variant(variant) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown score variant {variant!r}; use one of {', '.join(VARIANTS)}")
    return variant


MAX_ALPHA = 1e6


def _check_alpha(alpha, variant: str) -> float:
    if alpha is None:
        return DEFAULT_ALPHA[variant]
    alpha = real(alpha, "alpha")
    if not 0 <= alpha <= MAX_ALPHA:
        raise ValueError(f"alpha must be non-negative and at most {MAX_ALPHA:g} (FS would swamp SAE beyond, and overflow), got {alpha}")
    return alpha


def _check_lambdas(lambdas) -> tuple:
    if lambdas is None:
        return DEFAULT_LAMBDAS
    if isinstance(lambdas, str):
        if lambdas.lower() == "widerface":
            return tuple(WIDERFACE_LAMBDAS)
        raise ValueError(f"lambdas must be None, 'widerface' or five numbers summing to 1, got {lambdas!r}")
    try:
        values = tuple(lambdas)
    except TypeError:
        raise ValueError(f"lambdas must be None, 'widerface' or five numbers summing to 1, got {lambdas!r}") from None
    if len(values) != 5:
        raise ValueError(f"lambdas must hold five values (lambda_1..lambda_5 for C1..C5), got {len(values)}")
    values = tuple(real(v, f"lambda_{i + 1}") for i, v in enumerate(values))
    for i, v in enumerate(values):
        if v < 0:
            raise ValueError(f"lambda_{i + 1} must be non-negative, got {v}")
    total = math.fsum(values)
    if abs(total - 1.0) > LAMBDA_SUM_TOLERANCE:
        raise ValueError(f"the five lambdas must sum to 1, they sum to {total!r}")
    return values


def _check_probe(fs_probe):
    """-> FsProbe or the string 'literal'."""
    if fs_probe is None or (isinstance(fs_probe, str) and fs_probe.lower() == "default"):
        return FsProbe()
    if isinstance(fs_probe, str) and fs_probe.lower() == "literal":
        return "literal"
    if isinstance(fs_probe, FsProbe):
        return fs_probe
    raise ValueError(f"fs_probe must be None, 'default', 'literal' or an FsProbe, got {fs_probe!r}")


def _check_resolution(resolution) -> tuple:
    w, h = _resolution(resolution)
    if w > MAX_RESOLUTION or h > MAX_RESOLUTION:
        raise ValueError(f"resolution must be at most {MAX_RESOLUTION} on each side, got {w}x{h}")
    return w, h


def _check_arch(arch) -> Arch:
    return Arch.load(arch)


def _probe_text(probe) -> str:
    if probe == "literal":
        return f"literal: 1x1 input of depth d_(l-1), {LITERAL_FILTERS} filters, FS_l = raw count"
    return probe.describe()


@functools.lru_cache(maxsize=64)
def _native_scorer(variant: str, alpha: float, lambdas: tuple, width: int, height: int, probe):
    # One native scorer per configuration: preparing the probe's FS table costs milliseconds.
    if probe == "literal":
        probe_args = dict(literal=True, filters=LITERAL_FILTERS)
    else:
        probe_args = dict(literal=False, grid=probe.grid, depth=probe.depth, filters=probe.filters)
    return _core.Scorer(VARIANTS.index(variant), alpha, list(lambdas), width, height, **probe_args)


def _scorer(variant, alpha, lambdas, resolution, fs_probe):
    variant = _check_variant(variant)
    alpha = _check_alpha(alpha, variant)
    lambdas = _check_lambdas(lambdas)
    width, height = _check_resolution(resolution)
    probe = _check_probe(fs_probe)
    return _native_scorer(variant, alpha, lambdas, width, height, probe), (variant, alpha, lambdas, (width, height), probe)


# -- public functions ----------------------------------------------------------------------------


def score(
    arch_or_string: Union[Arch, str],
    variant: str = "paper",
    alpha=None,
    lambdas=None,
    resolution=(224, 224),
    fs_probe=None,
) -> float:
    """DDSAR-Score (Eq. 8) of an Arch or a structure string.

    variant: "paper" or "damofd-release"; alpha: None = the variant's own (0.25 / 0.005);
    lambdas: None = (0.2, 0.27, 0.25, 0.18, 0.10), "widerface", or five non-negative numbers summing
    to 1; resolution: (width, height); fs_probe: None / "default" = FsProbe(), an FsProbe, or
    "literal" (paper variant only; the release's FS is the sum of kernel sizes).

    >>> from pyddsar import presets
    >>> round(score(presets["ddsar-0.5g"], variant="damofd-release"), 10)
    9.3357591077
    """
    scorer, _ = _scorer(variant, alpha, lambdas, resolution, fs_probe)
    return scorer(_check_arch(arch_or_string)._native)


def score_batch(archs: Iterable[Union[Arch, str]], variant="paper", alpha=None, lambdas=None, resolution=(224, 224),
                fs_probe=None) -> List[float]:
    """Scores of many architectures in one native call (without the GIL); same options as :func:`score`."""
    scorer, _ = _scorer(variant, alpha, lambdas, resolution, fs_probe)
    if isinstance(archs, (str, Arch)):
        raise ValueError("score_batch expects a sequence of architectures; use score() for one")
    natives = []
    for i, a in enumerate(archs):
        try:
            natives.append(_check_arch(a)._native)
        except ValueError as e:
            raise ValueError(f"archs[{i}]: {e}") from None
    return scorer.batch(natives)


def fs_layer(kernel: int, stride: int, fs_probe=None, input_depth: int = 16) -> float:
    """FS_l that the paper variant adds for one conv with this kernel (1, 3, 5, 7), stride (1, 2) and
    input depth d_(l-1) (only the literal probe reads the depth)."""
    if kernel not in (1, 3, 5, 7) or isinstance(kernel, bool):
        raise ValueError(f"kernel must be 1, 3, 5 or 7, got {kernel!r}")
    if stride not in (1, 2) or isinstance(stride, bool):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")
    input_depth = integer(input_depth, "input_depth", low=1)
    scorer, _ = _scorer("paper", None, None, (224, 224), fs_probe)
    return scorer.fs_layer(int(kernel), int(stride), int(input_depth))


def score_report(arch_or_string: Union[Arch, str], variant: str = "paper", alpha=None, lambdas=None,
                 resolution=(224, 224), fs_probe=None) -> ScoreReport:
    """Per stage: the layers walked, SAE, FS, SAR, lambda and the weighted term; and the total."""
    scorer, (variant, alpha, lambdas, resolution, probe) = _scorer(variant, alpha, lambdas, resolution, fs_probe)
    arch = _check_arch(arch_or_string)
    raw = scorer.report(arch._native)
    stages = [
        StageReport(
            index=i,
            name=STAGE_NAMES[i],
            layers=[tuple(layer) for layer in s["layers"]],
            sae=s["sae"],
            fs=s["fs"],
            sar=s["sar"],
            lambda_=s["lambda"],
            weighted=s["weighted"],
        )
        for i, s in enumerate(raw)
    ]
    total = scorer(arch._native)
    probe_text = "release: sum of kernel sizes" if variant == "damofd-release" else _probe_text(probe)
    return ScoreReport(
        arch=str(arch),
        variant=variant,
        alpha=alpha,
        lambdas=lambdas,
        resolution=resolution,
        fs_probe=probe_text,
        stages=stages,
        total=total,
    )

