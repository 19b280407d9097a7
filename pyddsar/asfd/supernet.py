"""The ASFD scaling supernet (SPEC section 6): genes, channel-sliced weight sharing, single-path
sampling, subnet extraction, a genetic search and a latency probe.

Genes: the backbone (one of a small list, each a separate full network), the number of stacked
derived AutoFAE modules, per module whether it skips its AutoFE cell, the head depth and the
neck/head width. The neck and head hold weights for the widest choice; a narrower path uses the
leading slice ``weight[:out, :in]`` of every conv (:mod:`pyddsar.asfd.slicing`).
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from .._validate import integer
from .autofa import AutoFAESpec, StackedAutoFAE
from .build import config_of, make_backbone
from .retinanet import ASFDDetector, PyramidInputs, RetinaHead
from .slicing import copy_sliced_weights, set_active_width


def _key(backbone: str) -> str:
    """A ModuleDict key for a backbone name (keys cannot hold dots: "ddsar-0.5g")."""
    return backbone.replace(".", "_")


@dataclass(frozen=True)
class Genes:
    """One single path. ``skip_fe[i]`` tells whether AutoFAE module i bypasses AutoFE."""

    backbone: str
    num_modules: int
    skip_fe: Tuple[bool, ...]
    head_convs: int
    channels: int

    def describe(self) -> str:
        skips = "".join("s" if s else "e" for s in self.skip_fe)
        return (f"{self.backbone}, {self.num_modules} AutoFAE [{skips}], head {self.head_convs} convs, "
                f"{self.channels} channels")


def _choices(values, name: str, kind=int) -> Tuple:
    values = tuple(values)
    if not values or len(set(values)) != len(values):
        raise ValueError(f"{name} must be a non-empty list of distinct values")
    if kind is int:
        values = tuple(integer(v, f"{name}[{i}]", low=1) for i, v in enumerate(values))
    return values


@dataclass(frozen=True)
class ScalingSpace:
    """The choices of each gene (``module_counts`` / ``head_convs`` / ``channels``: positive ints)."""

    backbones: Tuple[str, ...] = ("resnet18", "resnet34", "resnet50")
    module_counts: Tuple[int, ...] = (1, 2, 3)
    head_convs: Tuple[int, ...] = (1, 2, 3, 4)
    channels: Tuple[int, ...] = (64, 96, 128, 160, 192, 256)

    def __post_init__(self):
        from .config import backbone_fields

        for b in _choices(self.backbones, "backbones", str):
            backbone_fields(b)  # a ResNet name or a searched backbone, else ValueError
        _choices(self.module_counts, "module_counts")
        _choices(self.head_convs, "head_convs")
        _choices(self.channels, "channels")

    @property
    def max_modules(self) -> int:
        return max(self.module_counts)

    def validate(self, genes: Genes) -> Genes:
        """Return ``genes`` if it lies in the space, else raise ValueError."""
        if not isinstance(genes, Genes):
            raise ValueError(f"expected Genes, got {type(genes).__name__}")
        if genes.backbone not in self.backbones:
            raise ValueError(f"backbone {genes.backbone!r} not in {self.backbones}")
        if genes.num_modules not in self.module_counts:
            raise ValueError(f"num_modules {genes.num_modules!r} not in {self.module_counts}")
        if len(genes.skip_fe) != genes.num_modules or any(not isinstance(s, bool) for s in genes.skip_fe):
            raise ValueError("skip_fe must hold one bool per AutoFAE module")
        if genes.head_convs not in self.head_convs:
            raise ValueError(f"head_convs {genes.head_convs!r} not in {self.head_convs}")
        if genes.channels not in self.channels:
            raise ValueError(f"channels {genes.channels!r} not in {self.channels}")
        return genes

    def sample(self, rng: random.Random, max_channels: Optional[int] = None) -> Genes:
        """A uniform single path (each gene independently uniform); ``max_channels`` caps the width."""
        widths = [c for c in self.channels if max_channels is None or c <= max_channels]
        if not widths:
            raise ValueError(f"no channel choice <= {max_channels}")
        n = rng.choice(self.module_counts)
        return Genes(
            backbone=rng.choice(self.backbones),
            num_modules=n,
            skip_fe=tuple(rng.random() < 0.5 for _ in range(n)),
            head_convs=rng.choice(self.head_convs),
            channels=rng.choice(widths),
        )

    def largest(self, backbone: Optional[str] = None) -> Genes:
        n = self.max_modules
        return Genes(backbone or self.backbones[-1], n, (False,) * n, max(self.head_convs), max(self.channels))


def channel_cap(step: int, total_steps: int, space: ScalingSpace, warmup_fraction: float = 0.2) -> int:
    """Width cap for sampling at ``step``: the maximum during the warm-up, then the channel choices in
    descending order, each for an equal share of the remaining steps (the last share allows all)."""
    if total_steps < 1 or not 0 <= step:
        raise ValueError("need total_steps >= 1 and step >= 0")
    widths = sorted(space.channels, reverse=True)
    warm = int(total_steps * warmup_fraction)
    if step < warm or len(widths) == 1:
        return widths[0]
    share = max(1, (total_steps - warm) // len(widths))
    return widths[min(len(widths) - 1, (step - warm) // share)]


class ScalingSupernet(nn.Module):
    """Weight-sharing supernet over ``space`` with the searched AutoFAE ``fae_spec``.

    ``forward(images, genes)`` runs one single path (same output dict as :class:`ASFDDetector`);
    :meth:`subnet` extracts that path as a standalone :class:`ASFDDetector` with copied weights.
    ``base_width`` is the ResNet stem width (64 standard; small values for tests).
    """

    def __init__(self, space: ScalingSpace, fae_spec: AutoFAESpec, base_width: int = 64):
        super().__init__()
        if not isinstance(fae_spec, AutoFAESpec):
            raise ValueError("fae_spec must be an AutoFAESpec (e.g. AutoFAE.spec() after the neck search)")
        self.space = space
        self.fae_spec = fae_spec
        width = max(space.channels)

        built = {b: make_backbone(b, base_width) for b in space.backbones}
        self.backbones = nn.ModuleDict({_key(b): m for b, (m, _) in built.items()})
        self.inputs = nn.ModuleDict({_key(b): PyramidInputs(c, width) for b, (_, c) in built.items()})
        self.widths = {b: c for b, (_, c) in built.items()}
        self.neck = StackedAutoFAE(width, fae_spec, space.max_modules)
        self.head = RetinaHead(width, max(space.head_convs))

    def configure(self, genes: Genes) -> None:
        """Select the single path ``genes`` (widths, module count, skips, head depth)."""
        self.space.validate(genes)
        for part in (self.inputs[_key(genes.backbone)], self.neck, self.head):
            set_active_width(part, genes.channels)
        self.neck.active_modules = genes.num_modules
        self.neck.skip_fe = genes.skip_fe
        self.head.depth = genes.head_convs

    def forward(self, images: torch.Tensor, genes: Genes) -> Dict[str, object]:
        self.configure(genes)
        k = _key(genes.backbone)
        feats = self.neck(self.inputs[k](self.backbones[k](images)))
        logits, deltas = self.head(feats)
        return {"logits": logits, "deltas": deltas, "sizes": [tuple(f.shape[-2:]) for f in feats]}

    def subnet(self, genes: Genes) -> ASFDDetector:
        """A standalone detector of ``genes`` whose weights are the supernet's slices."""
        self.space.validate(genes)
        c = genes.channels
        backbone = copy.deepcopy(self.backbones[_key(genes.backbone)])
        neck = StackedAutoFAE(c, self.fae_spec, genes.num_modules, genes.skip_fe)
        det = ASFDDetector(backbone, self.widths[genes.backbone], neck, c, genes.head_convs)
        copy_sliced_weights(self.inputs[_key(genes.backbone)], det.inputs)
        for i in range(genes.num_modules):
            copy_sliced_weights(self.neck.modules_[i], neck.modules_[i])
        copy_sliced_weights(self.head, det.head)
        det.config = config_of(det).replace(name="asfd-scaled")  # saveable as a pyddsar model file
        # the memory format of a freshly built detector (the supernet may train channels-last): the
        # latency a search measures on the subnet is then the latency of the saved model
        return det.to(next(self.parameters()).device, memory_format=torch.contiguous_format)


