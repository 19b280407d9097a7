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
import numbers
import time
from dataclasses import asdict, dataclass, field, replace
from types import MappingProxyType
from typing import Callable, Mapping, Optional, Tuple, Union

from . import _core
from ._atomic import write_text
from ._validate import int_at_least, real
from .arch import Arch, Block
from .score import ScoreReport, _scorer, score_report
from .search_space import (  # noqa: F401  (SPACES, BUDGETS and SearchSpace are re-exported)
    BUDGET_PRESETS, BUDGETS, DEFAULT_MAX_WIDTH_RATIO, SPACES, SearchSpace, budget_flops_of, check_budget_check, checked_budget, default_seed,
    default_space, default_variant, parse_budget, resolve_space,
)

MAX_POPULATION = 1_000_000
CHECKPOINT_FORMAT = "pyddsar-search-checkpoint"
CHECKPOINT_VERSION = 2


#: The published backbone of each budget (what a search should at least match).
PUBLISHED = MappingProxyType({k: p.published for k, p in BUDGET_PRESETS.items()})


@dataclass(frozen=True)
class Constraints:
    """Limits a search keeps beyond its space and budget; a child that breaks one is dropped.

    min_widths: minimum out channels of (stem, C2, C3, C4, C5), or None; non_decreasing_widths:
    out channels stem <= C2 <= ... <= C5; max_width_ratio: out channels of C3, C4 and C5 at most
    this many times the previous stage's (None: no limit); max_layers / max_block_layers: override
    the space's total and per-stage layer limits; params_budget: at most this many parameters."""

    min_widths: Optional[Tuple[int, int, int, int, int]] = None
    non_decreasing_widths: bool = False
    max_width_ratio: Optional[float] = None
    max_layers: Optional[int] = None
    max_block_layers: Optional[int] = None
    params_budget: Optional[int] = None

    def __post_init__(self):
        if self.min_widths is not None:
            widths = self.min_widths
            if isinstance(widths, (str, bytes)) or not hasattr(widths, "__len__") or len(widths) != 5:
                raise ValueError(f"min_widths needs 5 numbers (stem, C2, C3, C4, C5), got {widths!r}")
            object.__setattr__(self, "min_widths", tuple(int_at_least(w, f"min_widths[{i}]", 0) for i, w in enumerate(widths)))
            for i, w in enumerate(self.min_widths):
                if w > 8192:
                    raise ValueError(f"min_widths[{i}] = {w} is above 8192, the widest block pyddsar builds")
        if not isinstance(self.non_decreasing_widths, bool):
            raise ValueError(f"non_decreasing_widths must be True or False, got {self.non_decreasing_widths!r}")
        object.__setattr__(self, "max_width_ratio",
                           real(self.max_width_ratio, "max_width_ratio", low=1, high=1024, allow_none=True))
        if self.max_layers is not None:
            object.__setattr__(self, "max_layers", int_at_least(self.max_layers, "max_layers", 5))
        if self.max_block_layers is not None:
            object.__setattr__(self, "max_block_layers", int_at_least(self.max_block_layers, "max_block_layers", 1))
            if self.max_block_layers > 64:
                raise ValueError(f"max_block_layers must be at most 64, got {self.max_block_layers}")
        if self.params_budget is not None:
            object.__setattr__(self, "params_budget", int_at_least(self.params_budget, "params_budget", 1))

    def apply(self, space: SearchSpace) -> SearchSpace:
        """The space with the layer limits overridden."""
        changes = {}
        if self.max_layers is not None:
            changes["max_total_layers"] = self.max_layers
        if self.max_block_layers is not None:
            changes["max_block_layers"] = self.max_block_layers
        return replace(space, **changes) if changes else space

    def native(self):
        c = _core.Constraints()
        c.min_out = list(self.min_widths) if self.min_widths is not None else []
        c.non_decreasing = self.non_decreasing_widths
        c.max_width_ratio = self.max_width_ratio or 0.0
        return c

    def why_violated(self, arch: Arch) -> str:
        """'' when `arch` keeps the width constraints (the others belong to the space and budget)."""
        return self.native().why_violated(arch._native)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class SearchResult:
    best: Arch
    score: float
    report: Optional[ScoreReport]  # None with a custom score_fn
    flops: int  # MACs at 640x480 (pyddsar's counting)
    params: int
    history: Tuple[Tuple[int, float, float], ...]  # (iteration, best, mean) of the best run
    seed: int
    space: str
    budget_flops: int  # MACs at 640x480: the preset's or the number asked
    elapsed_s: float
    iterations: int  # iterations run (fewer than asked when interrupted)
    interrupted: bool = False
    runs: Tuple[Tuple[int, float], ...] = ()  # (seed, best score) of every independent run
    counters: Mapping[str, int] = field(default_factory=dict)  # accepted / over_budget / ... (best run)
    settings: Mapping[str, object] = field(default_factory=dict)
    constraints: Constraints = Constraints()
    budget_check: Mapping[str, object] = field(default_factory=dict)  # what the loop compared: flops, resolution, counting
    budget_latency_ms: Optional[float] = None  # the latency budget (None: none)
    predicted_latency_ms: Optional[float] = None  # the best's latency predicted by the table (None: no table)
    latency: Mapping[str, object] = field(default_factory=dict)  # what was predicted: of, device, runtime, size

    def to_dict(self) -> dict:
        return {
            "structure": str(self.best),
            "arch": self.best.to_dict(),
            "score": self.score,
            "flops": self.flops,
            "params": self.params,
            "budget_flops": self.budget_flops,
            "budget_check": dict(self.budget_check),
            "budget_latency_ms": self.budget_latency_ms,
            "predicted_latency_ms": self.predicted_latency_ms,
            "latency": dict(self.latency),
            "space": self.space,
            "constraints": self.constraints.to_dict(),
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
def resolve_budget(budget, space=None) -> Tuple[int, SearchSpace]:
    """(MACs at 640x480, space) from a preset name ('0.5g'), a number, or a string such as '403m'."""
    budget = parse_budget(budget)
    space = resolve_space(default_space(budget) if space is None else space)
    space.native()  # validates the space before anything is built from it
    return checked_budget(budget), space


def _smallest_keeping(space: SearchSpace, constraints: Constraints, check: str) -> Arch:
    """The cheapest network of the space that keeps the width constraints."""
    arch = space.smallest(check)
    if constraints.min_widths is None and not constraints.non_decreasing_widths:
        return arch
    blocks, prev = [], 0
    for i, b in enumerate(arch.blocks):
        if i == 0 and not space.mutate_stem:  # a fixed stem stays as the space's seed has it
            blocks.append(b)
            prev = b.out_channels
            continue
        lo, hi = (space.stem_min_channels, space.stem_max_channels) if i == 0 else (space.min_channels, space.max_channels)
        w = max(lo, constraints.min_widths[i] if constraints.min_widths else 0, prev if constraints.non_decreasing_widths else 0)
        w = -(-w // 8) * 8
        if w > hi:
            raise ValueError(f"constraints ask block {i} for at least {w} channels; the {space.name!r} space allows {hi}")
        blocks.append(Block(b.type, b.kernel, blocks[-1].out_channels if blocks else 3, w, b.stride, b.bottleneck, b.layers, b.expansion))
        prev = w
    return Arch(tuple(blocks))


@dataclass(frozen=True)
class _LatencyBudget:
    table: object  # pyddsar.latency.LatencyTable
    ms: float
    detector: bool

    def fits(self, arch: Arch) -> bool:
        """Whether the table can predict `arch` and it is within the budget (one native prediction)."""
        ms, _ = self.table.try_predict(arch, self.detector)
        return ms <= self.ms  # False for NaN: an operation the table lacks


def _fits(space: SearchSpace, arch: Arch, check: Tuple[str, int], constraints: Constraints,
          latency: Optional[_LatencyBudget] = None) -> bool:
    params_budget = constraints.params_budget or 0
    return (budget_flops_of(arch, check[0]) <= check[1] and not (params_budget and arch.params() > params_budget)
            and not space.why_outside(arch) and not constraints.why_violated(arch)
            and (latency is None or latency.fits(arch)))


def _children_fit(space: SearchSpace, arch: Arch, check: Tuple[str, int], constraints: Constraints,
                  latency: Optional[_LatencyBudget] = None, tries: int = 500) -> bool:
    """Whether some one-mutation child of `arch` fits: only children become members, so a seed over
    the budget still works when its children come under it (as two of the release's seeds do)."""
    native = space.native()
    return any(_fits(space, Arch._from_native_tuples(t), check, constraints, latency)
               for t in native.mutate(arch._native, 0, tries, 1))


def _seed_arch(space: SearchSpace, seed_arch, budget, check: Tuple[str, int], constraints: Constraints,
               latency: Optional[_LatencyBudget] = None) -> Arch:
    if seed_arch is not None:
        arch = Arch.load(seed_arch)
        why = space.why_outside(arch)
        if why:
            raise ValueError(f"seed_arch is outside the {space.name!r} space: {why}")
        if latency is not None:
            latency.table.predict(arch, detector=latency.detector)  # ValueError naming what the table lacks
        if not _fits(space, arch, check, constraints, latency) and not _children_fit(space, arch, check, constraints, latency):
            raise ValueError(f"no child of seed_arch fits the budget and the constraints ({arch})")
        return arch
    text = default_seed(budget, space)
    arch = Arch.parse(text) if text else _smallest_keeping(space, constraints, check[0])
    if not space.why_outside(arch) and (_fits(space, arch, check, constraints, latency)
                                        or _children_fit(space, arch, check, constraints, latency)):
        return arch
    arch = _smallest_keeping(space, constraints, check[0])  # the default seed is far from this budget: start from the bottom
    if latency is not None:
        ms = latency.table.predict(arch, detector=latency.detector)  # ValueError naming what the table lacks
        if ms > latency.ms:
            raise ValueError(f"latency budget {latency.ms:g} ms is below the smallest network of the {space.name!r} "
                             f"space under these constraints (predicted {ms:.3f} ms: {arch})")
    if not _fits(space, arch, check, constraints, latency):
        raise ValueError(
            f"budget {check[1]:,} MACs ({check[0]} check) is below the smallest network of the {space.name!r} space "
            f"under these constraints ({budget_flops_of(arch, check[0]):,.0f} MACs: {arch})"
        )
    return arch


def _python_score(score_fn: Callable[[Arch], float]):
    def call(blocks):
        value = score_fn(Arch._from_native_tuples(blocks))
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"score_fn must return a float, got {value!r}")
        return float(value)  # a non-finite value marks the child unscorable (counted, not fatal)

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
                "population": [[str(Arch._from_native_tuples(t)), s] for t, s in evo.population()],
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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
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
            {"untabled": 0, **{k: int(v) for k, v in run["counters"].items()}}, str(run["rng_state"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path} is corrupt ({e}); delete it or start without --resume") from None


def _compare_settings(saved: dict, settings: dict, path: str, iterations: int, runs: list) -> None:
    """A checkpoint resumes only the same search; `iterations` may grow (continue a finished search)."""
    mine = json.loads(json.dumps(settings))
    changed = sorted(k for k in set(mine) | set(saved) if k != "iterations" and json.dumps(mine.get(k)) != json.dumps(saved.get(k)))
    if changed:
        raise ValueError(f"checkpoint {path} was written by a different search (differs in: {', '.join(changed)})")
    if len(runs) != len(saved.get("runs", runs)):
        raise ValueError(f"checkpoint {path} is corrupt (run count)")


# -- the search ----------------------------------------------------------------------------------
def search(
    budget: Union[str, int, float] = "0.5g",
    space: Union[str, SearchSpace, None] = None,
    iterations: int = 96000,
    population: int = 256,
    seed: int = 0,
    variant: Optional[str] = None,
    alpha=None,
    lambdas=None,
    score_fn: Optional[Callable[[Arch], float]] = None,
    *,
    resolution=(224, 224),
    fs_probe=None,
    constraints: Optional[Constraints] = None,
    min_widths=None,
    non_decreasing_widths: Optional[bool] = None,
    max_width_ratio: Optional[float] = None,
    max_layers: Optional[int] = None,
    max_block_layers: Optional[int] = None,
    params_budget: Optional[int] = None,
    budget_params: Optional[int] = None,
    budget_latency_ms: Optional[float] = None,
    latency_table=None,
    latency_of: Optional[str] = None,
    allow_foreign_table: bool = False,
    budget_check: str = "pyddsar",
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

    budget: "0.5g" / "2.5g" / "10g" / "34g" (the published budgets, 403 / 2118 / 8659 / 26787 M MACs at
    640x480), or MACs at 640x480 as a number or a string ("403m", "1g", "2.1e9"). space: a name of
    SPACES or a SearchSpace (default: the budget's). budget_check: "pyddsar" (MACs at 640x480) or
    "release" (the release's own numbers and FLOPs counting at 224x224); `result.budget_check`
    says what was compared.
    The score is :func:`pyddsar.score` with `variant` (None: "damofd-release" in damofd-mb, else
    "paper"), `alpha`, `lambdas`, `resolution` and `fs_probe`, or `score_fn(arch) -> float` (a Python callable: slower, runs one search at a time;
    a non-finite value marks the child unscorable, an exception stops the search with the iteration
    undone, the checkpoint saved, and propagates).
    Constraints (each also a keyword): min_widths (stem, C2..C5), non_decreasing_widths (None: True),
    max_width_ratio (None: 2.5; 0: no limit), max_layers, max_block_layers, params_budget;
    `constraints=Constraints(...)` gives them all at once (and nothing by default).
    restarts: independent searches with seeds seed, seed+1, ... run on separate threads; the best
    of all is returned. The same seed gives the same result, bit for bit, on the same build.
    progress(iteration, iterations, best, rate) is called after every chunk (best is None while no
    child has been accepted); checkpoint: a path the state is written to (atomically) after the
    first chunk, then at most every `checkpoint_every_s` seconds, at the end and when stopped;
    resume: continue from it (with a larger `iterations`, a finished search goes on).
    Ctrl-C (KeyboardInterrupt) stops after the current chunk and returns the best so far
    (`interrupted=True`).
    Latency and parameter budgets (docs/search.md, "Latency budgets"): budget_latency_ms with
    latency_table (a path or :class:`pyddsar.latency.LatencyTable` built on this machine; one from
    another device, runtime or thread count is refused unless allow_foreign_table) keeps children
    whose latency predicted from the table is at most that many ms; latency_of "detector" (the
    default when the table has the neck and head) or "backbone". budget_params: at most this many
    parameters. The budgets combine; ``budget=None`` drops the FLOPs budget (up to the table's
    max_flops). Children with an operation the table lacks are dropped (counted as `untabled`;
    ``result.settings["first_untabled"]`` names the first). For a list of budgets see :func:`search_family`.
    """
    if budget_params is not None:
        if params_budget is not None:
            raise ValueError("give budget_params or its old name params_budget, not both")
        params_budget = budget_params
    latency = _latency_budget(budget_latency_ms, latency_table, latency_of, allow_foreign_table)
    if budget is None:
        if latency is None and params_budget is None:
            raise ValueError("budget=None (no FLOPs budget) needs budget_latency_ms or budget_params")
        budget = latency.table.settings.get("max_flops", 2 ** 62) if latency is not None else 2 ** 62
        if space is None and latency is not None:
            space = latency.table.space
    budget_key = parse_budget(budget)
    budget_flops, space = resolve_budget(budget_key, space)
    if latency is not None:
        latency.table.check_space(space)
    iterations = int_at_least(iterations, "iterations", 0)
    population = int_at_least(population, "population", 1)
    if population > MAX_POPULATION:  # a member costs ~0.3 kB; 1e9 of them grew past 8.6 GB
        raise ValueError(f"population must be at most {MAX_POPULATION:,}, got {population:,}")
    seed = int_at_least(seed, "seed", 0)
    restarts = int_at_least(restarts, "restarts", 1)
    log_every = int_at_least(log_every, "log_every", 1)
    chunk = int_at_least(chunk, "chunk", 1)
    checkpoint_every_s = real(checkpoint_every_s, "checkpoint_every_s", low=0, finite=False)
    keywords = dict(min_widths=min_widths, non_decreasing_widths=non_decreasing_widths, max_width_ratio=max_width_ratio,
                    max_layers=max_layers, max_block_layers=max_block_layers, params_budget=params_budget)
    if constraints is None:
        # the main job's defaults (docs/search.md, "The default"); 0 turns the ratio limit off
        keywords["non_decreasing_widths"] = True if non_decreasing_widths is None else non_decreasing_widths
        keywords["max_width_ratio"] = DEFAULT_MAX_WIDTH_RATIO if max_width_ratio is None else (max_width_ratio or None)
        constraints = Constraints(**{k: v for k, v in keywords.items() if v is not None})
    elif not isinstance(constraints, Constraints):
        raise ValueError(f"constraints must be a pyddsar.search.Constraints, got {constraints!r}")
    elif any(v is not None for v in keywords.values()):
        raise ValueError("give constraints either as constraints=Constraints(...) or as keywords, not both")
    space = constraints.apply(space)
    native_space = space.native()
    check = (check_budget_check(budget_check), checked_budget(budget_key, budget_check))
    if score_fn is None:
        variant = default_variant(space) if variant is None else variant
        scorer, (variant, alpha, lambdas, resolution, probe) = _scorer(variant, alpha, lambdas, resolution, fs_probe)
        score_desc = {"variant": variant, "alpha": alpha, "lambdas": list(lambdas), "resolution": list(resolution),
                      "fs_probe": probe if isinstance(probe, str) else asdict(probe)}
    else:
        if not callable(score_fn):
            raise ValueError("score_fn must be a callable taking an Arch and returning a float")
        if restarts > 1:
            raise ValueError("restarts > 1 needs the native scorer (score_fn=None)")
        scorer = _python_score(score_fn)
        score_desc = {"score_fn": getattr(score_fn, "__qualname__", type(score_fn).__qualname__)}
    start_arch = _seed_arch(space, seed_arch, budget_key, check, constraints, latency)
    w, h = (224, 224) if check[0] == "release" else (640, 480)
    budget_check = {"check": check[0], "flops": check[1], "resolution": [w, h]}

    settings = {
        "budget_flops": budget_flops, "budget_check": budget_check, "space": asdict(space),
        "constraints": constraints.to_dict(), "iterations": iterations, "population": population, "seed": seed,
        "restarts": restarts, "log_every": log_every, "seed_arch": str(start_arch), **score_desc,
    }
    latency_desc = {}
    if latency is not None:
        t = latency.table
        latency_desc = {"of": "detector" if latency.detector else "backbone", "space": t.space, "size": list(t.size),
                        "device": t.environment.device, "device_name": t.environment.device_name,
                        "runtime": t.environment.runtime, "threads": t.environment.threads}
        settings["budget_latency_ms"] = latency.ms
        settings["latency"] = {**latency_desc, "table": _table_digest(t)}
    runs = []
    for r in range(restarts):
        evo = _core.Evolution(
            native_space, constraints.native(), check[1], constraints.params_budget or 0, w, h, check[0] == "release",
            population, iterations, seed + r, log_every, start_arch._native, scorer,
            latency.table._native if latency else None, latency.ms if latency else 0.0, bool(latency and latency.detector),
        )
        runs.append((seed + r, evo))
    elapsed_before = 0.0
    if resume:
        if not checkpoint:
            raise ValueError("resume=True needs the checkpoint path")
        data = load_checkpoint(checkpoint)
        _compare_settings(data["settings"], settings, checkpoint, iterations, data["runs"])
        for (_, evo), run in zip(runs, data["runs"]):
            if int(run.get("iteration", 0)) > iterations:
                raise ValueError(f"checkpoint {checkpoint} is at iteration {run['iteration']}, past iterations={iterations}")
            _restore(evo, run, checkpoint)
        elapsed_before = float(data.get("elapsed_s", 0.0))

    def save():
        if checkpoint:
            write_text(checkpoint, json.dumps(_checkpoint_dict(settings, runs, elapsed_before + time.perf_counter() - start)))

    start = time.perf_counter()
    last_saved = float("-inf")  # the first chunk is always saved
    interrupted = False
    parallel = score_fn is None and restarts > 1
    try:
        while True:
            if parallel:
                _core.run_parallel([evo for _, evo in runs], chunk)
            else:
                for _, evo in runs:
                    evo.run(chunk)
            finished = all(evo.done for _, evo in runs)
            if finished or time.perf_counter() - last_saved >= checkpoint_every_s:
                save()
                last_saved = time.perf_counter()
            if progress is not None:
                done = min(evo.iteration for _, evo in runs)
                bests = [b[1] for b in (evo.best() for _, evo in runs) if b is not None]
                rate = sum(evo.iteration for _, evo in runs) / max(time.perf_counter() - start, 1e-9)
                progress(done, iterations, max(bests) if bests else None, rate)
            if finished:
                break
    except KeyboardInterrupt:
        interrupted = True
        save()  # every run stopped between iterations (an interrupted one was rewound)
    except BaseException:
        save()  # resume continues at the iteration that failed
        raise
    elapsed = elapsed_before + time.perf_counter() - start

    scored = [(s, evo) for s, evo in runs if evo.has_members]
    if not scored:
        if interrupted:
            raise KeyboardInterrupt  # stopped before any child was accepted: nothing to report
        c = runs[0][1].counters()
        raise ValueError(
            f"the search accepted no architecture in {runs[0][1].iteration} iterations "
            f"({', '.join(f'{k} {v}' for k, v in c.items())}); loosen the budget or the constraints"
        )
    best_seed, best_evo = max(scored, key=lambda r: (r[1].best()[1], -r[0]))
    best_tuples, best_score = best_evo.best()
    best = Arch._from_native_tuples(best_tuples)
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
        runs=tuple((s, evo.best()[1] if evo.has_members else float("nan")) for s, evo in runs),
        counters=MappingProxyType(best_evo.counters()),
        settings=MappingProxyType({**settings, **({"first_untabled": best_evo.first_untabled()}
                                                  if best_evo.first_untabled() else {})}),
        constraints=constraints,
        budget_check=MappingProxyType(budget_check),
        budget_latency_ms=latency.ms if latency else None,
        predicted_latency_ms=latency.table.predict(best, detector=latency.detector) if latency else None,
        latency=MappingProxyType(latency_desc),
    )


def _latency_budget(ms, table, of, allow_foreign: bool) -> Optional[_LatencyBudget]:
    if ms is None:
        if table is not None:
            raise ValueError("latency_table is given without budget_latency_ms")
        return None
    if isinstance(ms, (list, tuple)):
        raise ValueError("budget_latency_ms takes one number; for a list of budgets use pyddsar.search_family")
    ms = real(ms, "budget_latency_ms", low=0, low_open=True)
    if table is None:
        raise ValueError("budget_latency_ms needs latency_table (build one with `pyddsar latency-table`)")
    from .latency import load_latency_table

    table = load_latency_table(table)
    table.check_environment(allow_foreign=allow_foreign)
    if of is None:
        of = "detector" if table.detector is not None else "backbone"
    if of not in ("detector", "backbone"):
        raise ValueError(f"latency_of must be 'detector' or 'backbone', got {of!r}")
    if of == "detector" and table.detector is None:
        raise ValueError("latency_of='detector' needs a table with the neck and head measured; this one has none")
    return _LatencyBudget(table, ms, of == "detector")


def _table_digest(table) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(table.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
