"""Theorem 1 counts against a brute force written plainly here, closed forms and SPEC numbers."""

import itertools
import json
import math
import os
import re
import random

import numpy as np
import pytest

import pyddsar


# ---------------------------------------------------------------- the brute-force reference
def receptive_fields(h0, w0, d0, f1, f2, s):
    """S_ij of SPEC section 1 as Python sets of (row, col, channel), one per output cell."""
    h1, w1 = (h0 - f1) // s + 1, (w0 - f2) // s + 1
    return [
        {(a + i * s, b + j * s, c) for a in range(f1) for b in range(f2) for c in range(d0)}
        for i in range(h1)
        for j in range(w1)
    ]


def brute_force_regions(h0, w0, d0, f1, f2, s, d1):
    """sum over every t in the box (t_ij <= min(d1, |S_ij|)) that satisfies the constraint of every
    non-empty subset J, of prod C(d1, t_ij). No structure is used."""
    fields = receptive_fields(h0, w0, d0, f1, f2, s)
    n = len(fields)
    subsets = [mask for mask in range(1, 1 << n)]
    caps = np.array([len(set().union(*(fields[i] for i in range(n) if mask >> i & 1))) for mask in subsets])
    member = np.array([[mask >> i & 1 for i in range(n)] for mask in subsets], dtype=np.int64)
    top = min(d1, f1 * f2 * d0)
    box = np.array(list(itertools.product(range(top + 1), repeat=n)), dtype=np.int64)
    feasible = ((box @ member.T) <= caps).all(axis=1)
    binom = [math.comb(d1, t) for t in range(top + 1)]
    return sum(math.prod(binom[t] for t in row) for row in box[feasible].tolist())


def random_small_layer(rng):
    """A random layer with at most 6 output cells: 1-D or 2-D, overlapping or not."""
    while True:
        d0 = rng.randint(1, 3)
        d1 = rng.randint(1, 4)
        s = rng.randint(1, 3)
        one_d = rng.random() < 0.4
        f1 = 1 if one_d else rng.randint(1, 3)
        f2 = rng.randint(1, 3)
        h1 = 1 if one_d else rng.randint(1, 3)
        w1 = rng.randint(1, 6)
        if h1 * w1 > 6:
            continue
        # input size that gives exactly h1 x w1 outputs (plus a possible unused remainder)
        h0 = f1 + (h1 - 1) * s + rng.randint(0, s - 1)
        w0 = f2 + (w1 - 1) * s + rng.randint(0, s - 1)
        return h0, w0, d0, f1, f2, s, d1


RANDOM_LAYERS = []
_rng = random.Random(20261122)
while len(RANDOM_LAYERS) < 220:
    layer = random_small_layer(_rng)
    if layer not in RANDOM_LAYERS:
        RANDOM_LAYERS.append(layer)


@pytest.mark.parametrize("h0,w0,d0,f1,f2,s,d1", RANDOM_LAYERS)
def test_matches_brute_force(h0, w0, d0, f1, f2, s, d1):
    expected = brute_force_regions(h0, w0, d0, f1, f2, s, d1)
    got = pyddsar.linear_regions((h0, w0, d0), kernel=(f1, f2), stride=s, filters=d1)
    assert got == expected
    assert pyddsar.log_linear_regions((h0, w0, d0), (f1, f2), s, d1) == pytest.approx(math.log(expected), rel=1e-12, abs=1e-12)


