"""Small argument checks shared by the public functions; each raises ValueError saying what to change."""

import numbers


MAX_INT = (1 << 62)


def positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    if value > MAX_INT:  # native code takes int64: refuse here rather than a pybind TypeError
        raise ValueError(f"{name} = {value} is beyond the largest supported {MAX_INT}")
    return int(value)


def int_at_least(value, name: str, low: int = 1) -> int:
    """An integer (not a bool) >= ``low``; the one integer check of the public functions."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return int(value)


def pair(value, name: str) -> tuple:
    """An int k or a pair (a, b) of positive ints -> (a, b)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        v = positive_int(value, name)
        return v, v
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer or a pair of integers, got {value!r}") from None
    return positive_int(a, f"{name}[0]"), positive_int(b, f"{name}[1]")


def shape3(value, name: str) -> tuple:
    try:
        h, w, d = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (height, width, depth), got {value!r}") from None
    return positive_int(h, f"{name} height"), positive_int(w, f"{name} width"), positive_int(d, f"{name} depth")
