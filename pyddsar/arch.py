"""Backbone architectures of the DamoFD search space (SPEC section 3).

An :class:`Arch` is an immutable sequence of five :class:`Block` s (a Conv stem, then stages C2..C5).
It reads and writes three forms that round-trip:

* the release's structure string, e.g. ``SuperConvK3BNRELU(3,32,2,1)SuperResIDWE1K7(32,64,2,40,1)...``;
* a table like the paper's (columns ``block kernel in out stride bottleneck expansion layers``);
* JSON, ``{"blocks": [{"type", "kernel", "in", "out", "stride", "bottleneck", "layers", "expansion"}]}``.

FLOPs (multiply-accumulates of every conv, shortcuts included, plus one per BN output element)
and parameters (conv weights + BN affine) are computed natively.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Mapping

from . import _core
from ._validate import integer

BLOCK_TYPES = ("Conv", "Res", "Btn", "MB")
KERNELS = (1, 3, 5, 7)
EXPANSIONS = (1, 2, 4, 6)
MAX_CHANNELS = 8192
MAX_LAYERS = 64
MAX_TEXT = 1 << 20  # characters of architecture text: refused up front beyond (a real one is a few kB)
MAX_RESOLUTION = _core.MAX_RESOLUTION  # per side (csrc/arch/arch.h); FLOPs beyond 2^63 are refused natively
TABLE_COLUMNS = ("block", "kernel", "in", "out", "stride", "bottleneck", "expansion", "layers")


@dataclass(frozen=True)
class Block:
    """One block: ``layers`` repetitions of its unit; only the first carries the stride.

    ``bottleneck`` is 0 for Conv blocks; ``expansion`` is 1 except for MB blocks.
    """

    type: str
    kernel: int
    in_channels: int
    out_channels: int
    stride: int
    bottleneck: int
    layers: int
    expansion: int = 1

    def check(self, where: str = "block") -> None:
        """Raise ValueError naming `where` and the field when this block is not valid on its own."""
        if self.type not in BLOCK_TYPES:
            raise ValueError(f"{where}: unknown block type {self.type!r}; use one of {', '.join(BLOCK_TYPES)}")
        for name in ("kernel", "in_channels", "out_channels", "stride", "bottleneck", "layers", "expansion"):
            integer(getattr(self, name), f"{where}: {name}")
        if self.kernel not in KERNELS:
            raise ValueError(f"{where}: kernel {self.kernel} is not one of {KERNELS}")
        for name in ("in_channels", "out_channels"):
            v = getattr(self, name)
            if not 1 <= v <= MAX_CHANNELS:
                raise ValueError(f"{where}: {name} = {v} must be in 1..{MAX_CHANNELS}")
        if self.stride not in (1, 2):
            raise ValueError(f"{where}: stride {self.stride} must be 1 or 2")
        if not 1 <= self.layers <= MAX_LAYERS:
            raise ValueError(f"{where}: layers = {self.layers} must be in 1..{MAX_LAYERS}")
        if self.type == "Conv":
            if self.bottleneck != 0:
                raise ValueError(f"{where}: a Conv block has no bottleneck (got {self.bottleneck})")
        elif not 1 <= self.bottleneck <= MAX_CHANNELS:
            raise ValueError(f"{where}: bottleneck = {self.bottleneck} must be in 1..{MAX_CHANNELS}")
        if self.type == "MB":
            if self.expansion not in EXPANSIONS:
                raise ValueError(f"{where}: expansion {self.expansion} is not one of {EXPANSIONS}")
        elif self.expansion != 1:
            raise ValueError(f"{where}: only MB blocks have an expansion (got {self.expansion})")

    # -- the release's block names -------------------------------------------------------------
    def structure(self) -> str:
        k, i, o, s, b, n = self.kernel, self.in_channels, self.out_channels, self.stride, self.bottleneck, self.layers
        if self.type == "Conv":
            return f"SuperConvK{k}BNRELU({i},{o},{s},{n})"
        if self.type == "Res":
            return f"SuperResK{k}K{k}({i},{o},{s},{b},{n})"
        if self.type == "Btn":
            return f"SuperResK1K{k}K1({i},{o},{s},{b},{n})"
        return f"SuperResIDWE{self.expansion}K{k}({i},{o},{s},{b},{n})"

    def to_dict(self) -> dict:
        return {
            "type": self.type,
            "kernel": self.kernel,
            "in": self.in_channels,
            "out": self.out_channels,
            "stride": self.stride,
            "bottleneck": self.bottleneck,
            "layers": self.layers,
            "expansion": self.expansion,
        }

    def _native_tuple(self) -> tuple:
        return (
            BLOCK_TYPES.index(self.type),
            self.kernel,
            self.in_channels,
            self.out_channels,
            self.stride,
            self.bottleneck,
            self.layers,
            self.expansion,
        )


# Block names of the release: (regex, builder from the match). Conv has 4 arguments, the rest 5.
_NAME_PATTERNS = (
    (re.compile(r"SuperConvK(\d+)BNRELU"), lambda m: ("Conv", int(m[1]), 1), 4),
    (re.compile(r"SuperResIDWE(\d+)K(\d+)"), lambda m: ("MB", int(m[2]), int(m[1])), 5),
    (re.compile(r"SuperResK1K(\d+)K1"), lambda m: ("Btn", int(m[1]), 1), 5),
    (re.compile(r"SuperResK(\d+)K(\d+)"), lambda m: ("Res", int(m[1]), 1, int(m[2])), 5),
)
_ARGS = re.compile(r"\(\s*(-?\d+(?:\s*,\s*-?\d+)*)\s*\)")


def _parse_structure(text: str) -> list:
    blocks, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            break
        for pattern, build, nargs in _NAME_PATTERNS:
            m = pattern.match(text, pos)
            if m:
                break
        else:
            snippet = text[pos : pos + 24]
            raise ValueError(
                f"at position {pos} (block {len(blocks)}): expected a block name such as SuperConvK3BNRELU, "
                f"SuperResK3K3, SuperResK1K3K1 or SuperResIDWE1K3, found {snippet!r}"
            )
        info = build(m)
        if info[0] == "Res" and info[1] != info[3]:
            raise ValueError(
                f"at position {pos} (block {len(blocks)}): {m[0]} mixes kernels; Res blocks use one kernel (SuperResK3K3)"
            )
        args_at = m.end()
        a = _ARGS.match(text, args_at)
        if not a:
            raise ValueError(
                f"at position {args_at} (block {len(blocks)}, {m[0]}): expected {nargs} integers in parentheses, "
                f"e.g. {m[0]}({', '.join(['...'] * nargs)})"
            )
        values = [int(v) for v in a[1].split(",")]
        if len(values) != nargs:
            raise ValueError(
                f"at position {args_at} (block {len(blocks)}, {m[0]}): expected {nargs} arguments "
                f"({'in,out,stride,layers' if nargs == 4 else 'in,out,stride,bottleneck,layers'}), got {len(values)}"
            )
        kind, kernel, expansion = info[0], info[1], info[2]
        if kind == "Conv":
            i, o, s, n = values
            b = 0
        else:
            i, o, s, b, n = values
        block = Block(kind, kernel, i, o, s, b, n, expansion)
        block.check(f"at position {pos} (block {len(blocks)}, {m[0]})")
        blocks.append(block)
        pos = a.end()
    return blocks


def _parse_table(text: str) -> list:
    blocks = []
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    for lineno, line in enumerate(lines, 1):
        cells = line.split()
        if cells and cells[0].lower() == "block":
            if tuple(c.lower() for c in cells) != TABLE_COLUMNS:
                raise ValueError(f"table line {lineno}: header must be {' '.join(TABLE_COLUMNS)}")
            continue
        if set(line.strip()) <= set("-+| "):
            continue  # a rule line
        if len(cells) != len(TABLE_COLUMNS):
            raise ValueError(
                f"table line {lineno}: expected {len(TABLE_COLUMNS)} columns ({' '.join(TABLE_COLUMNS)}), got {len(cells)}"
            )
        kind = cells[0]
        if kind not in BLOCK_TYPES:
            raise ValueError(f"table line {lineno}: unknown block {kind!r}; use one of {', '.join(BLOCK_TYPES)}")

        def num(col, default=None):
            v = cells[TABLE_COLUMNS.index(col)]
            if v == "-" and default is not None:
                return default
            try:
                return int(v)
            except ValueError:
                raise ValueError(f"table line {lineno}: column {col!r} must be an integer, got {v!r}") from None

        block = Block(
            kind,
            num("kernel"),
            num("in"),
            num("out"),
            num("stride"),
            num("bottleneck", 0),
            num("layers"),
            num("expansion", 1),
        )
        block.check(f"table line {lineno}")
        blocks.append(block)
    return blocks


def _parse_json(text: str) -> list:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON at position {e.pos}: {e.msg}") from None
    except RecursionError:
        raise ValueError("JSON architecture is nested too deeply") from None
    return _blocks_from_data(data)


def _blocks_from_data(data) -> list:
    if isinstance(data, dict) and "blocks" not in data:  # a search's best.json: its "arch", else "structure"
        if isinstance(data.get("arch"), dict):
            data = data["arch"]
        elif isinstance(data.get("structure"), str):
            return _parse_structure(data["structure"])
    if isinstance(data, dict) and "blocks" in data:
        data = data["blocks"]
    if not isinstance(data, list):
        raise ValueError('JSON architecture must be {"blocks": [...]} or a search\'s best.json')
    blocks = []
    keys = ("type", "kernel", "in", "out", "stride", "bottleneck", "layers")
    for i, d in enumerate(data):
        if not isinstance(d, dict):
            raise ValueError(f"blocks[{i}] must be an object")
        missing = [k for k in keys if k not in d and not (k == "bottleneck" and d.get("type") == "Conv")]
        if missing:
            raise ValueError(f"blocks[{i}] lacks {', '.join(missing)}")
        unknown = set(d) - set(keys) - {"expansion"}
        if unknown:
            raise ValueError(f"blocks[{i}] has unknown keys {sorted(unknown)}")
        block = Block(
            d["type"], d["kernel"], d["in"], d["out"], d["stride"], d.get("bottleneck", 0) or 0, d["layers"],
            d.get("expansion", 1),
        )
        block.check(f"blocks[{i}]")
        blocks.append(block)
    return blocks


@dataclass(frozen=True)
class Arch:
    """An immutable backbone: a Conv stem and four stages C2..C5 (strides 4..32 with stride-2 blocks)."""

    blocks: tuple
    _native: object = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        blocks = tuple(self.blocks)
        object.__setattr__(self, "blocks", blocks)
        if len(blocks) != 5:
            raise ValueError(f"an architecture has 5 blocks (a Conv stem + C2..C5), got {len(blocks)}")
        for i, b in enumerate(blocks):
            if not isinstance(b, Block):
                raise ValueError(f"block {i} must be a pyddsar.arch.Block, got {type(b).__name__}")
            where = f"block {i} ({b.structure() if b.type in BLOCK_TYPES else b.type})"
            b.check(where)
            if i == 0 and b.type != "Conv":
                raise ValueError(f"{where}: the stem (block 0) must be a Conv block")
            if i > 0 and b.type == "Conv":
                raise ValueError(f"{where}: stages C2..C5 (blocks 1-4) are Res, Btn or MB blocks")
            if i > 0 and b.in_channels != blocks[i - 1].out_channels:
                raise ValueError(
                    f"{where}: input channels {b.in_channels} do not match the previous block's output "
                    f"{blocks[i - 1].out_channels}"
                )
        object.__setattr__(self, "_native", _core.NativeArch([b._native_tuple() for b in blocks]))

    @classmethod
    def _from_native_tuples(cls, blocks) -> "Arch":
        """The Arch of the native layer's block tuples (type code, kernel, in, out, stride, bottleneck,
        layers, expansion), as the search and the sampler receive children."""
        return cls(tuple(Block(BLOCK_TYPES[t], k, i, o, s, b, n, e) for t, k, i, o, s, b, n, e in blocks))

    # -- parsing and printing ------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> "Arch":
        """Read a structure string, a paper-style table or JSON (detected from the text)."""
        if isinstance(text, Arch):
            return text
        if not isinstance(text, str):
            raise ValueError(f"Arch.parse expects a string, got {type(text).__name__}")
        if len(text) > MAX_TEXT:
            raise ValueError(f"architecture text of {len(text):,} characters is over the {MAX_TEXT:,} limit "
                             "(a structure string, table or best.json is a few kB)")
        stripped = text.strip()
        if not stripped:
            raise ValueError("empty architecture text")
        if stripped[0] in "{[":
            blocks = _parse_json(stripped)
        elif stripped.startswith("Super"):
            blocks = _parse_structure(text)
        else:
            blocks = _parse_table(stripped)
        return cls(tuple(blocks))

    @classmethod
    def load(cls, source) -> "Arch":
        """An Arch from anything that names one: an Arch; a dict (``{"blocks": [...]}`` or a search's
        best.json); a path to a file holding a structure string, a table, JSON or best.json; ``"-"``
        for standard input; or the text itself (as :meth:`parse`)."""
        if isinstance(source, Arch):
            return source
        if isinstance(source, dict):
            return cls(tuple(_blocks_from_data(source)))
        if isinstance(source, os.PathLike):
            source = os.fspath(source)
        if not isinstance(source, str):
            raise ValueError(f"expected a pyddsar.Arch, a dict, a path or architecture text, got {type(source).__name__}")
        if source == "-":
            return cls.parse(sys.stdin.read(MAX_TEXT + 1))
        stripped = source.strip()
        looks_like_text = not stripped or stripped[0] in "{[" or stripped.startswith("Super") or "\n" in stripped
        if not looks_like_text and os.path.isfile(source):
            if os.path.getsize(source) > MAX_TEXT:
                raise ValueError(f"{source} has {os.path.getsize(source):,} bytes, over the {MAX_TEXT:,} of an "
                                 "architecture file")
            try:
                with open(source, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as e:
                raise ValueError(f"cannot read {source}: {e}") from None
            try:
                return cls.parse(text)
            except ValueError as e:
                raise ValueError(f"{source}: {e}") from None
        if not looks_like_text and (os.sep in source or source.endswith((".json", ".txt"))):
            raise ValueError(f"no such file: {source}")
        return cls.parse(source)

    @classmethod
    def from_blocks(cls, blocks: Iterable[Block]) -> "Arch":
        return cls(tuple(blocks))

    def __str__(self) -> str:
        return "".join(b.structure() for b in self.blocks)

    def to_table(self) -> str:
        rows = [TABLE_COLUMNS]
        for b in self.blocks:
            rows.append(
                (
                    b.type,
                    str(b.kernel),
                    str(b.in_channels),
                    str(b.out_channels),
                    str(b.stride),
                    str(b.bottleneck) if b.type != "Conv" else "-",
                    str(b.expansion) if b.type == "MB" else "-",
                    str(b.layers),
                )
            )
        widths = [max(len(r[c]) for r in rows) for c in range(len(TABLE_COLUMNS))]
        return "\n".join("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in rows)

    def to_dict(self) -> dict:
        return {"blocks": [b.to_dict() for b in self.blocks]}

    def to_json(self, indent=None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def __len__(self) -> int:
        return len(self.blocks)

    def __iter__(self):
        return iter(self.blocks)

    def __getitem__(self, i):
        return self.blocks[i]

    def replace(self, index: int, **changes) -> "Arch":
        """A copy with block `index` changed (fields of :class:`Block`); channels are not re-chained."""
        import dataclasses

        blocks = list(self.blocks)
        blocks[index] = dataclasses.replace(blocks[index], **changes)
        return Arch(tuple(blocks))

    # -- cost ---------------------------------------------------------------------------------
    def flops(self, resolution=(640, 480)) -> int:
        """Multiply-accumulates at `resolution` = (width, height): convs (shortcuts included) plus one
        per BN output element."""
        w, h = _resolution(resolution)
        return self._native.flops(w, h)

    def params(self) -> int:
        """Parameters: conv weights (no biases) and BN weight + bias."""
        return self._native.params()

    def flops_breakdown(self, resolution=(640, 480)) -> list:
        """Per block: ``{"block": i, "name": structure, "flops": ..., "params": ...}``."""
        w, h = _resolution(resolution)
        return [
            {"block": i, "name": b.structure(), "flops": f, "params": p}
            for i, (b, (f, p)) in enumerate(zip(self.blocks, self._native.breakdown(w, h)))
        ]

    def convs(self, resolution=(640, 480)) -> list:
        """Every conv of the expanded network in forward order (dicts with cin, cout, kernel, stride,
        groups, h_in, w_in, h_out, w_out, shortcut, block)."""
        w, h = _resolution(resolution)
        return self._native.convs(w, h)


def _resolution(resolution) -> tuple:
    try:
        w, h = resolution
    except (TypeError, ValueError):
        raise ValueError(f"resolution must be (width, height), got {resolution!r}") from None
    return (integer(w, "resolution width", low=1, high=MAX_RESOLUTION),
            integer(h, "resolution height", low=1, high=MAX_RESOLUTION))


_PRESET_STRINGS = {
    "ddsar-0.5g": "SuperConvK3BNRELU(3,32,2,1)SuperResIDWE1K3(32,32,2,8,1)SuperResIDWE1K7(32,64,2,40,1)"
    "SuperResIDWE1K7(64,120,2,40,2)SuperResIDWE1K5(120,160,2,120,1)",
    "ddsar-2.5g": "SuperConvK3BNRELU(3,24,2,2)SuperResK3K3(24,32,2,24,4)SuperResK3K3(32,56,2,16,4)"
    "SuperResK5K5(56,88,2,8,5)SuperResK1K5K1(88,128,2,8,4)",
    "ddsar-10g": "SuperConvK3BNRELU(3,56,2,2)SuperResK1K3K1(56,80,2,40,5)SuperResK1K5K1(80,112,2,32,5)"
    "SuperResK1K3K1(112,168,2,16,4)SuperResK7K7(168,256,2,8,1)",
    "ddsar-34g": "SuperConvK3BNRELU(3,56,2,2)SuperResK1K3K1(56,224,2,80,5)SuperResK1K3K1(224,488,2,40,6)"
    "SuperResK1K3K1(488,624,2,72,4)SuperResK1K7K1(624,816,2,24,3)",
}

#: The published searched backbones (DamoFD tables 4-7), read-only.
presets: Mapping[str, Arch] = MappingProxyType({k: Arch.parse(v) for k, v in _PRESET_STRINGS.items()})
