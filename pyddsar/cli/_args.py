"""Argument types shared by the subcommands: one syntax for each kind of value.

A resolution is ``WIDTHxHEIGHT`` (``--size 640x480``) in every subcommand; a square side may be written
``640`` or ``640x640``. ``--resolution`` survives as a deprecated alias where users may already call it.
"""

from __future__ import annotations

import argparse
import sys


def _ints(text: str, sep: str = "x"):
    parts = text.lower().split(sep)
    if not all(p.strip().isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def size_wxh(text: str) -> tuple:
    """``WxH`` -> (width, height), both at least 1."""
    v = _ints(text)
    if v is None or len(v) != 2 or min(v) < 1:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}")
    return v


def square_side(text: str) -> int:
    """``N`` or ``NxN`` -> N (a square network input or training crop)."""
    v = _ints(text)
    if v is None or len(v) not in (1, 2) or min(v) < 1:
        raise argparse.ArgumentTypeError(f"expected a side such as 640 (or 640x640), got {text!r}")
    if len(v) == 2 and v[0] != v[1]:
        raise argparse.ArgumentTypeError(f"this size is a square side; got {text!r} (width != height)")
    return v[0]


def shape_hwd(text: str) -> tuple:
    v = _ints(text)
    if v is None or len(v) != 3:
        raise argparse.ArgumentTypeError(f"expected HxWxD such as 5x5x1, got {text!r}")
    return v


def kernel(text: str):
    v = _ints(text)
    if v is None or len(v) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected K or KHxKW such as 3 or 3x2, got {text!r}")
    return v[0] if len(v) == 1 else v


def layer_spec(text: str) -> tuple:
    v = _ints(text, ",")
    if v is None or len(v) != 3:
        raise argparse.ArgumentTypeError(f"expected FILTERS,KERNEL,STRIDE such as 16,3,1, got {text!r}")
    return v


def lambdas(text: str):
    if text.strip().lower() == "widerface":
        return "widerface"
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'widerface' or five comma-separated numbers, got {text!r}") from None


class LegacySize(argparse.Action):
    """``WxH``, or the old two-number form ``W H`` with a deprecation warning (``--resolution``, and
    ``--size`` where it once took two numbers)."""

    def __init__(self, option_strings, dest, deprecated_option=False, **kwargs):
        kwargs.setdefault("nargs", "+")
        kwargs.setdefault("metavar", "WxH")
        self.deprecated_option = deprecated_option
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) not in (1, 2):
            parser.error(f"{option_string}: expected WIDTHxHEIGHT, got {' '.join(values)!r}")
        try:
            value = size_wxh("x".join(values))
        except argparse.ArgumentTypeError as e:
            parser.error(f"{option_string}: {e}")
        if self.deprecated_option or len(values) == 2:
            print(f"pyddsar: '{option_string} {' '.join(values)}' is deprecated; use --size {value[0]}x{value[1]}",
                  file=sys.stderr)
        setattr(namespace, self.dest, value)


def add_size(parser, default: tuple, what: str, legacy_pair: bool = False, resolution_alias: bool = False) -> None:
    """``--size WxH`` (and the deprecated ``--resolution``) into ``args.size``. ``legacy_pair``: also
    accept the old ``--size W H`` (only where no positional argument follows the option);
    ``resolution_alias``: where ``--resolution`` was the option's name."""
    help_text = f"{what} WIDTHxHEIGHT (default {default[0]}x{default[1]})"
    if legacy_pair:
        parser.add_argument("--size", action=LegacySize, default=default, help=help_text)
    else:
        parser.add_argument("--size", type=size_wxh, default=default, metavar="WxH", help=help_text)
    if resolution_alias:
        parser.add_argument("--resolution", dest="size", action=LegacySize, deprecated_option=True,
                            help="deprecated spelling of --size")


def add_arch_input(parser) -> None:
    """The architecture to read: a positional TEXT or ``--preset NAME`` (exactly one); see :func:`arch_of`."""
    g = parser.add_mutually_exclusive_group(required=True)
    g.add_argument("text", nargs="?", help="a structure string, table or JSON, a file holding one "
                   "(a search's best.json too) or - for stdin")
    g.add_argument("--preset", help="a backbone preset: ddsar-0.5g, ddsar-2.5g, ddsar-10g or ddsar-34g")


def arch_of(args):
    """The Arch :func:`add_arch_input` asked for; ValueError listing the presets for an unknown one."""
    from ..arch import Arch, presets

    if args.preset is None:
        return Arch.load(args.text)
    if args.preset not in presets:
        raise ValueError(f"unknown preset {args.preset!r}; use one of {', '.join(presets)}")
    return presets[args.preset]
