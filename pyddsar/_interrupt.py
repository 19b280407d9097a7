"""Ctrl-C that waits for the end of a training step.

A KeyboardInterrupt raised in the middle of a step can land between two optimiser updates, and a
checkpoint written then would hold a state that no uninterrupted run ever had. Inside
``DeferredInterrupt`` a SIGINT only sets ``requested``; the loop checks it between steps, saves and
raises KeyboardInterrupt itself. Outside the main thread (where Python cannot install signal
handlers) it changes nothing and ``requested`` stays False.
"""

from __future__ import annotations

import signal
import threading


class DeferredInterrupt:
    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame) -> None:
        self.requested = True

    def __enter__(self) -> "DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> bool:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False