# ----------------------------------------------------------------------------------------------
# genetic search


def mutate(genes: Genes, space: ScalingSpace, rng: random.Random, prob: float = 0.2) -> Genes:
    """Resample each gene with probability ``prob`` (each skip flag flips with ``prob``)."""
    g = genes
    if rng.random() < prob:
        g = replace(g, backbone=rng.choice(space.backbones))
    if rng.random() < prob:
        n = rng.choice(space.module_counts)
        skips = g.skip_fe[:n] + tuple(rng.random() < 0.5 for _ in range(n - len(g.skip_fe)))
        g = replace(g, num_modules=n, skip_fe=skips)
    g = replace(g, skip_fe=tuple((not s) if rng.random() < prob else s for s in g.skip_fe))
    if rng.random() < prob:
        g = replace(g, head_convs=rng.choice(space.head_convs))
    if rng.random() < prob:
        g = replace(g, channels=rng.choice(space.channels))
    return g


def crossover(a: Genes, b: Genes, rng: random.Random) -> Genes:
    """Uniform crossover: each gene from either parent; skip flags position-wise (padded from ``b``/``a``)."""
    pick = lambda x, y: x if rng.random() < 0.5 else y  # noqa: E731
    n = pick(a.num_modules, b.num_modules)
    skips = []
    for i in range(n):
        opts = [p.skip_fe[i] for p in (a, b) if i < len(p.skip_fe)]
        skips.append(rng.choice(opts))
    return Genes(pick(a.backbone, b.backbone), n, tuple(skips), pick(a.head_convs, b.head_convs),
                 pick(a.channels, b.channels))


