"""Evolutionary backbone search under a FLOPs budget (DamoFD Algorithm 1, SPEC section 3).

The loop runs in C++ (`_core.Evolution`): mutation, budget check, scoring with the native DDSAR
scorer and the population update. This module names the search spaces and budgets, validates
arguments, drives the native loop in chunks (progress, checkpoints, Ctrl-C) and packs the result.

>>> result = search("0.5g", iterations=2000, population=64, seed=0)   # doctest: +SKIP
>>> result.best.flops() <= result.budget_flops                         # doctest: +SKIP
True
"""

from __future__ import annotations

import json
import math
import numbers
import time
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping, Optional, Tuple, Union

from . import _core
from ._atomic import write_text
from .arch import BLOCK_TYPES, Arch, Block
from .score import ScoreReport, _scorer, score_report

CHECKPOINT_FORMAT = "pyddsar-search-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class SearchSpace:
    """What a mutation may produce. Stage blocks (C2..C5) draw their type, kernel and expansion from
    the lists; out channels and bottlenecks are scaled by one of `channel_factors`, rounded to a
    multiple of 8 and clamped to their ranges; layers move by at most `max_layer_step`. The stem
    stays a stride-2 3x3 Conv; with `mutate_stem` its channels and layers change too. Every block
    but the stem has stride 2 (stem + 4 stages, strides 4..32)."""

    name: str
    types: Tuple[str, ...]
    kernels: Tuple[int, ...] = (3, 5, 7)
    expansions: Tuple[int, ...] = (1,)
    min_channels: int = 8
    max_channels: int = 256
    min_bottleneck: int = 8
    max_bottleneck: int = 256
    max_block_layers: int = 5
    max_total_layers: int = 20
    mutate_stem: bool = True
    stem_min_channels: int = 8
    stem_max_channels: int = 64
    stem_max_layers: int = 2
    channel_factors: Tuple[float, ...] = (2.5, 2.0, 1.5, 1.25, 1.0, 0.8, 2.0 / 3.0, 0.5, 0.4)
    max_layer_step: int = 2
    seed: str = ""  # structure string the initial population is mutated from
    description: str = ""

    def native(self):
        s = _core.SearchSpace()
        for name in (
            "kernels", "expansions", "min_channels", "max_channels", "min_bottleneck", "max_bottleneck",
            "max_block_layers", "max_total_layers", "mutate_stem", "stem_min_channels", "stem_max_channels",
            "stem_max_layers", "max_layer_step",
        ):
            setattr(s, name, getattr(self, name))
        s.channel_factors = [float(f) for f in self.channel_factors]
        for t in self.types:
            if t not in BLOCK_TYPES[1:]:
                raise ValueError(f"search space {self.name!r}: stage type {t!r} is not one of Res, Btn, MB")
        s.types = [BLOCK_TYPES.index(t) for t in self.types]
        try:
            s.validate()
        except ValueError as e:
            raise ValueError(f"search space {self.name!r}: {e}") from None
        return s

    def smallest(self) -> Arch:
        """The cheapest network of the space (minimal channels, one layer each, kernel and expansion
        minimal): a budget below its FLOPs cannot be searched."""
        k, e, t = min(self.kernels), min(self.expansions) if "MB" in self.types else 1, self.types[0]
        cheapest = None
        for t in self.types:
            blocks = [Block("Conv", 3, 3, self.stem_min_channels, 2, 0, 1)]
            c = self.stem_min_channels
            for _ in range(4):
                blocks.append(Block(t, k, c, self.min_channels, 2, self.min_bottleneck, 1, e if t == "MB" else 1))
                c = self.min_channels
            arch = Arch(tuple(blocks))
            if cheapest is None or arch.flops() < cheapest.flops():
                cheapest = arch
        return cheapest

    def contains(self, arch: Arch) -> bool:
        return not self.native().why_outside(arch._native)


