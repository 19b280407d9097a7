"""Atomic file writes: every file pyddsar writes for later reading (checkpoints, model files,
results, plots) goes to a temporary file beside its target, is fsynced and renamed over it, so a
crash or a kill mid-write leaves the previous file intact and no half-written one."""

from __future__ import annotations

import contextlib
import os
import re

_TEMPORARY = re.compile(r"\.tmp-(\d+)$")


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", **kwargs):
    """``with atomic_open(path, "wb") as f: ...``: `path` is replaced only if the block succeeds
    (keyword arguments go to ``open``, e.g. ``newline=""`` for csv)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_text(path: str, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_bytes(path: str, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def torch_save(obj, path: str) -> None:
    import torch

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def remove_stale_temporaries(directory: str) -> list:
    """Remove the temporary files of :func:`atomic_open` in `directory` whose writing process no longer
    runs (a SIGKILL mid-write leaves one); returns the names removed."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _TEMPORARY.search(name)
        if not m or int(m.group(1)) == os.getpid() or _running(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.remove(os.path.join(directory, name))
            removed.append(name)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or a pid we cannot test: keep the file
    return True
