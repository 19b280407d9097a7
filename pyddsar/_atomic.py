"""Atomic file writes: every file pyddsar writes for later reading (checkpoints, model files,
results, plots) goes to a temporary file beside its target, is fsynced and renamed over it, so a
crash or a kill mid-write leaves the previous file intact and no half-written one."""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w"):
    """``with atomic_open(path, "wb") as f: ...``: `path` is replaced only if the block succeeds."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, mode) as f:
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
