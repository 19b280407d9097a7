"""The progress bars of the subcommands: :func:`bar` for a library call that takes ``progress(done,
total)`` (`eval --model`, `lambdas`, `bench`), :class:`PhasedBar` for one that takes
``progress(done, total, phase=..., **info)`` (the `asfd` steps); tqdm on stderr, off with
``--no-progress`` / ``--quiet``."""

from __future__ import annotations

import sys
from contextlib import contextmanager


def add_flag(parser, what: str = "no progress bar on stderr") -> None:
    """``--no-progress`` (and its spelling ``--quiet``) into ``args.no_progress``."""
    parser.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true", help=what)


@contextmanager
def bar(desc: str, unit: str, enabled: bool = True, stream=None):
    """Yields the ``progress(done, total)`` callback drawing a tqdm bar on `stream` (stderr). The bar
    appears with the first call (an error before any work prints no empty bar) and is closed on
    leaving, errors included."""
    state = {"bar": None}

    def progress(done: int, total: int) -> None:
        if not enabled:
            return
        b = state["bar"]
        if b is None:
            from tqdm import tqdm

            b = state["bar"] = tqdm(desc=desc, unit=unit, total=total, dynamic_ncols=True,
                                    file=stream if stream is not None else sys.stderr)
        b.total = total
        b.update(max(0, done - b.n))

    try:
        yield progress
    finally:
        if state["bar"] is not None:
            state["bar"].close()


class PhasedBar:
    """``progress(done, total, phase=None, **info)`` for library calls with several phases (the
    ``pyddsar asfd`` steps): a tqdm bar on `stream` (stderr) per phase, described by the phase and
    with the ``info`` values (None left out) after it; a new phase closes the previous bar.
    :meth:`write` prints a log line above the open bar. ``enabled=False`` draws nothing."""

    def __init__(self, unit: str = "it", enabled: bool = True, stream=None):
        self.unit, self.enabled = unit, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.bar, self.phase = None, None

    def __call__(self, done: int, total: int, phase=None, **info) -> None:
        if not self.enabled:
            return
        if self.bar is None or phase != self.phase:
            from tqdm import tqdm

            self.close()
            self.bar = tqdm(desc=phase, unit=self.unit, total=total, dynamic_ncols=True, file=self.stream)
            self.phase = phase
        self.bar.total = total
        shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in info.items() if v is not None}
        if shown:
            self.bar.set_postfix(shown, refresh=False)
        self.bar.update(max(0, done - self.bar.n))

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar, self.phase = None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
