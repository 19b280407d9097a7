"""Latency tables: measured per-operation latencies of a search space on one device and runtime,
and the latency predictions a latency-budget search makes from them (docs/search.md, "Latency budgets").

A table holds, for every operation kind a space's backbones contain (a dense conv of one kernel and
stride with or without its ReLU, a depthwise conv, a residual join relu(branch + shortcut)) at
every stage resolution, latencies measured on a grid of channel counts. A backbone's latency is
predicted as ``scale * sum(operations) + offset`` (bilinear between grid points, nothing outside
them); ``scale`` and ``offset`` are fitted on whole backbones measured when the table is built, and
the detector's neck and head add their lateral convs (from the same grids) and a measured rest.
Under onnxruntime on x86 the joins cost nothing of their own (its NCHWc transformer folds each into
the conv before it; ``_Runner.ort_fuses_joins``), and the table prices them at 0 ms.
The prediction runs natively (``_core.LatencyTable``), so the search loop measures nothing.

>>> table = build_latency_table("damofd-mb", runtime="torch")      # doctest: +SKIP
>>> table.predict(pyddsar.presets["ddsar-0.5g"], detector=True)     # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import math
import os
import platform
import random
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from . import _core, __version__
from ._atomic import write_text
from ._validate import integer, real
from .arch import Arch
from .heap import keep_heap
from .search_space import DEFAULT_MAX_WIDTH_RATIO, BUDGET_PRESETS, SearchSpace, resolve_space

FORMAT = "pyddsar-latency-table"
VERSION = 1
OPS = ("conv", "depthwise", "join")
RUNTIMES = ("torch", "onnxruntime")
#: Channel counts measured between the smallest and largest a space uses (interpolated between).
#: Every multiple of 8 up to 128: both runtimes' CPU kernels work in blocks of 16 channels here (AVX-512;
#: onnxruntime's NCHWc, oneDNN's nChw16c), so 40 or 72 channels cost more than the straight line
#: between 32 and 48 or 64 and 96 says (on the 2-core AMD VM, 2026-12-07, at 160x120: onnxruntime's
#: 1x1 convs 1.16-1.36x, depthwise 1.14-1.30x; torch's up to 1.23x), and networks of such widths were
#: priced too low against those of multiples of 16.
CHANNEL_GRID = tuple(range(8, 129, 8)) + (160, 192, 256, 320, 384, 512, 640, 768, 1024, 1280, 1536, 2048, 3072,
                                          4096, 6144, 8192)
#: The detector of each space when none is named: the DamoFD preset of the space's budget.
DETECTOR_LEVELS = (2, 3, 4)  # the neck takes C3..C5, the outputs of blocks 2..4


@dataclass(frozen=True)
class Grid:
    """Measured latencies (ms) of one operation kind at one input resolution over its channels;
    ``ms[i * len(cout) + j]`` for (cin[i], cout[j]); NaN where a point was not measured (over the
    table's FLOPs cap). Depthwise convs and joins have ``cout == (0,)``."""

    op: str
    kernel: int
    stride: int
    act: bool
    h: int
    w: int
    cin: Tuple[int, ...]
    cout: Tuple[int, ...]
    ms: Tuple[float, ...]

    def key(self) -> tuple:
        return (self.op, self.kernel, self.stride, self.act, self.h, self.w)


@dataclass(frozen=True)
class Environment:
    """Where a table was measured; a table is only valid on the same device, runtime and threads."""

    device: str  # "cpu" / "cuda"
    device_name: str
    runtime: str  # "torch" / "onnxruntime"
    runtime_version: str
    threads: int
    torch: str
    pyddsar: str
    python: str

    def mismatch(self, other: "Environment") -> Tuple[List[str], List[str]]:
        """(differences that make a table invalid, differences worth a warning)."""
        hard = [f"{k}: table {getattr(self, k)!r}, here {getattr(other, k)!r}"
                for k in ("device", "device_name", "runtime", "threads") if getattr(self, k) != getattr(other, k)]
        soft = [f"{k}: table {getattr(self, k)!r}, here {getattr(other, k)!r}"
                for k in ("runtime_version", "torch", "pyddsar") if getattr(self, k) != getattr(other, k)]
        return hard, soft


@dataclass(frozen=True)
class LatencyTable:
    space: str
    size: Tuple[int, int]  # (width, height) the latencies were measured at
    environment: Environment
    grids: Tuple[Grid, ...]
    scale: float = 1.0
    offset_ms: float = 0.0
    detector: Optional[dict] = None  # {"name", "neck_channels", "levels", "rest_ms", "neck_head_ms"}
    settings: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)  # the whole networks scale/offset/rest were fitted on
    reference: Optional[dict] = None  # {"arch", "ms" (median), "spread", "timings"}: the machine's speed while built
    _native: object = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        t = _core.LatencyTable(int(self.size[0]), int(self.size[1]))
        for g in self.grids:
            try:
                t.add(OPS.index(g.op), g.kernel, g.stride, g.act, g.h, g.w, list(g.cin), list(g.cout), list(g.ms))
            except ValueError as e:
                raise ValueError(f"latency table: {g.op} k{g.kernel} s{g.stride} at {g.w}x{g.h}: {e}") from None
        t.set_calibration(float(self.scale), float(self.offset_ms))
        if self.detector is not None:
            d = self.detector
            t.set_detector(list(d["levels"]), int(d["neck_channels"]), float(d["rest_ms"]))
        object.__setattr__(self, "_native", t)

    # -- prediction ----------------------------------------------------------------------------
    def try_predict(self, arch, detector: bool = False) -> Tuple[float, str]:
        """(milliseconds, '') as :meth:`predict`, or (NaN, the first operation the table lacks): one
        native prediction, no exception (what the search's budget test calls for every child)."""
        ms, missing = self._native.predict(_arch(arch)._native, bool(detector))
        return (float("nan"), missing or "an operation") if math.isnan(ms) else (float(ms), "")

    def missing(self, arch, detector: bool = False) -> str:
        """'' when the table can predict `arch`, else the first operation it lacks."""
        return self.try_predict(arch, detector)[1]

    def predict(self, arch, detector: bool = False) -> float:
        """Predicted milliseconds of the backbone (``detector=True``: with the neck and head) at
        the table's size; ValueError naming the operation the table lacks."""
        if detector and self.detector is None:
            raise ValueError("this latency table has no neck and head measured (built with detector=None)")
        ms, missing = self.try_predict(arch, detector)
        if missing:
            raise ValueError(f"the latency table lacks {missing} (needed by {_arch(arch)}); rebuild it with a larger "
                             f"max_flops or for this space ({self.space!r} at {self.size[0]}x{self.size[1]})")
        return float(ms)

    def lookup(self, op: str, kernel: int, stride: int, act: bool, h: int, w: int, cin: int, cout: int) -> float:
        """Milliseconds of one operation (``op`` in OPS; ``h`` x ``w`` its input), interpolated
        bilinearly in the channels between grid points as the search's prediction does (the raw grid
        value, before the calibration); ValueError naming what the table lacks."""
        if op not in OPS:
            raise ValueError(f"op must be one of {OPS}, got {op!r}")
        ms, missing = self._native.lookup(OPS.index(op), int(kernel), int(stride), bool(act), int(h), int(w),
                                          int(cin), int(cout))
        if math.isnan(ms):
            raise ValueError(f"the latency table lacks {missing}")
        return float(ms)

    # -- checks --------------------------------------------------------------------------------
    def check_environment(self, here: Optional[Environment] = None, allow_foreign: bool = False) -> None:
        """ValueError when the table was measured on another device, runtime or thread count
        (a warning instead with ``allow_foreign``); a warning when only versions differ."""
        env = self.environment
        if here is None:
            try:
                here = current_environment(env.device, env.runtime, env.threads)
            except ValueError as e:  # e.g. a CUDA table on a machine without a GPU
                here = None
                hard, soft = [f"measured on {env.device} ({env.device_name}) with {env.runtime}: {e}"], []
        if here is not None:
            hard, soft = env.mismatch(here)
        if hard:
            msg = ("this latency table was measured elsewhere (" + "; ".join(hard) + "); its predictions do not "
                   "hold here: build one with `pyddsar latency-table` on this machine")
            if not allow_foreign:
                raise ValueError(msg)
            warnings.warn(msg, stacklevel=2)
        elif soft:
            warnings.warn("latency table built with other versions (" + "; ".join(soft) + "); re-measure if in doubt",
                          stacklevel=2)

    def check_space(self, space: SearchSpace) -> None:
        if space.name != self.space:
            raise ValueError(f"the latency table was built for the {self.space!r} space, not {space.name!r}")

    # -- files ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "version": VERSION, "space": self.space, "size": list(self.size),
            "environment": asdict(self.environment), "scale": self.scale, "offset_ms": self.offset_ms,
            "detector": self.detector, "settings": self.settings, "calibration": self.calibration,
            "reference": self.reference,
            "grids": [{**asdict(g), "cin": list(g.cin), "cout": list(g.cout),
                       "ms": [None if math.isnan(v) else v for v in g.ms]} for g in self.grids],
        }

    def save(self, path: str) -> str:
        write_text(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def from_dict(cls, d: dict, where: str = "latency table") -> "LatencyTable":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"{where} is not a pyddsar latency table (no \"format\": \"{FORMAT}\")")
        if d.get("version") != VERSION:
            raise ValueError(f"{where} has version {d.get('version')!r}; this pyddsar reads {VERSION}")
        try:
            grids = tuple(Grid(g["op"], int(g["kernel"]), int(g["stride"]), bool(g["act"]), int(g["h"]), int(g["w"]),
                               tuple(int(c) for c in g["cin"]), tuple(int(c) for c in g["cout"]),
                               tuple(float("nan") if v is None else float(v) for v in g["ms"])) for g in d["grids"])
            for g in grids:
                if g.op not in OPS:
                    raise ValueError(f"unknown operation {g.op!r}")
            return cls(space=str(d["space"]), size=(int(d["size"][0]), int(d["size"][1])),
                       environment=Environment(**d["environment"]), grids=grids, scale=float(d["scale"]),
                       offset_ms=float(d["offset_ms"]), detector=d.get("detector"), settings=d.get("settings", {}),
                       calibration=d.get("calibration", {}), reference=d.get("reference"))
        except (KeyError, TypeError, IndexError, ValueError) as e:
            raise ValueError(f"{where} is corrupt ({e})") from None


