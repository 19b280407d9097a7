"""count_arrangement_regions: a concrete layer's regions against Theorem 1 and closed forms."""

import math

import numpy as np
import pytest

import pyddsar
from pyddsar import count_arrangement_regions
from pyddsar.arrangement import layer_hyperplanes


def random_layer(rng, d1, d0, f1, f2):
    return rng.normal(size=(d1, d0, f1, f2)), rng.normal(size=d1)


@pytest.mark.parametrize(
    "w0,d0,f,s,d1",
    [(4, 1, 2, 1, 2), (5, 1, 3, 1, 2), (6, 1, 2, 1, 2), (5, 1, 2, 2, 2), (4, 2, 2, 1, 2), (3, 2, 2, 1, 3), (4, 1, 3, 1, 3)],
)
def test_one_dimensional_layers_reach_theorem_1(w0, d0, f, s, d1):
    rng = np.random.default_rng(w0 * 100 + d0 * 10 + d1)
    weights, bias = random_layer(rng, d1, d0, 1, f)
    got = count_arrangement_regions(weights, bias, (1, w0, d0), s)
    assert got == pyddsar.linear_regions((1, w0, d0), (1, f), s, d1)


@pytest.mark.parametrize("h0,w0,d0,k,s,d1", [(4, 4, 1, 2, 2, 2), (2, 4, 1, 2, 2, 3), (3, 6, 1, 3, 3, 2), (2, 2, 2, 2, 2, 3)])
def test_non_overlapping_windows_reach_theorem_1(h0, w0, d0, k, s, d1):
    rng = np.random.default_rng(h0 + w0 + d1)
    weights, bias = random_layer(rng, d1, d0, k, k)
    assert count_arrangement_regions(weights, bias, (h0, w0, d0), s) == pyddsar.linear_regions((h0, w0, d0), k, s, d1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_dimensional_exception_255_vs_256(seed):
    # SPEC section 1: 3x3x1 input, 2x2 filters, stride 1, d1 = 2
    rng = np.random.default_rng(seed)
    weights, bias = random_layer(rng, 2, 1, 2, 2)
    assert count_arrangement_regions(weights, bias, (3, 3, 1), 1) == 255
    assert pyddsar.linear_regions((3, 3, 1), 2, 1, 2) == 256


def general_position_regions(n, m):
    """Regions of n hyperplanes in general position in R^m (Zaslavsky / Buck)."""
    return sum(math.comb(n, i) for i in range(min(n, m) + 1))


@pytest.mark.parametrize("h0,w0,d0,d1", [(1, 2, 1, 3), (2, 2, 1, 3), (1, 3, 1, 5), (2, 1, 2, 6), (1, 1, 3, 4)])
def test_full_window_neurons_are_hyperplanes_in_general_position(h0, w0, d0, d1):
    # kernel = input: d1 neurons that all see the whole input, d1 generic hyperplanes in R^(h0*w0*d0)
    rng = np.random.default_rng(d1)
    weights, bias = random_layer(rng, d1, d0, h0, w0)
    got = count_arrangement_regions(weights, bias, (h0, w0, d0), 1)
    assert got == general_position_regions(d1, h0 * w0 * d0)


def test_repeated_and_constant_neurons_split_nothing():
    w = np.array([[[[1.0, -2.0]]], [[[1.0, -2.0]]], [[[-2.0, 4.0]]], [[[0.0, 0.0]]]])  # same plane x3, a constant
    b = np.array([0.5, 0.5, -1.0, 3.0])
    assert count_arrangement_regions(w, b, (1, 2, 1), 1) == 2


def test_hyperplanes_place_the_filter_on_its_window():
    w = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    planes = layer_hyperplanes(w, np.array([7.0]), (3, 3, 1), 1)
    assert planes.shape == (4, 10)
    # output cell (1, 0) sees input rows 1-2, columns 0-1
    expected = np.zeros((3, 3))
    expected[1:3, 0:2] = [[1, 2], [3, 4]]
    np.testing.assert_array_equal(planes[2, :-1], expected.ravel())
    assert planes[2, -1] == 7.0


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(2, 1, 1, 2, generator=g), torch.randn(2, generator=g)
    assert count_arrangement_regions(w, b, (1, 4, 1), 1) == 55


@pytest.mark.parametrize(
    "args,fragment",
    [
        ((np.zeros((2, 1, 2)), np.zeros(2), (3, 3, 1), 1), "shape"),
        ((np.zeros((2, 1, 2, 2)), np.zeros(3), (3, 3, 1), 1), "bias"),
        ((np.zeros((2, 2, 2, 2)), np.zeros(2), (3, 3, 1), 1), "input depth"),
        ((np.zeros((2, 1, 4, 4)), np.zeros(2), (3, 3, 1), 1), "larger than the input"),
        ((np.zeros((2, 1, 2, 2)), np.zeros(2), (3, 3, 1), 0), "stride"),
        ((np.zeros((2, 1, 2, 2)), np.zeros(2), (0, 3, 1), 1), "input_shape"),
        ((np.full((2, 1, 2, 2), np.nan), np.zeros(2), (3, 3, 1), 1), "finite"),
        ((np.ones((8, 1, 2, 2)), np.zeros(8), (6, 6, 1), 1), "max_hyperplanes"),
    ],
)
def test_bad_input(args, fragment):
    with pytest.raises(ValueError, match=fragment):
        count_arrangement_regions(*args)