def test_random_layers_cover_the_requested_space():
    # the sample must contain 1-D and 2-D, overlapping and not, every d0, d1 and stride
    assert {layer[2] for layer in RANDOM_LAYERS} == {1, 2, 3}
    assert {layer[6] for layer in RANDOM_LAYERS} == {1, 2, 3, 4}
    assert {layer[5] for layer in RANDOM_LAYERS} == {1, 2, 3}
    assert any(layer[0] == layer[3] == 1 for layer in RANDOM_LAYERS)
    assert any(layer[3] > 1 and layer[5] < layer[3] for layer in RANDOM_LAYERS)  # overlapping rows
    assert any(layer[5] >= max(layer[3], layer[4]) for layer in RANDOM_LAYERS)  # disjoint windows
    assert any(((l[0] - l[3]) // l[5] + 1) * ((l[1] - l[4]) // l[5] + 1) == 6 for l in RANDOM_LAYERS)


# ---------------------------------------------------------------- published numbers
@pytest.mark.parametrize(
    "w0,f,s,d1,expected",
    [(4, 2, 1, 2, 55), (5, 3, 1, 2, 63), (5, 2, 1, 3, 1159), (6, 2, 1, 2, 725), (6, 2, 1, 3, 6160), (7, 3, 1, 2, 945)],
)
def test_spec_one_dimensional_numbers(w0, f, s, d1, expected):
    assert pyddsar.linear_regions((1, w0, 1), kernel=(1, f), stride=s, filters=d1) == expected
    # the same layer laid out vertically
    assert pyddsar.linear_regions((w0, 1, 1), kernel=(f, 1), stride=s, filters=d1) == expected


@pytest.mark.parametrize(
    "kernel,stride,expected",
    [(3, 1, 560134574838141912), (5, 1, 9223358127303041792), (7, 1, 2**63), (7, 2, 2**63), (3, 2, 9223252118611379552)],
)
def test_spec_probe_numbers(kernel, stride, expected):
    side = kernel + 2 * stride  # a 3x3 output grid
    got = pyddsar.linear_regions((side, side, 1), kernel=kernel, stride=stride, filters=7)
    assert got == expected
    assert got > 2**53  # beyond what a float holds exactly: the int must be exact
    assert pyddsar.log_linear_regions((side, side, 1), kernel, stride, 7) == pytest.approx(math.log(expected), rel=1e-14)


def test_theorem_limit_example_counts_256():
    # SPEC section 1: the formula gives 256 where a concrete layer has 255
    assert pyddsar.linear_regions((3, 3, 1), kernel=2, stride=1, filters=2) == 256


# ---------------------------------------------------------------- closed forms
def pascanu(n0, d1):
    return sum(math.comb(d1, t) for t in range(min(n0, d1) + 1))


@pytest.mark.parametrize("f1,f2,d0,d1", [(1, 1, 1, 1), (3, 3, 3, 7), (2, 5, 2, 40), (7, 7, 3, 200), (1, 3, 64, 150)])
def test_single_cell_is_pascanu(f1, f2, d0, d1):
    assert pyddsar.linear_regions((f1, f2, d0), (f1, f2), 1, d1) == pascanu(f1 * f2 * d0, d1)


@pytest.mark.parametrize(
    "h0,w0,d0,k,s,d1", [(9, 9, 1, 3, 3, 7), (8, 12, 2, 2, 2, 9), (20, 20, 3, 3, 4, 30), (64, 64, 1, 2, 2, 5)]
)
def test_disjoint_windows_closed_form(h0, w0, d0, k, s, d1):
    cells = ((h0 - k) // s + 1) * ((w0 - k) // s + 1)
    assert pyddsar.linear_regions((h0, w0, d0), k, s, d1) == pascanu(k * k * d0, d1) ** cells


def test_independent_rows_multiply():
    # rows of windows that never share an input row are independent parts (SPEC section 1)
    one_row = pyddsar.linear_regions((2, 6, 1), kernel=2, stride=(2), filters=3)
    assert pyddsar.linear_regions((6, 6, 1), kernel=2, stride=2, filters=3) == one_row**3
    strip = pyddsar.linear_regions((1, 9, 2), kernel=(1, 3), stride=1, filters=4)
    assert pyddsar.linear_regions((5, 9, 2), kernel=(1, 3), stride=1, filters=4) == strip**5


def test_filters_beyond_window_size_saturate_to_powers_of_two():
    # with d1 <= every union size the constraint set is the whole box: (2^d1)^cells
    assert pyddsar.linear_regions((4, 4, 3), 3, 1, 3) == (2**3) ** 4


def test_one_dimensional_long_strip_against_plain_dp():
    # a 1-D layer of 40 cells is far beyond the brute force; compare with a plain 1-D recursion
    # written here: the constraints of a 1-D layer with stride s < f are the runs of consecutive
    # cells, and a run from cell a to cell b holds (b-a)*s + f inputs. Track, for each prefix, the
    # tightest slack of every run ending at the current cell.
    w0, f, s, d1 = 41, 2, 1, 3
    n = (w0 - f) // s + 1
    from functools import lru_cache

    @lru_cache(maxsize=None)
    def count(i, slack):  # slack: min over runs ending at i-1 of (cap - sum), None at the start
        if i == n:
            return 1
        total = 0
        for t in range(min(d1, f) + 1):
            # runs ending at i: the single cell (cap f) or a run extended by one cell (+s inputs)
            new = f - t
            if slack is not None:
                new = min(new, slack + s - t)
            if new < 0:
                continue
            total += math.comb(d1, t) * count(i + 1, new)
        return total

    assert pyddsar.linear_regions((1, w0, 1), (1, f), s, d1) == count(0, None)


# ---------------------------------------------------------------- Theorem 2
def test_lower_bound_matches_the_formula():
    layers = [(8, 3, 1), (6, 3, 2), (5, 2, 1)]
    h, w, d0 = 11, 12, 2
    bound = pyddsar.linear_regions_lower_bound(layers, (h, w, d0))
    h1, w1 = h - 2, w - 2            # after layer 1
    h2, w2 = (h1 - 3) // 2 + 1, (w1 - 3) // 2 + 1  # after layer 2
    last = pyddsar.linear_regions((h2, w2, d0), 2, 1, 5)
    expected = last * (8 // d0) ** (h1 * w1 * d0) * (6 // d0) ** (h2 * w2 * d0)
    assert bound.value == expected
    assert bound.log == pytest.approx(math.log(expected), rel=1e-12)


def test_lower_bound_of_one_layer_is_theorem_1():
    bound = pyddsar.linear_regions_lower_bound([(7, 3, 1)], (5, 5, 1))
    assert bound.value == 560134574838141912


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "args,fragment",
    [
        (((0, 5, 1), 3, 1, 7), "input_shape"),
        (((5, -5, 1), 3, 1, 7), "input_shape"),
        (((5, 5, 1), 7, 1, 7), "larger than the input"),
        (((5, 5, 1), 3, 0, 7), "stride"),
        (((5, 5, 1), 3, 1, 0), "filters"),
        (((5, 5), 3, 1, 7), "input_shape"),
        (((5, 5, 1), (3, 3, 3), 1, 7), "kernel"),
        (((5.5, 5, 1), 3, 1, 7), "input_shape"),
    ],
)
def test_bad_input_raises_value_error(args, fragment):
    with pytest.raises(ValueError, match=fragment):
        pyddsar.linear_regions(*args)
    with pytest.raises(ValueError, match=fragment):
        pyddsar.log_linear_regions(*args)


def test_absurd_grids_are_refused_quickly():
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match="too large|states|frontier"):
        pyddsar.linear_regions((200, 200, 3), kernel=5, stride=1, filters=64)
    with pytest.raises(ValueError, match="too large|states|frontier"):
        pyddsar.linear_regions((12, 12, 1), kernel=3, stride=1, filters=7, max_states=1000)
    assert time.perf_counter() - start < 30  # refused, not computed for hours


def test_lower_bound_bad_input():
    with pytest.raises(ValueError, match="layers"):
        pyddsar.linear_regions_lower_bound([], (5, 5, 1))
    with pytest.raises(ValueError, match="fewer than the input depth"):
        pyddsar.linear_regions_lower_bound([(2, 1, 1), (3, 1, 1)], (5, 5, 3))
    with pytest.raises(ValueError, match=r"layers\[0\]"):
        pyddsar.linear_regions_lower_bound([(2, 1)], (5, 5, 3))


def test_huge_lower_bounds_give_their_log_only_on_request():
    # a 1x1 layer of 1024 filters on 1700x1700x3, then one cell: about 7.3e7 bits
    layers = [(1024, 1, 1), (7, 1700, 1)]
    with pytest.raises(ValueError, match="exact=False"):
        pyddsar.linear_regions_lower_bound(layers, (1700, 1700, 3))
    bound = pyddsar.linear_regions_lower_bound(layers, (1700, 1700, 3), exact=False)
    assert bound.value is None
    expected = 1700 * 1700 * 3 * math.log(1024 // 3) + math.log(2**7)  # last layer: one cell, 7 <= n0
    assert bound.log == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("side,d1,k", [(40, 7, 1), (97, 5, 1), (150, 9, 1), (61, 12, 2), (300, 3, 1)])
def test_separable_layers_are_exact_powers(side, d1, k):
    # windows that share no input: N = (sum_{t <= n0} C(d1, t)) ** cells, checked against Python's int
    # (these products run through the Karatsuba multiply: thousands of limbs)
    n0 = k * k
    single = sum(math.comb(d1, t) for t in range(min(d1, n0) + 1))
    cells = (side // k) ** 2
    assert pyddsar.linear_regions((side - side % k, side - side % k, 1), k, k, d1) == single ** cells


def test_binomials_only_up_to_the_window():
    # one cell of one input sees n0 = 1: C(d1, 0) + C(d1, 1), without building all d1 + 1 binomials
    assert pyddsar.linear_regions((1, 1, 1), 1, 1, 100000) == 100001
    assert pyddsar.linear_regions((2, 2, 1), 2, 1, 99999) == 1 + 99999 + math.comb(99999, 2) + math.comb(99999, 3) + math.comb(99999, 4)


def test_ctrl_c_stops_a_long_count_within_a_second(run_python):
    import signal
    import time

    # (8, 8, 1), k 3, 7 filters: accepted (estimated 25 s; a sanitizer build takes longer), 45 s of work here
    proc = run_python("-c", "import sys, pyddsar\nprint('started', flush=True)\n"
                      "try:\n    pyddsar.linear_regions((8, 8, 1), 3, 1, 7, max_seconds=600)\n"
                      "except KeyboardInterrupt:\n    print('interrupted', flush=True)\n    sys.exit(7)\n", popen=True)
    assert proc.stdout.readline().strip() == "started"
    time.sleep(1.5)  # past the estimate, well inside the dynamic program
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 7 and "interrupted" in out, err
    assert time.monotonic() - sent < 1.5


def test_memory_is_counted_for_everything_the_count_holds():
    # rows, big-integer weights and hash slots of both tables: a small limit is met early and named
    # (the dynamic program itself, past the up-front estimate)
    with pytest.raises(ValueError, match=r"needs more than 0 MiB .* at output cell"):
        pyddsar._core.frontier_dp_stats(7, 7, 1, 3, 3, 1, 7, max_bytes=1 << 16)


def test_work_is_stopped_at_its_time_limit():
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"ran past its limit of 1 s at output cell \d+ of 36"):
        pyddsar._core.frontier_dp_stats(8, 8, 1, 3, 3, 1, 7, max_seconds=1.0)
    assert time.perf_counter() - start < 3


# (h0, w0, d0, f1, f2, s, d1): exact counts that take 0.1-4 s here (docs/linear_regions.md has the
# figures of larger ones: 8x8 k3 d1=3, 7x7 d0=2, 8x8 k4, 9x9 k2)
ESTIMATED = [(8, 7, 1, 3, 3, 1, 7), (7, 7, 1, 3, 3, 1, 7), (8, 7, 1, 3, 3, 1, 3), (13, 12, 1, 3, 3, 2, 7),
             (13, 13, 1, 5, 5, 2, 7), (6, 7, 2, 3, 3, 1, 7), (7, 8, 1, 4, 4, 1, 7), (7, 7, 1, 3, 3, 1, 16),
             (15, 15, 1, 7, 7, 2, 7), (8, 8, 1, 2, 2, 1, 7), (20, 7, 1, 3, 3, 1, 3)]


@pytest.mark.parametrize("layer", ESTIMATED)
def test_the_up_front_estimate_is_within_its_margin(layer):
    """The estimate from narrow strips against the run itself: peak states within the factor of two
    the refusal allows for, memory within 0.5x..6x (rows are counted at the widest frontier)."""
    known, states, nbytes, seconds, strips = pyddsar._core.estimate_frontier_dp(*layer)
    assert known and 2 <= strips < (layer[1] - layer[4]) // layer[5] + 1
    peak_states, transitions, peak_bytes, width = pyddsar._core.frontier_dp_stats(*layer)
    assert 0.5 <= states / peak_states <= 2.0
    assert 0.5 <= nbytes / peak_bytes <= 6.0
    assert seconds > 0


def test_layers_over_the_limits_are_refused_at_once_with_the_estimate(run_python):
    """(9, 9, 1) and (10, 10, 1), kernel 3, 7 filters, used to run 36-56 s and take 2.4-4.1 GB before
    being refused; now refused in well under a second, with the estimate and the alternatives."""
    code = ("import time, pyddsar\n"
            "for shape in [(9, 9, 1), (10, 10, 1)]:\n"
            "    t = time.perf_counter()\n"
            "    try:\n        pyddsar.linear_regions(shape, 3, 1, 7)\n"
            "    except ValueError as e:\n        print(round(time.perf_counter() - t, 2), '|', e)\n"
            # VmHWM, the peak of this process's own memory (ru_maxrss would carry pytest's across exec)
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n")
    lines = run_python("-c", code).stdout.strip().splitlines()
    assert len(lines) == 3
    for line in lines[:2]:
        took, message = line.split(" | ")
        assert float(took) < 2.0
        assert re.search(r"would need about \d+ MiB, \d+ dynamic-programming states and .* \(estimated from strips", message)
        assert "lower bound" in message
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # AddressSanitizer's shadow memory and quarantine
        assert int(lines[2]) < 1_000_000  # KiB: the interpreter and the strips (at most 256 MiB each), not 2-4 GB
    # a limit of the caller's is honoured the same way
    with pytest.raises(ValueError, match="would need about"):
        pyddsar._core.linear_regions(8, 8, 1, 3, 3, 1, 3, max_bytes=50 << 20)
    with pytest.raises(ValueError, match="would need about"):
        pyddsar.linear_regions((8, 8, 1), 3, 1, 3, max_seconds=0.5)
    with pytest.raises(ValueError, match="max_seconds"):
        pyddsar.linear_regions((8, 8, 1), 3, 1, 3, max_seconds=float("nan"))


def test_cli_offers_the_lower_bound_and_the_log(capsys):
    from pyddsar.cli import main

    assert main(["regions", "--input", "8x8x1", "--lower-bound", "4,3,1", "3,3,1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    bound = pyddsar.linear_regions_lower_bound([(4, 3, 1), (3, 3, 1)], (8, 8, 1))
    assert out["lower_bound"] == bound.value and out["log"] == pytest.approx(bound.log)
    assert main(["regions", "--input", "5x5x1", "--kernel", "3", "--filters", "7", "--log-only", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["log"] == pytest.approx(math.log(560134574838141912))
    assert main(["regions", "--input", "5x5x1"]) == 2
    assert "--lower-bound" in capsys.readouterr().err


def test_an_exact_count_too_long_to_wait_for_is_refused_up_front():
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"199999 output cells.*billion 64-bit words.*use log_linear_regions"):
        pyddsar.linear_regions((2, 200000, 1), 2, 1, 7)  # it used to run for 100 s
    assert time.perf_counter() - start < 5
    assert pyddsar.log_linear_regions((2, 200000, 1), 2, 1, 7) > 0  # the log form is linear in the cells