@dataclass(frozen=True)
class GeneticResult:
    best: Genes
    fitness: float
    history: List[Tuple[int, float, float]] = field(default_factory=list)  # (iteration, best, mean)
    scored: Tuple[Genes, ...] = ()  # every path whose fitness was computed, in that order

    @property
    def evaluated(self) -> int:
        """How many distinct paths the search scored."""
        return len(self.scored)


def genetic_search(
    space: ScalingSpace,
    fitness: Callable[[Genes], float],
    population: int = 50,
    iterations: int = 50,
    top_k: int = 10,
    mutation_prob: float = 0.2,
    crossover_fraction: float = 0.5,
    seed: int = 0,
    progress: Optional[Callable] = None,
) -> GeneticResult:
    """Maximise ``fitness(genes)`` (e.g. AP minus a latency penalty; may return ``-inf`` to reject).

    Each iteration keeps the ``top_k`` best of the population and refills it with children of
    parents drawn from them: a ``crossover_fraction`` share by crossover (then mutation), the rest by
    mutation. Fitness values are cached per genes. Seeded by ``seed`` (``random.Random``).
    ``progress``, when given, is called after each ranking of the population as
    ``progress(done, iterations + 1, best=..., mean=...)`` (the history row's values).
    """
    population = integer(population, "population", low=2)
    iterations = integer(iterations, "iterations", low=0)
    top_k = integer(top_k, "top_k", low=1)
    if top_k > population:
        raise ValueError("top_k cannot exceed population")
    if not 0 <= mutation_prob <= 1 or not 0 <= crossover_fraction <= 1:
        raise ValueError("mutation_prob and crossover_fraction must be in [0, 1]")
    if not callable(fitness):
        raise ValueError("fitness must be callable")
    rng = random.Random(seed)
    cache: Dict[Genes, float] = {}

    def score(g: Genes) -> float:
        if g not in cache:
            cache[g] = float(fitness(g))
        return cache[g]

    pop = [space.sample(rng) for _ in range(population)]
    history = []
    for it in range(iterations + 1):
        ranked = sorted(pop, key=score, reverse=True)
        values = [score(g) for g in ranked]
        finite = [v for v in values if v != float("-inf")]
        history.append((it, values[0], statistics.fmean(finite) if finite else float("-inf")))
        if progress is not None:
            progress(it + 1, iterations + 1, best=history[-1][1], mean=history[-1][2])
        if it == iterations:
            break
        parents = ranked[:top_k]
        children = list(parents)
        while len(children) < population:
            if rng.random() < crossover_fraction and len(parents) > 1:
                a, b = rng.sample(parents, 2)
                child = mutate(crossover(a, b, rng), space, rng, mutation_prob)
            else:
                child = mutate(rng.choice(parents), space, rng, mutation_prob)
            children.append(child)
        pop = children
    best = max(cache, key=lambda g: cache[g])
    return GeneticResult(best, cache[best], history, tuple(cache))


def measure_latency_ms(
    model: Callable, inputs, warmup: int = 3, runs: int = 10
) -> float:
    """Median wall time (ms) of ``model(*inputs)`` over ``runs`` calls after ``warmup`` calls, under
    ``torch.no_grad`` on the inputs' device (CUDA is synchronised around each call)."""
    if not isinstance(runs, int) or runs < 1 or not isinstance(warmup, int) or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    args = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    cuda = any(isinstance(a, torch.Tensor) and a.is_cuda for a in args)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times = []
    with torch.no_grad():
        for i in range(warmup + runs):
            sync()
            t0 = time.perf_counter()
            model(*args)
            sync()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