def load_latency_table(path) -> LatencyTable:
    """Read a table written by :meth:`LatencyTable.save` / ``pyddsar latency-table``."""
    if isinstance(path, LatencyTable):
        return path
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"no latency table at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a readable latency table ({e})") from None
    return LatencyTable.from_dict(data, str(path))


def _arch(arch) -> Arch:
    return arch if isinstance(arch, Arch) else Arch.load(arch)


# -- the environment ------------------------------------------------------------------------------
def current_environment(device: str = "cpu", runtime: str = "torch", threads: Optional[int] = None) -> Environment:
    import torch

    from .benchmark import device_name

    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device cuda: torch sees no CUDA device here")
        if runtime != "torch":
            raise ValueError("the onnxruntime tables are measured on the CPU (give device cpu)")
    if threads is None:
        threads = torch.get_num_threads()
    else:
        threads = integer(threads, "threads", low=1)
    if runtime == "onnxruntime":
        import onnxruntime

        version = onnxruntime.__version__
    else:
        version = torch.__version__
    return Environment(device=device, device_name=device_name(torch.device(device)), runtime=runtime,
                       runtime_version=version, threads=int(threads), torch=torch.__version__, pyddsar=__version__,
                       python=platform.python_version())


# -- random networks of a space -------------------------------------------------------------------
def sample_archs(space, count: int, seed: int = 0, max_flops: Optional[int] = None, steps: Optional[int] = None,
                 constraints=None) -> List[Arch]:
    """`count` distinct networks of `space` drawn from a random walk of the search's own mutation
    (children of random members, as the search makes them) kept under `max_flops` MACs at 640x480
    and the main job's width constraints (non-decreasing, at most x2.5 per stage); ``steps``
    walk steps (default 40 x count). The same seed gives the same networks."""
    space = resolve_space(space)
    native = space.native()
    if constraints is None:
        constraints = _core.Constraints()
        constraints.non_decreasing = True
        constraints.max_width_ratio = DEFAULT_MAX_WIDTH_RATIO
    cap = max_flops if max_flops is not None else _default_max_flops(space)
    start = Arch.parse(space.seed) if space.seed else space.smallest()
    rng = random.Random(seed)
    members, seen = [start], {str(start)}
    for i in range(steps if steps is not None else 40 * count):
        parent = members[rng.randrange(len(members))]
        (child,) = native.mutate(parent._native, rng.getrandbits(63), 1, space.mutations)
        arch = Arch._from_native_tuples(child)
        text = str(arch)
        if text in seen or native.why_outside(arch._native) or arch.flops() > cap or constraints.why_violated(arch._native):
            continue
        seen.add(text)
        members.append(arch)
    pool = members[1:] if len(members) > count else members
    if len(pool) < count:
        raise ValueError(f"the random walk found {len(pool)} distinct networks of {space.name!r} under "
                         f"{cap:,} MACs, fewer than the {count} asked; give more steps")
    return rng.sample(pool, count)