#: The search spaces of the paper's backbones. `mb` holds the 0.5G backbone (out channels up to 256,
#: the release's cap of 128 would exclude its 160-channel C5); `res-btn` the 2.5/10/34G ones.
SPACES: Mapping[str, SearchSpace] = MappingProxyType(
    {
        "mb": SearchSpace(
            name="mb",
            types=("MB",),
            kernels=(3, 5, 7),
            expansions=(1, 2, 4, 6),
            max_channels=256,
            max_bottleneck=256,
            max_block_layers=5,
            max_total_layers=14,
            stem_max_channels=64,
            stem_max_layers=2,
            seed="SuperConvK3BNRELU(3,32,2,1)SuperResIDWE1K3(32,32,2,8,1)SuperResIDWE4K3(32,48,2,32,1)"
            "SuperResIDWE1K3(48,96,2,48,1)SuperResIDWE1K3(96,128,2,96,1)",
            description="MB (inverted residual) stages, expansion {1,2,4,6}, kernels {3,5,7}, out channels "
            "8..256, bottleneck 8..256, 1..5 layers per stage, at most 14 layers in all (the 0.5G space)",
        ),
        "res-btn": SearchSpace(
            name="res-btn",
            types=("Res", "Btn"),
            kernels=(3, 5, 7),
            max_channels=1024,
            max_bottleneck=256,
            max_block_layers=6,
            max_total_layers=20,
            stem_max_channels=64,
            stem_max_layers=2,
            seed="SuperConvK3BNRELU(3,24,2,2)SuperResK3K3(24,32,2,32,3)SuperResK3K3(32,48,2,64,2)"
            "SuperResK3K3(48,64,2,128,2)SuperResK3K3(64,128,2,16,3)",
            description="Res (basic) and Btn (bottleneck) stages, kernels {3,5,7}, out channels 8..1024, "
            "bottleneck 8..256, 1..6 layers per stage, at most 20 layers in all (the 2.5/10/34G space)",
        ),
    }
)

#: Backbone budgets at 640x480 (MACs) and the space each was searched in.
BUDGETS: Mapping[str, Tuple[int, str]] = MappingProxyType(
    {"0.5g": (403_000_000, "mb"), "2.5g": (2_118_000_000, "res-btn"), "10g": (8_659_000_000, "res-btn"),
     "34g": (26_787_000_000, "res-btn")}
)

#: The published backbone of each budget (what a search should at least match).
PUBLISHED = MappingProxyType({"0.5g": "ddsar-0.5g", "2.5g": "ddsar-2.5g", "10g": "ddsar-10g", "34g": "ddsar-34g"})


@dataclass(frozen=True)
class SearchResult:
    best: Arch
    score: float
    report: Optional[ScoreReport]  # None with a custom score_fn
    flops: int
    params: int
    history: Tuple[Tuple[int, float, float], ...]  # (iteration, best, mean) of the best run
    seed: int
    space: str
    budget_flops: int
    elapsed_s: float
    iterations: int  # iterations run (fewer than asked when interrupted)
    interrupted: bool = False
    runs: Tuple[Tuple[int, float], ...] = ()  # (seed, best score) of every independent run
    counters: Mapping[str, int] = field(default_factory=dict)  # accepted / over_budget / ... (best run)
    settings: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "structure": str(self.best),
            "arch": self.best.to_dict(),
            "score": self.score,
            "flops": self.flops,
            "params": self.params,
            "budget_flops": self.budget_flops,
            "space": self.space,
            "seed": self.seed,
            "iterations": self.iterations,
            "interrupted": self.interrupted,
            "elapsed_s": self.elapsed_s,
            "runs": [list(r) for r in self.runs],
            "counters": dict(self.counters),
            "settings": dict(self.settings),
            "report": self.report.to_dict() if self.report is not None else None,
            "history": [list(h) for h in self.history],
        }

    def to_json(self, indent=2) -> str:
        """The content of best.json."""
        return json.dumps(self.to_dict(), indent=indent)


