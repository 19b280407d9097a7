"""Argument checks shared by the public functions; each raises ValueError saying what was wrong and where.

Two general checks, :func:`integer` and :func:`real`; :func:`positive_int`, :func:`int_at_least`,
:func:`pair` and :func:`shape3` are shorthands built on them. Every message reads
``"{name} must be {what is allowed}, got {value!r}"``.
"""

import math
import numbers


MAX_INT = (1 << 62)  # the largest value positive_int lets through: native code takes int64


def _integer_text(low, high, multiple_of, allow_none) -> str:
    kind = "integer" if multiple_of is None else f"multiple of {multiple_of}"
    if low in (0, 1):  # "a positive integer", "a non-negative integer": the phrases most messages used
        text = f"a {'positive' if low == 1 else 'non-negative'} {kind}" + ("" if high is None else f" at most {high}")
    else:
        text = ("an " if multiple_of is None else "a ") + kind
        if low is not None and high is not None:
            text += f" in {low}..{high}"
        elif low is not None:
            text += f" >= {low}"
        elif high is not None:
            text += f" <= {high}"
    return text + (" (or None)" if allow_none else "")


def integer(value, name: str, low=None, high=None, multiple_of=None, allow_none: bool = False):
    """``value`` as an int: an Integral (numpy integers too), never a bool, in ``low``..``high``
    (both inclusive, each optional) and, given ``multiple_of``, a multiple of it. ``None`` is returned
    as it is with ``allow_none``, refused otherwise."""
    if value is None and allow_none:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or (low is not None and value < low) or (high is not None and value > high)
            or (multiple_of is not None and value % multiple_of != 0)):
        raise ValueError(f"{name} must be {_integer_text(low, high, multiple_of, allow_none)}, got {value!r}")
    return int(value)


def _real_text(low, high, low_open, high_open, finite, allow_none) -> str:
    if low is not None and high is not None:
        text = f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    elif low is not None:
        if low == 0:
            text = "a positive number" if low_open else "a non-negative number"
        else:
            text = f"a number {'>' if low_open else '>='} {low}"
    elif high is not None:
        text = f"a number {'<' if high_open else '<='} {high}"
    else:
        text = "a finite number" if finite else "a number"
    return text + (" (or None)" if allow_none else "")


def real(value, name: str, low=None, high=None, low_open: bool = False, high_open: bool = False,
         allow_none: bool = False, finite: bool = True):
    """``value`` as a float: a Real (an int, a float, a numpy scalar), never a bool, never NaN, finite
    unless ``finite=False``, >= ``low`` (> with ``low_open``) and <= ``high`` (< with ``high_open``),
    each bound optional. ``None`` is returned as it is with ``allow_none``, refused otherwise. The
    message says "finite" only where no bound is given ("a positive number" is finite already)."""
    if value is None and allow_none:
        return None
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if ok:
        try:
            v = float(value)
        except OverflowError:  # an int beyond the float range
            v = math.inf if value > 0 else -math.inf
        ok = (not math.isnan(v) and (math.isfinite(v) or not finite)
              and (low is None or (v > low if low_open else v >= low))
              and (high is None or (v < high if high_open else v <= high)))
    if not ok:
        raise ValueError(f"{name} must be {_real_text(low, high, low_open, high_open, finite, allow_none)}, got {value!r}")
    return v


def positive_int(value, name: str) -> int:
    """An integer >= 1 and at most MAX_INT, for values that go to native code."""
    value = integer(value, name, low=1)
    if value > MAX_INT:  # native code takes int64: refuse here rather than a pybind TypeError
        raise ValueError(f"{name} = {value} is beyond the largest supported {MAX_INT}")
    return value


def int_at_least(value, name: str, low: int = 1) -> int:
    """An integer (not a bool) >= ``low``."""
    return integer(value, name, low=low)


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
