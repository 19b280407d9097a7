"""The `pyddsar` command line: one thin module per subcommand (parse, call the library, print).

Library modules never import this package (tests/test_layout.py checks it)."""

from __future__ import annotations

import argparse
import gc
import sys

from .. import __version__
from . import (arch, asfd, bench, data, detect, eval, export, lambdas, latency_table, regions, score,
               search, train)

# the order of `pyddsar --help`: the DDSAR chain first, then data, evaluation and ASFD
SUBCOMMANDS = (regions, arch, score, search, latency_table, train, detect, bench, export, lambdas, data, eval, asfd)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyddsar", description="Lightweight face detector design (DDSAR / DamoFD, ASFD).")
    p.add_argument("--version", action="version", version=f"pyddsar {__version__}")
    sub = p.add_subparsers(dest="command")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"pyddsar {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"pyddsar {args.command}: error: {msg}", file=sys.stderr)
        return 2


def run() -> None:
    """The process entry point (the `pyddsar` script, ``python -m pyddsar``): :func:`main`, then exit
    without the interpreter's final garbage collection. With torch loaded that collection walks
    millions of objects for nothing (the process ends; files are closed by then): 0.3 s of a 2.2 s
    `pyddsar detect IMAGE` here (docs/benchmarks.md). ``main`` itself stays side-effect free for
    callers that go on running."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()  # the remaining objects move to the permanent generation, which the final collection skips
    sys.exit(code)


if __name__ == "__main__":
    run()
