"""The two general argument checks of pyddsar._validate: integer() and real()."""

import math
from fractions import Fraction

import numpy as np
import pytest

from pyddsar._validate import MAX_INT, int_at_least, integer, positive_int, real


# ------------------------------------------------------------------------------------------ integer
def test_integer_returns_a_plain_int():
    assert integer(5, "n") == 5
    assert integer(-3, "n") == -3
    for v in (np.int64(7), np.int32(7), np.uint8(7)):
        got = integer(v, "n")
        assert got == 7 and type(got) is int


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 2.0, 2.5, "3", [3], Fraction(3, 1), None])
def test_integer_refuses_what_is_not_an_integer(value):
    with pytest.raises(ValueError, match="^n must be an integer, got "):
        integer(value, "n")


def test_integer_bounds_are_inclusive():
    assert integer(3, "n", low=3, high=9) == 3
    assert integer(9, "n", low=3, high=9) == 9
    with pytest.raises(ValueError, match=r"^n must be an integer in 3\.\.9, got 2$"):
        integer(2, "n", low=3, high=9)
    with pytest.raises(ValueError, match=r"^n must be an integer in 3\.\.9, got 10$"):
        integer(10, "n", low=3, high=9)
    with pytest.raises(ValueError, match="^n must be an integer >= 5, got 4$"):
        integer(4, "n", low=5)
    with pytest.raises(ValueError, match="^n must be an integer <= 5, got 6$"):
        integer(6, "n", high=5)


def test_integer_says_positive_and_non_negative():
    assert integer(1, "batch", low=1) == 1
    with pytest.raises(ValueError, match="^batch must be a positive integer, got 0$"):
        integer(0, "batch", low=1)
    with pytest.raises(ValueError, match="^batch must be a positive integer at most 1024, got 1025$"):
        integer(1025, "batch", low=1, high=1024)
    with pytest.raises(ValueError, match="^batch must be a non-negative integer at most 8, got -1$"):
        integer(-1, "batch", low=0, high=8)
    assert integer(0, "seed", low=0) == 0
    with pytest.raises(ValueError, match="^seed must be a non-negative integer, got -1$"):
        integer(-1, "seed", low=0)
    with pytest.raises(ValueError, match="^seed must be a non-negative integer, got True$"):
        integer(True, "seed", low=0)


def test_integer_multiple_of():
    assert integer(64, "size", low=1, multiple_of=32) == 64
    assert integer(np.int64(96), "size", low=32, multiple_of=32) == 96
    with pytest.raises(ValueError, match="^size must be a positive multiple of 32, got 100$"):
        integer(100, "size", low=1, multiple_of=32)
    with pytest.raises(ValueError, match="^size must be a positive multiple of 32, got 0$"):
        integer(0, "size", low=1, multiple_of=32)
    with pytest.raises(ValueError, match="^size must be a multiple of 32 >= 32, got 16$"):
        integer(16, "size", low=32, multiple_of=32)


def test_integer_none_only_when_allowed():
    assert integer(None, "max_steps", low=1, allow_none=True) is None
    assert integer(4, "max_steps", low=1, allow_none=True) == 4
    with pytest.raises(ValueError, match=r"^max_steps must be a positive integer \(or None\), got 0$"):
        integer(0, "max_steps", low=1, allow_none=True)
    with pytest.raises(ValueError, match="^max_steps must be a positive integer, got None$"):
        integer(None, "max_steps", low=1)


def test_integer_message_names_argument_and_value():
    with pytest.raises(ValueError) as e:
        integer(np.int64(-4), "layers[2] filters", low=1)
    assert str(e.value).startswith("layers[2] filters must be a positive integer, got ")
    assert "-4" in str(e.value)


def test_integer_huge_values_are_compared_not_wrapped():
    assert integer(2 ** 70, "n") == 2 ** 70
    with pytest.raises(ValueError, match="at most 2147483647, got 18446744073709551618$"):
        integer(2 ** 64 + 2, "n", low=1, high=2 ** 31 - 1)


def test_shorthands():
    assert positive_int(np.int64(3), "stride") == 3
    with pytest.raises(ValueError, match="^stride must be a positive integer, got 0$"):
        positive_int(0, "stride")
    assert positive_int(MAX_INT, "filters") == MAX_INT
    with pytest.raises(ValueError, match="beyond the largest supported"):
        positive_int(MAX_INT + 1, "filters")
    assert int_at_least(5, "max_layers", 5) == 5
    with pytest.raises(ValueError, match="^max_layers must be an integer >= 5, got 4$"):
        int_at_least(4, "max_layers", 5)