# -- argument checks -----------------------------------------------------------------------------
def _int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return int(value)


def resolve_budget(budget, space=None) -> Tuple[int, SearchSpace]:
    """(FLOPs budget, space) from a preset name ('0.5g') or a number of MACs at 640x480."""
    if isinstance(budget, str):
        key = budget.lower()
        if key not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; use one of {', '.join(BUDGETS)} or a number of MACs at 640x480")
        flops, default_space = BUDGETS[key]
    elif isinstance(budget, numbers.Real) and not isinstance(budget, bool):
        if not math.isfinite(budget) or budget <= 0:
            raise ValueError(f"budget must be a positive number of MACs at 640x480, got {budget!r}")
        flops = int(budget)
        default_space = "mb" if flops <= 1_000_000_000 else "res-btn"
    else:
        raise ValueError(f"budget must be a preset name ({', '.join(BUDGETS)}) or a number, got {budget!r}")
    if space is None:
        space = default_space
    if isinstance(space, str):
        if space not in SPACES:
            raise ValueError(f"unknown search space {space!r}; use one of {', '.join(SPACES)} or a SearchSpace")
        space = SPACES[space]
    elif not isinstance(space, SearchSpace):
        raise ValueError(f"space must be a name ({', '.join(SPACES)}) or a SearchSpace, got {space!r}")
    space.native()  # validates the space before anything is built from it
    smallest = space.smallest()
    if smallest.flops() > flops:
        raise ValueError(
            f"budget {flops:,} MACs is below the smallest network of the {space.name!r} space "
            f"({smallest.flops():,} MACs at 640x480: {smallest})"
        )
    return flops, space


def _seed_arch(space: SearchSpace, seed_arch, budget_flops: int, params_budget: int) -> Arch:
    if seed_arch is not None:
        arch = Arch.parse(seed_arch) if not isinstance(seed_arch, Arch) else seed_arch
        why = space.native().why_outside(arch._native)
        if why:
            raise ValueError(f"seed_arch is outside the {space.name!r} space: {why}")
        return arch
    arch = Arch.parse(space.seed) if space.seed else space.smallest()
    if arch.flops() > budget_flops or (params_budget and arch.params() > params_budget):
        arch = space.smallest()  # the default seed does not fit a small budget: start from the bottom
    return arch


def _arch_from_tuples(blocks) -> Arch:
    return Arch(tuple(Block(BLOCK_TYPES[t], k, i, o, s, b, n, e) for t, k, i, o, s, b, n, e in blocks))


def _python_score(score_fn: Callable[[Arch], float]):
    def call(blocks):
        value = score_fn(_arch_from_tuples(blocks))
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"score_fn must return a finite float, got {value!r}")
        return float(value)

    return call


# -- checkpoints ---------------------------------------------------------------------------------
def _checkpoint_dict(settings: dict, runs, elapsed: float) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "settings": settings,
        "elapsed_s": elapsed,
        "runs": [
            {
                "seed": seed,
                "iteration": evo.iteration,
                "population": [[str(_arch_from_tuples(t)), s] for t, s in evo.population()],
                "history": [list(h) for h in evo.history()],
                "counters": evo.counters(),
                "rng_state": evo.rng_state(),
            }
            for seed, evo in runs
        ],
    }