def _smallest_preset(space: SearchSpace):
    """The smallest budget preset that searches this space (for a space no preset names: that of
    its block family, damofd-mb for MB spaces, damofd-res for Res/Btn ones)."""
    presets = [p for p in BUDGET_PRESETS.values() if p.space == space.name]
    if not presets:
        family = "damofd-mb" if "MB" in space.types else "damofd-res"
        presets = [p for p in BUDGET_PRESETS.values() if p.space == family]
    return min(presets, key=lambda p: p.flops)


def _default_max_flops(space: SearchSpace) -> int:
    """Twice the smallest budget preset of the space (:func:`_smallest_preset`)."""
    return 2 * _smallest_preset(space).flops


def default_detector(space: SearchSpace) -> str:
    """The detector whose neck and head a table measures by default: the published DamoFD detector of
    the space's smallest budget preset (ddsar-0.5g for MB spaces, ddsar-2.5g for Res/Btn ones)."""
    return _smallest_preset(space).published


def latency_items(arch, size) -> List[tuple]:
    """(op, kernel, stride, act, h, w, cin, cout) of every operation the table prices, in order."""
    return [(OPS[op], k, s, bool(a), h, w, ci, co) for op, k, s, a, h, w, ci, co in
            _core.latency_items(_arch(arch)._native, int(size[0]), int(size[1]))]


def _cap_at(max_flops: int, size) -> float:
    """A FLOPs cap given at 640x480 (as budgets are) for operations measured at `size`."""
    return max_flops * size[0] * size[1] / (640 * 480)