# --------------------------------------------------------------------------------------------- real
def test_real_returns_a_float():
    for v, want in ((2, 2.0), (0.5, 0.5), (np.float32(0.25), 0.25), (np.int64(3), 3.0), (Fraction(1, 4), 0.25)):
        got = real(v, "x")
        assert got == want and type(got) is float


@pytest.mark.parametrize("value", [True, False, np.bool_(False), "0.5", None, [1.0], 1j])
def test_real_refuses_what_is_not_a_number(value):
    with pytest.raises(ValueError, match="^x must be a finite number, got "):
        real(value, "x")


def test_real_refuses_nan_always_and_inf_unless_told():
    with pytest.raises(ValueError, match="^x must be a finite number, got nan$"):
        real(math.nan, "x")
    with pytest.raises(ValueError, match=r"^x must be a number, got nan$"):
        real(float("nan"), "x", finite=False)
    with pytest.raises(ValueError, match="^x must be a finite number, got inf$"):
        real(math.inf, "x")
    with pytest.raises(ValueError, match="^x must be a finite number, got -inf$"):
        real(-math.inf, "x")
    with pytest.raises(ValueError, match="^x must be a finite number, got "):
        real(10 ** 400, "x")  # beyond the float range
    assert real(math.inf, "x", finite=False) == math.inf
    assert real(math.inf, "checkpoint_every_s", low=0, finite=False) == math.inf
    with pytest.raises(ValueError, match="^lr must be a positive number, got nan$"):
        real(math.nan, "lr", low=0, low_open=True, finite=False)
    with pytest.raises(ValueError, match="^lr must be a positive number, got inf$"):
        real(math.inf, "lr", low=0, low_open=True)


def test_real_closed_bounds():
    assert real(0, "p", low=0, high=1) == 0.0
    assert real(1, "p", low=0, high=1) == 1.0
    with pytest.raises(ValueError, match=r"^p must be a number in \[0, 1\], got 1.5$"):
        real(1.5, "p", low=0, high=1)
    with pytest.raises(ValueError, match=r"^p must be a number in \[0, 1\], got -0.1$"):
        real(-0.1, "p", low=0, high=1)
    with pytest.raises(ValueError, match="^ratio must be a number >= 1, got 0.5$"):
        real(0.5, "ratio", low=1)
    with pytest.raises(ValueError, match="^t must be a number <= 2, got 3$"):
        real(3, "t", high=2)


def test_real_open_bounds():
    assert real(1, "iou", low=0, high=1, low_open=True) == 1.0
    with pytest.raises(ValueError, match=r"^iou must be a number in \(0, 1\], got 0$"):
        real(0, "iou", low=0, high=1, low_open=True)
    assert real(1e-9, "tol", low=0, high=1e-3, low_open=True, high_open=True) == 1e-9
    with pytest.raises(ValueError, match=r"^tol must be a number in \(0, 0.001\), got 0.001$"):
        real(1e-3, "tol", low=0, high=1e-3, low_open=True, high_open=True)
    with pytest.raises(ValueError, match="^ms must be a number > 2, got 2$"):
        real(2, "ms", low=2, low_open=True)
    with pytest.raises(ValueError, match="^t must be a number < 2, got 2$"):
        real(2, "t", high=2, high_open=True)


def test_real_says_positive_and_non_negative():
    assert real(0.001, "lr", low=0, low_open=True) == 0.001
    with pytest.raises(ValueError, match="^lr must be a positive number, got 0$"):
        real(0, "lr", low=0, low_open=True)
    assert real(0, "eps", low=0) == 0.0
    with pytest.raises(ValueError, match="^eps must be a non-negative number, got -1$"):
        real(-1, "eps", low=0)


def test_real_none_only_when_allowed():
    assert real(None, "max_width_ratio", low=1, high=1024, allow_none=True) is None
    assert real(2, "max_width_ratio", low=1, high=1024, allow_none=True) == 2.0
    with pytest.raises(ValueError, match=r"^max_width_ratio must be a number in \[1, 1024\] \(or None\), got 0.5$"):
        real(0.5, "max_width_ratio", low=1, high=1024, allow_none=True)
    with pytest.raises(ValueError, match="^alpha must be a finite number, got None$"):
        real(None, "alpha")


def test_real_message_names_argument_and_value():
    with pytest.raises(ValueError) as e:
        real(np.float32(-2.5), "budgets_latency_ms[1]", low=0, low_open=True)
    assert str(e.value).startswith("budgets_latency_ms[1] must be a positive number, got ")
    assert "-2.5" in str(e.value)
