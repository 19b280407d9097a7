"""Keep freed CPU memory mapped between forward passes (glibc only).

torch's CPU tensors come from malloc. With glibc's defaults, a large freed block may be unmapped or
trimmed back to the system (its mmap threshold and trim threshold adapt to the sizes seen), so the
next forward pass maps the same memory again and faults every page of it in. Whether that happens
depends on a network's pattern of activation sizes: on the 2-core AMD VM here (2026-12-03) a searched
DamoFD backbone at 640x480 faulted about 6,000 pages per forward pass and took 32.6 ms, 20-24 ms once
the heap was kept (in about 1 process in 4 it faulted none under the defaults either: which arena a
worker thread gets is a race); a random backbone of the space faulted none (docs/deploy.md, "The CPU
heap"). Intel's PyTorch CPU tuning guide makes the same point and recommends jemalloc or
tcmalloc; this is the glibc-only equivalent that needs no preloaded library.

:func:`keep_heap` sets M_TRIM_THRESHOLD (1 GiB: free() never trims the heap) and M_MMAP_THRESHOLD
(32 MiB, glibc's largest: blocks below it come from the heap and are reused) once per process. The
process then keeps its peak heap (tens of MB for these detectors). `pyddsar.Detector` and the latency
tables call it so that what is predicted, measured and deployed run alike.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30
MMAP_THRESHOLD = 32 << 20  # glibc refuses more (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)

_state = {"applied": None}


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def keep_heap() -> bool:
    """Make glibc keep freed memory for reuse (see the module doc); True when it is set (now or
    before), False where the C library is not glibc (nothing changes there)."""
    if _state["applied"] is None:
        libc = _glibc()
        ok = libc is not None and hasattr(libc, "mallopt")
        if ok:
            ok = bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) & bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        _state["applied"] = ok
    return bool(_state["applied"])


def heap_kept() -> bool:
    """Whether :func:`keep_heap` has set this process's allocator."""
    return bool(_state["applied"])


__all__ = ["keep_heap", "heap_kept"]