def _op_macs(op, kernel, stride, h, w, cin, cout) -> int:
    ho, wo = -(-h // stride), -(-w // stride)
    if op == "conv":
        return cin * cout * kernel * kernel * ho * wo
    if op == "depthwise":
        return cin * kernel * kernel * ho * wo
    return cin * h * w


def _axis(values, fits: Callable[[int], bool]) -> Tuple[int, ...]:
    """The channel points of one grid axis: from the grid point below the smallest value the walk
    saw up to twice the largest (rounded up to a grid point), every CHANNEL_GRID point
    between, and no point whose operation alone `fits` refuses (over the table's FLOPs cap)."""
    lo, hi = min(values), max(values)
    below = [g for g in CHANNEL_GRID if g < lo]
    lo2 = below[-1] if below else lo
    above = [g for g in CHANNEL_GRID if g >= 2 * hi]
    hi2 = above[0] if above else CHANNEL_GRID[-1]
    axis = sorted({lo2, hi2, *(g for g in CHANNEL_GRID if lo2 <= g <= hi2)})  # lo2 = lo below the grid
    return tuple(c for c in axis if c <= hi or fits(c))


def plan_grids(space, size=(640, 480), max_flops: Optional[int] = None, walk: int = 3000, seed: int = 0,
               detector: Optional[dict] = None) -> List[Tuple[tuple, Tuple[int, ...], Tuple[int, ...]]]:
    """(key, cin axis, cout axis) of every grid a table of `space` needs: the operation kinds and
    channel ranges of `walk` random networks of the space (plus the detector's lateral convs)."""
    space = resolve_space(space)
    seen: Dict[tuple, Tuple[set, set]] = {}
    archs = sample_archs(space, min(walk, 400), seed=seed, max_flops=max_flops, steps=walk * 4)
    if space.seed:
        archs.append(Arch.parse(space.seed))
    archs.append(space.smallest())  # where a search starts when the seed is over the budget
    for arch in archs:
        items = latency_items(arch, size)
        if detector is not None:
            hs = _level_sizes(arch, size)
            items += [("conv", 1, 1, False, hs[l][1], hs[l][0], arch[l].out_channels, detector["neck_channels"])
                      for l in detector["levels"]]
        for op, k, s, a, h, w, ci, co in items:
            cins, couts = seen.setdefault((op, k, s, a, h, w), (set(), set()))
            cins.add(ci)
            couts.add(co)
    cap = _cap_at(max_flops if max_flops is not None else _default_max_flops(space), size)
    plan = []
    for key, (cins, couts) in sorted(seen.items()):
        op, k, s, _, h, w = key
        co_min = min(couts) if op == "conv" else 0
        cin_axis = _axis(cins, lambda c: _op_macs(op, k, s, h, w, c, co_min) <= cap)
        cout_axis = _axis(couts, lambda c: _op_macs(op, k, s, h, w, min(cins), c) <= cap) if op == "conv" else (0,)
        plan.append((key, cin_axis, cout_axis))
    return plan


def _level_sizes(arch: Arch, size) -> List[Tuple[int, int]]:
    """(width, height) of each block's output."""
    w, h = size
    out = []
    for b in arch.blocks:
        w, h = -(-w // b.stride), -(-h // b.stride)
        out.append((w, h))
    return out


# -- measuring ------------------------------------------------------------------------------------
def _median_ms(run: Callable[[], object], sync: Callable[[], None], warmup: int, repeats: int,
               target_s: float) -> float:
    """Median wall time of `run` in ms: `warmup` untimed calls, then at least `repeats` timed ones
    (more, up to 4x, while they take less than `target_s` in all)."""
    for _ in range(warmup):
        run()
    sync()
    times: List[float] = []
    total = 0.0
    while len(times) < repeats or (total < target_s and len(times) < 4 * repeats):
        t0 = time.perf_counter()
        run()
        sync()
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
    return statistics.median(times) * 1e3


class _Runner:
    """Builds and times single operations and whole networks on one device and runtime."""

    def __init__(self, env: Environment, warmup: int, repeats: int, target_s: float):
        import torch

        self.torch = torch
        self.env = env
        self.warmup, self.repeats, self.target_s = warmup, repeats, target_s
        self.device = torch.device(env.device)
        if env.runtime == "torch" and env.device == "cpu":
            torch.set_num_threads(env.threads)
        self.sync = (lambda: torch.cuda.synchronize(self.device)) if env.device == "cuda" else (lambda: None)
        # measure as pyddsar.Detector runs: freed activations stay mapped (page faults cost a searched
        # backbone 10 ms of 32 under glibc's defaults; pyddsar/heap.py)
        keep_heap()
        self._exported: Dict[tuple, tuple] = {}  # (id(module), size) -> (module, ONNX bytes); the module keeps its id

    # torch ------------------------------------------------------------------------------------
    def _torch_time(self, module, inputs) -> float:
        # channels-last, as pyddsar.Detector feeds its networks (torch's CPU depthwise convolutions
        # are several times faster, and far steadier, on it than on contiguous NCHW tensors)
        torch = self.torch
        module = module.to(self.device, memory_format=torch.channels_last).eval()
        inputs = [x.to(self.device).contiguous(memory_format=torch.channels_last) for x in inputs]
        with torch.inference_mode():
            return _median_ms(lambda: module(*inputs), self.sync, self.warmup, self.repeats, self.target_s)

    # onnxruntime ------------------------------------------------------------------------------
    def _session(self, model_bytes: bytes, feeds: dict, profile_prefix: Optional[str] = None):
        """(session, run): one onnxruntime session of this runner's threads, and a call that runs it on
        ``feeds`` (those of its inputs; a graph that ignores its input has none); ``profile_prefix``:
        profile every run into a file of that prefix."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.env.threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as pyddsar bench runs it
        if profile_prefix is not None:
            so.enable_profiling = True
            so.profile_file_prefix = profile_prefix
        sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        names = {i.name for i in sess.get_inputs()}
        feeds = {k: v for k, v in feeds.items() if k in names}
        return sess, lambda: sess.run(None, feeds)

    def _ort_time(self, model_bytes: bytes, feeds: dict) -> float:
        _, run = self._session(model_bytes, feeds)
        return _median_ms(run, self.sync, self.warmup, self.repeats, self.target_s)

    def _ort_kernel_ms(self, model_bytes: bytes, feeds: dict) -> float:
        """Median over timed runs of the graph's kernel time (onnxruntime's profiler), without its
        layout reorders: how one operation costs inside a whole network. Timed alone with the wall
        clock, a one-node graph pays a run's fixed overhead and converts its input to onnxruntime's
        blocked layout and back, which a whole network does once; on the 2-core AMD VM (2026-12-04)
        the wall-clock sums of four random backbones' operations were 1.6-2.7x the backbones, their
        kernel-time sums 0.76-0.98x."""
        # the runs as _ort_time makes them (its wall-clock median unused: the profile holds the kernels)
        events = self._ort_profile(model_bytes, feeds,
                                   lambda run: _median_ms(run, self.sync, self.warmup, self.repeats, self.target_s))
        return statistics.median(_kernel_ms_per_run(events, skip=self.warmup))

    def _ort_profile(self, model_bytes: bytes, feeds: dict, drive: Callable[[Callable[[], object]], object]) -> List[dict]:
        """The profile events (onnxruntime's JSON) of one session of ``model_bytes`` on ``feeds``,
        after ``drive(run)`` has run it as it wants."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="pyddsar-ort-") as tmp:
            sess, run = self._session(model_bytes, feeds, profile_prefix=os.path.join(tmp, "profile"))
            drive(run)
            with open(sess.end_profiling()) as f:
                return json.load(f)

    def ort_fuses_joins(self, module, size) -> bool:
        """Whether onnxruntime runs ``module``'s residual joins inside its convolutions: a profiled
        run of the whole network has no Add kernel. On x86 CPUs with AVX2 its NCHWc transformer
        folds relu(conv + shortcut) into the conv before it (a Conv node with the shortcut as a
        fourth input), which then costs about what the plain conv does: on the 2-core AMD VM
        (2026-12-04) a 48->48 1x1 conv at 80x60 took 0.131 ms with its sum fused, 0.124 ms without,
        while the same Add + Relu run as its own graph (where nothing can fuse) took 0.08 ms."""
        events = self._ort_profile(*self._network_onnx(module, size), lambda run: run())
        ops = {str(e.get("args", {}).get("op_name", "")) for e in events if e.get("cat") == "Node"}
        return "Conv" in ops and "Add" not in ops

    def _ort_export(self, module, example) -> bytes:
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.torch.onnx.export(module.eval(), (example,), buf, dynamo=False, opset_version=17,
                                   input_names=["input.1"], do_constant_folding=True)
        return buf.getvalue()

    # one operation ------------------------------------------------------------------------------
    def op_ms(self, op, kernel, stride, act, h, w, cin, cout) -> float:
        torch = self.torch
        g = torch.Generator().manual_seed(0)
        if self.env.runtime == "torch":
            from torch import nn

            from .models.layers import ConvNorm

            if op == "join":
                return self._torch_time(_join_module(), [torch.randn(1, cin, h, w, generator=g), torch.randn(1, cin, h, w, generator=g)])
            groups, co = (cin, cin) if op == "depthwise" else (1, cout)
            m = ConvNorm(cin, co, kernel, stride, groups=groups, act=act, fused=True)
            nn.init.normal_(m.conv.weight, std=0.1, generator=g)
            return self._torch_time(m, [torch.randn(1, cin, h, w, generator=g)])
        import numpy as np

        rs = np.random.default_rng(0)
        model = _onnx_op(op, kernel, stride, act, h, w, cin, cout, rs)
        feeds = {"x": rs.standard_normal((1, cin, h, w), dtype=np.float32)}
        if op == "join":
            feeds["y"] = rs.standard_normal((1, cin, h, w), dtype=np.float32)
        return self._ort_kernel_ms(model, feeds)

    # whole networks ---------------------------------------------------------------------------
    def network_ms(self, module, size, passes: int = 2) -> float:
        """The fastest of `passes` medians (as the table's points are measured)."""
        if self.env.runtime == "torch":
            return min(self._torch_time(module, [self._network_input(size)]) for _ in range(passes))
        model, feeds = self._network_onnx(module, size)
        return min(self._ort_time(model, feeds) for _ in range(passes))

    def _network_input(self, size):
        torch = self.torch
        return torch.randn(1, 3, size[1], size[0], generator=torch.Generator().manual_seed(0))

    def _network_onnx(self, module, size) -> Tuple[bytes, dict]:
        """(ONNX bytes, feeds) of a whole network on a width x height input, exported once per module
        and size (a check times each network in several rounds)."""
        x = self._network_input(size)
        key = (id(module), tuple(size))
        if key not in self._exported:
            self._exported[key] = (module, self._ort_export(module, x))
        return self._exported[key][1], {"input.1": x.numpy()}


def _kernel_ms_per_run(events: Sequence[dict], skip: int = 0) -> List[float]:
    """Milliseconds of kernel time in each run of an onnxruntime profile (its JSON events), the
    layout reorders left out, the first ``skip`` runs dropped: a node's kernel event belongs to the
    run ("model_run") whose interval holds its start."""
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    totals = [0.0] * len(runs)
    starts = [r[0] for r in runs]
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        if str(e.get("args", {}).get("op_name", "")).startswith("Reorder"):
            continue
        i = bisect.bisect_right(starts, e["ts"]) - 1
        if i >= 0 and e["ts"] <= runs[i][1]:
            totals[i] += e["dur"] / 1e3
    if len(totals) <= skip:
        raise ValueError(f"the onnxruntime profile holds {len(totals)} runs, fewer than the {skip} warm-up runs plus one")
    return totals[skip:]


class _SpeedReference:
    """The machine's speed, followed while a table is built, by timing one fixed network (the space's
    seed backbone) between the measurements: a diagnostic, recorded in the table with its spread.

    Shared and virtual machines change speed in spells of tens of seconds (this 2-core VM: the same
    network's fastest of 15 runs moved between 11 and 19 ms within two minutes). The timings are not
    used to correct the measurements: tried (each measurement scaled by typical / local reference),
    it helped one check and made the next three worse (docs/search.md), because the slow spells add
    time in chunks (a 11 ms network gained 8 ms, a 25 ms one 6 ms) rather than scale it, and short
    operations mostly miss them.
    """

    def __init__(self, runner: "_Runner", arch: Arch, size, every_s: float):
        self.runner, self.size, self.every_s = runner, size, float(every_s)
        self.arch = arch
        self.module = _backbone(arch)
        self.times: List[float] = []
        self.last = -math.inf

    def measure(self) -> float:
        v = self.runner.network_ms(self.module, self.size, passes=1)
        self.times.append(v)
        self.last = time.perf_counter()
        return v

    def due(self) -> None:
        """Time the reference when the last timing is older than ``every_s``."""
        if time.perf_counter() - self.last > self.every_s:
            self.measure()

    def record(self) -> dict:
        return {"arch": str(self.arch), "ms": statistics.median(self.times), "spread": max(self.times) / min(self.times),
                "timings": len(self.times)}


def _rounds_ms(runner: "_Runner", modules: Sequence, size, rounds: int, each=None) -> List[List[float]]:
    """Each module's medians over ``rounds`` round-robin rounds (every module once per round): a
    network's timings are spread over the whole measurement, so that one slow spell of the machine
    (tens of seconds on a shared VM) rarely covers all of them (see :func:`_typical_ms`).
    ``each(i)`` runs after each timing."""
    times: List[List[float]] = [[] for _ in modules]
    for _ in range(rounds):
        for i, m in enumerate(modules):
            times[i].append(runner.network_ms(m, size, passes=1))
            if each is not None:
                each(i)
    return times


def _typical_ms(times: Sequence[Sequence[float]]) -> List[float]:
    """Each network's time at the measurement's typical speed, from ``times[network][round]``.

    A shared VM changes speed in spells that cover a whole round-robin round (this 2-core AMD VM,
    2026-12-03: one round's networks all at 1.0x, the next all at 1.3x); every network of a round
    shares its spell, so the round's speed is the median, over the networks, of each one's time in it
    against its own median, and a network's time is the median over the rounds of its timings divided
    by their round's speed. In one check on that VM it brought the detectors' median error (at a common
    machine speed) from 5.3 % to 2.8 % against keeping each network's fastest round, which depends on
    whether the one fast round came (backbones: 4.2 % with the fastest round, 4.7 % with this). With
    one network or one round it is the plain median."""
    import numpy as np

    t = np.asarray(times, dtype=float)
    if t.ndim != 2 or t.size == 0:
        raise ValueError("times must be a non-empty [network][round] array")
    speed = np.median(t / np.median(t, axis=1, keepdims=True), axis=0)
    return [float(v) for v in np.median(t / speed[None, :], axis=1)]


def _join_module():
    """relu(branch + shortcut) as models.backbone.Residual ends, as a module of two inputs."""
    from torch import nn

    class Join(nn.Module):
        def forward(self, a, b):
            return (a + b).relu_()

    return Join()


def _neck_head_module(model, size):
    """A detector's neck and head alone on fixed C3..C5 maps of a width x height input (recorded
    beside the table): the maps are computed here, so neither runtime times the backbone."""
    import torch
    from torch import nn

    with torch.no_grad():
        feats = [f.clone() for f in model.eval().backbone(torch.randn(1, 3, size[1], size[0]))[1:]]

    class NeckHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            for i, f in enumerate(feats):
                self.register_buffer(f"c{i + 3}", f)

        def forward(self, x):
            return self.model.head(self.model.neck([self.c3, self.c4, self.c5]))

    return NeckHead()


def _onnx_op(op, kernel, stride, act, h, w, cin, cout, rs) -> bytes:
    """A one-operation ONNX model (Conv [+ Relu] or Add + Relu) with random weights."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])
    if op == "join":
        inputs = [x, helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cin, h, w])]
        nodes = [helper.make_node("Add", ["x", "y"], ["s"]), helper.make_node("Relu", ["s"], ["out"])]
        inits = []
    else:
        groups, co = (cin, cin) if op == "depthwise" else (1, cout)
        wt = (rs.standard_normal((co, cin // groups, kernel, kernel)) * 0.1).astype(np.float32)
        inits = [numpy_helper.from_array(wt, "W"), numpy_helper.from_array(np.zeros(co, np.float32), "B")]
        p = (kernel - 1) // 2
        conv_out = "c" if act else "out"
        nodes = [helper.make_node("Conv", ["x", "W", "B"], [conv_out], kernel_shape=[kernel, kernel],
                                  strides=[stride, stride], pads=[p, p, p, p], group=groups)]
        if act:
            nodes.append(helper.make_node("Relu", ["c"], ["out"]))
        inputs = [x]
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "op", inputs, [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _backbone(arch):
    from .models.backbone import Backbone

    return Backbone(arch, fused=True)


def _detector(arch, detector_name: str):
    from .models import build_detector, presets

    return build_detector(presets[detector_name].replace(name="latency", arch=str(arch), fused=True))


def measure_latency(arch, size=(640, 480), device="cpu", runtime="torch", threads=None, detector: Optional[str] = None,
                    warmup: int = 3, repeats: int = 15, target_s: float = 0.3) -> float:
    """The measured median milliseconds of `arch`'s backbone (BN folded, batch 1, width x height), or
    of the whole detector network (backbone, neck, head; no post-processing) with ``detector`` = a
    detector preset name."""
    env = current_environment(device, runtime, threads)
    runner = _Runner(env, warmup, repeats, target_s)
    module = _backbone(_arch(arch)) if detector is None else _detector(_arch(arch), detector)
    return runner.network_ms(module, tuple(size))


# -- building -------------------------------------------------------------------------------------
def default_cache_dir() -> str:
    return os.environ.get("PYDDSAR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "pyddsar", "latency")


def build_latency_table(space="damofd-mb", device: str = "cpu", runtime: str = "torch", size=(640, 480),
                        threads: Optional[int] = None, max_flops: Optional[int] = None, detector="default",
                        calibrate: int = 12, warmup: int = 2, repeats: int = 7, target_s: float = 0.05,
                        passes: int = 2, seed: int = 0, cache: Optional[str] = "default", reference_every_s: float = 10.0,
                        progress: Optional[Callable[[int, int, str], None]] = None) -> LatencyTable:
    """Measure a latency table of `space` on this machine (see the module doc).

    max_flops: MACs at 640x480 of the largest networks the table must cover (default: twice the
    space's smallest budget preset); grid points whose operation alone is over it are not measured.
    detector: a detector preset whose neck and head are measured too ("default": the space's
    DamoFD preset, None: backbone only). calibrate: whole backbones (and detectors) measured to fit
    scale, offset and the neck-and-head rest. cache: a folder where tables are kept by device,
    runtime, threads and settings (None: no cache); a cached table is returned without measuring.
    progress(done, total, what) after every measurement; passes: sweeps over the grid (alternating order),
    the fastest median of each point kept (other processes only ever add time); the whole networks are
    timed round-robin in max(3, passes) rounds, one after each equal slice of the sweep, at the
    typical speed (``_typical_ms``). reference_every_s: how
    often the space's seed backbone is timed between the measurements to follow the machine's speed;
    the table records the median and spread of those timings as ``reference`` (a warning when the
    spread is above 30 %: the table then carries that noise)."""
    space = resolve_space(space)
    space.native()
    size = _size(size)
    env = current_environment(device, runtime, threads)
    if detector == "default":
        detector = default_detector(space)
    if detector is not None:
        from .models import presets

        if detector not in presets or getattr(presets[detector], "backbone", None) != "ddsar":
            raise ValueError(f"detector must be a DamoFD detector preset (ddsar-...), got {detector!r}")
    for name, v, lo in (("calibrate", calibrate, 2), ("warmup", warmup, 0), ("repeats", repeats, 1), ("passes", passes, 1),
                        ("seed", seed, 0)):
        integer(v, name, low=lo)
    cap = int(max_flops) if max_flops is not None else _default_max_flops(space)
    if cap <= 0:
        raise ValueError(f"max_flops must be positive, got {max_flops!r}")
    reference_every_s = real(reference_every_s, "reference_every_s", low=0, low_open=True)
    runner = _Runner(env, warmup, repeats, target_s)
    speed = _SpeedReference(runner, _arch(space.seed) if space.seed else space.smallest(), size, reference_every_s)
    # onnxruntime (NCHWc, x86) folds each residual join into the conv before it: the table then
    # prices joins at nothing instead of timing an Add + Relu graph that a network never runs
    fused_joins = (env.runtime == "onnxruntime" and any(i[0] == "join" for i in latency_items(speed.arch, size))
                   and runner.ort_fuses_joins(speed.module, size))
    settings = {"max_flops": cap, "detector": detector, "calibrate": calibrate, "warmup": warmup, "repeats": repeats,
                "target_s": target_s, "passes": passes, "seed": seed, "reference_every_s": reference_every_s,
                # the channel points measured (tables of a coarser grid, before 2026-12-07, are not reused)
                "channel_grid": list(CHANNEL_GRID),
                # how torch tensors are laid out (pyddsar.Detector's); tables of other layouts are not reused
                "memory_format": "channels_last" if env.runtime == "torch" else "onnxruntime",
                # how one operation is timed: onnxruntime tables of the wall clock (before 2026-12-04) are not reused
                "op_timing": "wall" if env.runtime == "torch" else "kernels",
                # how joins are priced: timed alone, or fused into their conv (0 ms; before 2026-12-04: timed alone)
                "join_timing": "fused" if fused_joins else "alone",
                # freed memory kept mapped (pyddsar.heap): tables measured under glibc's defaults are not reused
                "heap_kept": keep_heap()}
    cache_path = None
    if cache is not None:
        cache_dir = default_cache_dir() if cache == "default" else cache
        ident = json.dumps([space.name, asdict(space), size, asdict(env), settings], sort_keys=True)
        cache_path = os.path.join(cache_dir, f"{space.name}-{env.runtime}-{env.device}-{size[0]}x{size[1]}-"
                                             f"{hashlib.sha256(ident.encode()).hexdigest()[:16]}.json")
        if os.path.isfile(cache_path):
            try:
                return load_latency_table(cache_path)
            except ValueError:
                pass  # a corrupt cache entry is measured again
    det_info = None
    if detector is not None:
        from .models import presets

        det_info = {"name": detector, "neck_channels": presets[detector].neck_channels, "levels": list(DETECTOR_LEVELS)}
    plan = plan_grids(space, size, cap, seed=seed, detector=det_info)
    points = []
    for key, cins, couts in plan:
        op, k, s, a, h, w = key
        for ci in cins:
            for co in couts:
                if op == "join" and fused_joins:
                    continue
                if _op_macs(op, k, s, h, w, ci, co) <= _cap_at(cap, size):
                    points.append((key, ci, co))
    candidates = sample_archs(space, 4 * calibrate, seed=seed + 1, max_flops=cap)
    network_rounds = max(3, passes)
    total = passes * len(points) + network_rounds * (calibrate * (2 if detector else 1)
                                                     + (1 if detector and env.runtime == "torch" else 0))
    done = 0

    def tick(what):
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, what)

    def tabled(values) -> LatencyTable:
        """The grids holding ``values[(key, cin, cout)]``, NaN at the points not measured."""
        grids = []
        for key, cins, couts in plan:
            op, k, s, a, h, w = key
            unmeasured = 0.0 if op == "join" and fused_joins else float("nan")
            grids.append(Grid(op, k, s, a, h, w, cins, couts,
                              tuple(values.get((key, ci, co), unmeasured) for ci in cins for co in couts)))
        return LatencyTable(space.name, size, env, tuple(grids), settings=settings)

    # the calibration networks: random ones inside the grids (known before measuring: the points are)
    planned = tabled({pt: 1.0 for pt in points})
    cal = [a for a in candidates if not planned.missing(a, detector=False)][:calibrate]
    if len(cal) < calibrate:
        raise ValueError(f"only {len(cal)} of {len(candidates)} random networks lie inside the measured grids; "
                         "give a larger max_flops")
    modules = [_backbone(a) for a in cal] + ([_detector(a, detector) for a in cal] if detector else [])
    if detector is not None and env.runtime == "torch":
        # the neck and head alone, on the torch runtime (an ONNX graph of constant inputs would be
        # folded away); the prediction itself uses the rest fitted on whole detectors either way
        modules.append(_neck_head_module(_detector(cal[0], detector), size))

    def each(i):
        speed.due()
        if i < len(cal):
            tick(f"backbone {cal[i]}")
        elif i < 2 * len(cal):
            tick(f"detector {cal[i - len(cal)]}")
        else:
            tick("neck and head")

    speed.measure()
    measured = {}
    # `passes` sweeps in alternating order, keeping each point's fastest median: contention from
    # other processes only ever adds time, and a burst of it rarely hits a point twice. The whole
    # networks are timed one round-robin round after each of `network_rounds` slices of the sweep,
    # so that the calibration, which sets the table's level, spans the build's minutes instead of
    # its last half-minute (this VM's speed moves by 0.8-1.15x from one minute to the next)
    sweep = [pt for p in range(passes) for pt in (points if p % 2 == 0 else points[::-1])]
    cuts = [0] + [round(len(sweep) * (r + 1) / network_rounds) for r in range(network_rounds)]
    times: List[List[float]] = [[] for _ in modules]
    for lo, hi in zip(cuts, cuts[1:]):
        for key, ci, co in sweep[lo:hi]:
            op, k, s, a, h, w = key
            speed.due()
            v = runner.op_ms(op, k, s, a, h, w, ci, co)
            measured[(key, ci, co)] = min(v, measured.get((key, ci, co), v))
            tick(f"{op} k{k} s{s} {ci}->{co} at {w}x{h}")
        for i, t in enumerate(_rounds_ms(runner, modules, size, 1, each)):
            times[i] += t
    raw = tabled(measured)
    # each whole network: its median at the typical speed over the rounds (_typical_ms)
    whole = _typical_ms(times)
    backbone_ms = whole[:len(cal)]
    det_ms = whole[len(cal):2 * len(cal)]
    neck_head = whole[2 * len(cal)] if len(whole) > 2 * len(cal) else None
    speed.measure()
    reference = speed.record()
    if reference["spread"] > 1.3:
        warnings.warn(f"the machine's speed varied by {100 * (reference['spread'] - 1):.0f} % while the latency table was "
                      "measured (the fastest and slowest timing of its reference network); predictions from it "
                      "carry that noise: build it on an idle machine", stacklevel=2)
    # calibration: scale and offset on whole backbones (least squares on relative error)
    sums = [raw.predict(arch) for arch in cal]
    scale, offset = _fit_relative(sums, backbone_ms)
    table = replace(raw, scale=scale, offset_ms=offset)
    calibration = {"archs": [str(a) for a in cal], "sum_ms": sums, "backbone_ms": backbone_ms}
    if detector is not None:
        lateral = [_lateral_ms(raw, a, det_info) for a in cal]
        rest = [d - (table.predict(a) + scale * lat) for a, d, lat in zip(cal, det_ms, lateral)]
        # the neck and head cannot cost less than nothing (a noisy calibration could say so)
        det_info = {**det_info, "rest_ms": max(0.0, statistics.median(rest)), "neck_head_ms": neck_head}
        calibration["detector_ms"] = det_ms
        table = replace(table, detector=det_info)
    table = replace(table, calibration=calibration, reference=reference)
    if cache_path is not None:
        try:
            os.makedirs(os.path.dirname(cache_path), exist_ok=True)
            table.save(cache_path)
        except OSError as e:  # a read-only home must not lose the measurement
            warnings.warn(f"latency table not cached ({e})", stacklevel=2)
    return table


def _lateral_ms(table: LatencyTable, arch: Arch, det: dict) -> float:
    """The neck's lateral 1x1 convs of ``arch``, from the table's grids (unscaled)."""
    sizes = _level_sizes(arch, table.size)
    return sum(table.lookup("conv", 1, 1, False, sizes[l][1], sizes[l][0], arch[l].out_channels, det["neck_channels"])
               for l in det["levels"])


def _fit_relative(x: Sequence[float], y: Sequence[float]) -> Tuple[float, float]:
    """(scale, offset) minimising sum(((scale * x + offset) - y) / y)^2, scale > 0."""
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    a = np.stack([x / y, 1 / y], 1)
    (scale, offset), *_ = np.linalg.lstsq(a, np.ones_like(y), rcond=None)
    if not scale > 0:  # degenerate calibration set: keep the plain sum
        return 1.0, 0.0
    return float(scale), float(offset)


def _size(size) -> Tuple[int, int]:
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 32 <= v <= 8192 for v in size)):
        raise ValueError(f"size must be (width, height) with 32..8192 pixels each, got {size!r}")
    return int(size[0]), int(size[1])


# -- checking a table -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictionCheck:
    arch: str
    predicted_ms: float
    measured_ms: float
    #: the machine's time now against when the table was built (1.2: 20 % slower), from the table's
    #: calibration networks measured in the same check; None when the table has none
    speed: Optional[float] = None

    @property
    def error(self) -> float:
        """(predicted - measured) / measured."""
        return (self.predicted_ms - self.measured_ms) / self.measured_ms

    @property
    def adjusted_error(self) -> float:
        """The error of the prediction at the machine's present speed: (predicted x speed - measured) /
        measured (the plain error without a speed)."""
        return (self.predicted_ms * (self.speed or 1.0) - self.measured_ms) / self.measured_ms


def _gauge(table: LatencyTable, detector: bool) -> Tuple[List[Arch], List[float]]:
    """The table's calibration networks and their times at the build (none for tables without)."""
    cal = table.calibration or {}
    ms = cal.get("detector_ms" if detector else "backbone_ms")
    if not cal.get("archs") or not ms or len(ms) != len(cal["archs"]):
        return [], []
    return [_arch(a) for a in cal["archs"]], [float(v) for v in ms]


def _measure_typical(table: LatencyTable, archs: Sequence[Arch], detector: bool, warmup: int, repeats: int,
                     rounds: int, progress=None, with_gauge: bool = True) -> Tuple[List[float], Optional[float]]:
    """(typical ms of each of `archs`, the machine's speed against the build): `archs` and the table's
    calibration networks timed together round-robin (_typical_ms), the speed the median ratio of the
    calibration networks' times now to theirs at the build."""
    env = current_environment(table.environment.device, table.environment.runtime, table.environment.threads)
    runner = _Runner(env, warmup, repeats, 0.3)
    gauge, gauge_ms = _gauge(table, detector) if with_gauge else ([], [])
    nets = list(archs) + gauge
    modules = [_detector(a, table.detector["name"]) if detector else _backbone(a) for a in nets]
    done = [0]

    def each(i):
        done[0] += 1
        if progress is not None:
            progress(done[0], rounds * len(modules))

    typical = _typical_ms(_rounds_ms(runner, modules, table.size, rounds, each))
    speed = statistics.median(now / then for now, then in zip(typical[len(archs):], gauge_ms)) if gauge else None
    return typical[:len(archs)], speed


def check_predictions(table: LatencyTable, archs: Sequence, detector: bool = False, warmup: int = 3,
                      repeats: int = 15, progress=None, rounds: int = 3) -> List[PredictionCheck]:
    """Predicted against measured latency of each of `archs` on this machine (the table's environment).

    The networks are timed round-robin, ``rounds`` medians of at least ``repeats`` runs each, together
    with the table's calibration networks; measured = each network's median at the check's typical
    speed (``_typical_ms``: a slow spell of a shared machine slows every network of a round alike).
    The calibration networks, measured again, give the machine's speed against the build
    (``PredictionCheck.speed``, a warning outside 1/1.15..1.15): the error a drifting machine adds on
    its own, which ``adjusted_error`` removes."""
    table.check_environment()
    rounds = integer(rounds, "rounds", low=1)
    if detector and table.detector is None:
        raise ValueError("this latency table has no neck and head measured (built with detector=None)")
    archs = [_arch(a) for a in archs]
    predicted = [table.predict(a, detector=detector) for a in archs]
    measured, speed = _measure_typical(table, archs, detector, warmup, repeats, rounds, progress)
    if speed is not None and not 1 / 1.15 <= speed <= 1.15:
        warnings.warn(f"the machine runs {'slower' if speed > 1 else 'faster'} now than when the latency table was built: "
                      f"its calibration networks take {speed:.2f}x their time then, so these measurements and the "
                      "table's predictions differ by that much besides the prediction's own error; "
                      "PredictionCheck.adjusted_error compares at today's speed, and recalibrate_latency_table re-anchors "
                      "the table", stacklevel=2)
    return [PredictionCheck(str(a), p, m, speed) for a, p, m in zip(archs, predicted, measured)]


def recalibrate_latency_table(table: LatencyTable, rounds: int = 5, warmup: int = 3, repeats: int = 15,
                              progress=None) -> LatencyTable:
    """The table re-anchored to the machine's speed now: its calibration networks (backbones, and
    detectors when it has a neck and head) measured again, and the prediction's scale, offset and
    neck-and-head rest multiplied by the median ratio of their times now to theirs at the build.
    Shared and virtual machines drift by 10-30 % between hours (docs/search.md), while the table's
    proportions hold; this takes seconds where a new table takes minutes."""
    table.check_environment()
    rounds = integer(rounds, "rounds", low=1)
    kinds = [False, True] if table.detector is not None else [False]
    if not all(_gauge(table, k)[0] for k in kinds):
        raise ValueError("this latency table records no calibration networks to measure again (build it anew)")
    cal = dict(table.calibration)
    ratios = []
    for k in kinds:
        gauge, then = _gauge(table, k)
        now, _ = _measure_typical(table, gauge, k, warmup, repeats, rounds, progress, with_gauge=False)
        ratios += [a / b for a, b in zip(now, then)]
        cal["detector_ms" if k else "backbone_ms"] = now
    speed = statistics.median(ratios)
    cal["speeds"] = list(cal.get("speeds", [])) + [speed]  # every re-anchoring, in order
    det = None if table.detector is None else {**table.detector, "rest_ms": table.detector["rest_ms"] * speed}
    return replace(table, scale=table.scale * speed, offset_ms=table.offset_ms * speed, detector=det, calibration=cal)


def error_summary(checks: Sequence[PredictionCheck]) -> dict:
    errs = sorted(abs(c.error) for c in checks)
    adjusted = sorted(abs(c.adjusted_error) for c in checks)
    speeds = [c.speed for c in checks if c.speed is not None]
    return {"count": len(errs), "median_abs_error": statistics.median(errs), "p90_abs_error": errs[int(0.9 * (len(errs) - 1))],
            "max_abs_error": errs[-1], "mean_error": statistics.fmean(c.error for c in checks),
            "speed": statistics.median(speeds) if speeds else None,
            "median_abs_adjusted_error": statistics.median(adjusted),
            "p90_abs_adjusted_error": adjusted[int(0.9 * (len(adjusted) - 1))]}


__all__ = ["LatencyTable", "Grid", "Environment", "build_latency_table", "load_latency_table", "measure_latency",
           "sample_archs", "plan_grids", "check_predictions", "recalibrate_latency_table", "error_summary",
           "current_environment", "latency_items"]
