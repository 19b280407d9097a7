"""Which native backends this build of pyddsar has, and whether its CUDA kernels can run here."""

import functools
import os
from dataclasses import dataclass

from . import _core


@dataclass(frozen=True)
class CudaStatus:
    built: bool    # the extension has the CUDA kernels
    runtime: int   # the CUDA runtime they were built with (1000 * major + 10 * minor), 0 without
    driver: int    # the newest CUDA the installed driver supports, 0 without a driver
    devices: int   # GPUs the runtime sees
    reason: str    # why the kernels cannot run ("" when they can)

    @property
    def usable(self) -> bool:
        return not self.reason


def _version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


@functools.lru_cache(maxsize=1)
def cuda_status() -> CudaStatus:
    """Checked once per process: kernels built, a driver at least as new as their (static) runtime,
    a device. pyddsar's ops run CUDA tensors on the CPU kernels when this is not usable (one warning;
    ``PYDDSAR_CUDA=strict`` makes it an error instead)."""
    built = has_cuda()
    runtime, driver = (int(v) for v in _core.cuda_versions())
    devices = cuda_device_count() if built else 0
    if not built:
        reason = "this build of pyddsar has no CUDA kernels (nvcc was not found when it was built)"
    elif driver == 0:
        reason = "no CUDA driver is installed"
    elif driver < runtime:
        reason = (f"the CUDA driver supports CUDA {_version(driver)}, older than the CUDA {_version(runtime)} runtime "
                  f"pyddsar's kernels were built with; update the driver or rebuild pyddsar with an older nvcc")
    elif devices == 0:
        reason = "the CUDA runtime sees no GPU"
    else:
        reason = ""
    return CudaStatus(built, runtime, driver, devices, reason)


def cuda_strict() -> bool:
    return os.environ.get("PYDDSAR_CUDA", "").lower() == "strict"


def has_cuda() -> bool:
    """True when the extension was compiled with the CUDA kernels (nvcc was found at build time).

    This says nothing about the machine: see :func:`cuda_device_count` for visible GPUs.
    """
    return bool(_core.built_with_cuda())


def cuda_device_count() -> int:
    """Number of CUDA devices the built-in runtime sees (0 without a CUDA build, driver or GPU)."""
    return int(_core.cuda_device_count())


def backends() -> list:
    """The backends this build provides, e.g. ``["cpu"]`` or ``["cpu", "cuda"]``."""
    return ["cpu", "cuda"] if has_cuda() else ["cpu"]