def load_checkpoint(path: str) -> dict:
    """Read and check a checkpoint; ValueError says what is wrong (the file is never modified)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"no checkpoint at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"checkpoint {path} is corrupt ({e}); delete it or start without --resume") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a pyddsar search checkpoint")
    if data.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path} has version {data.get('version')!r}; this pyddsar reads {CHECKPOINT_VERSION}")
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs or not isinstance(data.get("settings"), dict):
        raise ValueError(f"checkpoint {path} is corrupt (no runs or settings)")
    return data


def _restore(evo, run: dict, path: str) -> None:
    try:
        population = [([b._native_tuple() for b in Arch.parse(text).blocks], float(score)) for text, score in run["population"]]
        evo.restore(
            population, int(run["iteration"]), [tuple(h) for h in run["history"]],
            {k: int(v) for k, v in run["counters"].items()}, str(run["rng_state"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path} is corrupt ({e}); delete it or start without --resume") from None


# -- the search ----------------------------------------------------------------------------------
def search(
    budget: Union[str, int, float] = "0.5g",
    space: Union[str, SearchSpace, None] = None,
    iterations: int = 96000,
    population: int = 256,
    seed: int = 0,
    variant: str = "paper",
    alpha=None,
    lambdas=None,
    score_fn: Optional[Callable[[Arch], float]] = None,
    *,
    resolution=(224, 224),
    fs_probe=None,
    params_budget: Optional[int] = None,
    max_layers: Optional[int] = None,
    seed_arch=None,
    restarts: int = 1,
    log_every: int = 1000,
    chunk: int = 4000,
    progress: Optional[Callable[[int, int, float, float], None]] = None,
    checkpoint: Optional[str] = None,
    checkpoint_every_s: float = 2.0,
    resume: bool = False,
) -> SearchResult:
    """Evolutionary search for the backbone with the highest DDSAR-Score under a FLOPs budget.

    budget: "0.5g" / "2.5g" / "10g" / "34g" (403 / 2118 / 8659 / 26787 M MACs at 640x480) or a number
    of MACs at 640x480. space: "mb", "res-btn" or a SearchSpace (default: the budget's). The score is
    :func:`pyddsar.score` with `variant`, `alpha`, `lambdas`, `resolution` and `fs_probe`, or
    `score_fn(arch) -> float` (a Python callable: slower, runs one search at a time).
    params_budget: optional parameter budget; max_layers: overrides the space's total-layer limit.
    restarts: independent searches with seeds seed, seed+1, ... run on separate threads; the best
    of all is returned. The same seed gives the same result, bit for bit, on the same build.
    progress(iteration, iterations, best, rate) is called after every chunk; checkpoint: a path the
    state is written to (atomically) after the first chunk, then at most every `checkpoint_every_s`
    seconds, at the end and on Ctrl-C; resume: continue from it.
    Ctrl-C (KeyboardInterrupt) stops after the current chunk and returns the best so far
    (`interrupted=True`).
    """
    budget_flops, space = resolve_budget(budget, space)
    iterations = _int(iterations, "iterations", 0)
    population = _int(population, "population", 1)
    seed = _int(seed, "seed", 0)
    restarts = _int(restarts, "restarts", 1)
    log_every = _int(log_every, "log_every", 1)
    chunk = _int(chunk, "chunk", 1)
    if isinstance(checkpoint_every_s, bool) or not isinstance(checkpoint_every_s, numbers.Real) or not checkpoint_every_s >= 0:
        raise ValueError(f"checkpoint_every_s must be a number of seconds >= 0, got {checkpoint_every_s!r}")
    params_budget = 0 if params_budget is None else _int(params_budget, "params_budget", 1)
    if max_layers is not None:
        space = SearchSpace(**{**asdict(space), "max_total_layers": _int(max_layers, "max_layers", 5)})
    native_space = space.native()
    if score_fn is None:
        scorer, (variant, alpha, lambdas, resolution, probe) = _scorer(variant, alpha, lambdas, resolution, fs_probe)
        score_desc = {"variant": variant, "alpha": alpha, "lambdas": list(lambdas), "resolution": list(resolution),
                      "fs_probe": probe if isinstance(probe, str) else asdict(probe)}
    else:
        if not callable(score_fn):
            raise ValueError("score_fn must be a callable taking an Arch and returning a float")
        if restarts > 1:
            raise ValueError("restarts > 1 needs the native scorer (score_fn=None)")
        scorer = _python_score(score_fn)
        score_desc = {"score_fn": getattr(score_fn, "__qualname__", repr(score_fn))}
    start_arch = _seed_arch(space, seed_arch, budget_flops, params_budget)

    settings = {
        "budget_flops": budget_flops, "params_budget": params_budget, "space": asdict(space),
        "iterations": iterations, "population": population, "seed": seed, "restarts": restarts,
        "log_every": log_every, "seed_arch": str(start_arch), **score_desc,
    }
    runs = []
    for r in range(restarts):
        evo = _core.Evolution(
            native_space, budget_flops, params_budget, 640, 480, population, iterations, seed + r, log_every,
            start_arch._native, scorer,
        )
        runs.append((seed + r, evo))
    elapsed_before = 0.0
    if resume:
        if not checkpoint:
            raise ValueError("resume=True needs the checkpoint path")
        data = load_checkpoint(checkpoint)
        if data["settings"] != json.loads(json.dumps(settings)):
            changed = sorted(k for k in set(settings) | set(data["settings"])
                             if json.dumps(settings.get(k)) != json.dumps(data["settings"].get(k)))
            raise ValueError(f"checkpoint {checkpoint} was written by a different search (differs in: {', '.join(changed)})")
        if len(data["runs"]) != len(runs):
            raise ValueError(f"checkpoint {checkpoint} is corrupt (run count)")
        for (_, evo), run in zip(runs, data["runs"]):
            _restore(evo, run, checkpoint)
        elapsed_before = float(data.get("elapsed_s", 0.0))

    start = time.perf_counter()
    last_saved = float("-inf")  # the first chunk is always saved
    interrupted = False
    parallel = score_fn is None and restarts > 1
    started = resume  # the populations exist (restored, or filled by the first chunk)
    try:
        while not started or not all(evo.done for _, evo in runs):
            if parallel:
                _core.run_parallel([evo for _, evo in runs], chunk)
            else:
                for _, evo in runs:
                    evo.run(chunk)
            started = True
            finished = all(evo.done for _, evo in runs)
            if checkpoint and (finished or time.perf_counter() - last_saved >= checkpoint_every_s):
                write_text(checkpoint, json.dumps(_checkpoint_dict(settings, runs, elapsed_before + time.perf_counter() - start)))
                last_saved = time.perf_counter()
            if progress is not None:
                done = min(evo.iteration for _, evo in runs)
                best = max(evo.best()[1] for _, evo in runs)
                rate = sum(evo.iteration for _, evo in runs) / max(time.perf_counter() - start, 1e-9)
                progress(done, iterations, best, rate)
    except KeyboardInterrupt:
        interrupted = True
        started = all(evo.population() for _, evo in runs)  # Ctrl-C may land just after the first chunk
        if checkpoint and started:
            write_text(checkpoint, json.dumps(_checkpoint_dict(settings, runs, elapsed_before + time.perf_counter() - start)))
    elapsed = elapsed_before + time.perf_counter() - start

    if not started:
        raise KeyboardInterrupt  # stopped before the first population existed: nothing to report
    best_seed, best_evo = max(runs, key=lambda r: (r[1].best()[1], -r[0]))
    best_tuples, best_score = best_evo.best()
    best = _arch_from_tuples(best_tuples)
    report = None
    if score_fn is None:
        report = score_report(best, variant=variant, alpha=alpha, lambdas=lambdas, resolution=resolution, fs_probe=fs_probe)
    return SearchResult(
        best=best,
        score=best_score,
        report=report,
        flops=best.flops(),
        params=best.params(),
        history=tuple(tuple(h) for h in best_evo.history()),
        seed=best_seed,
        space=space.name,
        budget_flops=budget_flops,
        elapsed_s=elapsed,
        iterations=best_evo.iteration,
        interrupted=interrupted,
        runs=tuple((s, evo.best()[1]) for s, evo in runs),
        counters=MappingProxyType(best_evo.counters()),
        settings=MappingProxyType(settings),
    )
