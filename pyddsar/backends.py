"""Which native backends this build of pyddsar has."""

from . import _core


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
