"""torch's CPU backward of a strided 1x1 conv on channels_last input with 2..15 input channels
corrupts the heap (torch 2.13 and 2.14, oneDNN). A searched backbone with thin stages has such
convs in its residual projections, and `pyddsar train` used to die of it. These tests keep the
smallest failing case in view and check the workaround (models.layers.PointwiseStridedConv)."""

import textwrap

import pytest
import torch

from pyddsar.models.layers import ConvNorm, PointwiseStridedConv, conv2d

# The smallest case found: batch 1, 8 channels, 160x160, one 1x1 stride-2 conv, weight gradient only.
SMALLEST_CASE = textwrap.dedent(
    """
    import torch
    conv = torch.nn.Conv2d(8, 8, 1, 2, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(1, 8, 160, 160).contiguous(memory_format=torch.channels_last)
    for _ in range(2):
        conv(x).sum().backward()
    print("survived")
    """
)


def test_the_bug_is_still_there_or_says_it_is_gone(run_python):
    r = run_python("-c", SMALLEST_CASE, check=False, timeout=120)
    if r.returncode == 0:
        pytest.skip(f"torch {torch.__version__} no longer crashes on the smallest case; "
                    "PointwiseStridedConv could go back to a plain nn.Conv2d")
    assert r.returncode < 0 or r.returncode > 128, r.stderr  # killed by a signal (heap corruption)


def test_the_workaround_survives_the_smallest_case(run_python):
    code = (SMALLEST_CASE.replace("torch.nn.Conv2d(8, 8, 1, 2, bias=False)", "PointwiseStridedConv(8, 8, 1, 2, bias=False)")
            .replace("import torch\n", "import torch\nfrom pyddsar.models.layers import PointwiseStridedConv\n", 1))
    r = run_python("-c", code, check=False, timeout=120)
    assert r.returncode == 0 and "survived" in r.stdout, r.stderr


@pytest.mark.parametrize("cin,h,w", [(8, 15, 16), (3, 9, 7), (15, 32, 32)])
def test_the_workaround_computes_the_strided_conv(cin, h, w):
    torch.manual_seed(0)
    ours = PointwiseStridedConv(cin, 6, 1, 2, bias=True)
    plain = torch.nn.Conv2d(cin, 6, 1, 2, bias=True)
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(2, cin, h, w, requires_grad=True)
    x_plain = x.detach().clone().requires_grad_()
    y, y_plain = ours(x), plain(x_plain)  # the plain one in NCHW, where torch is fine
    assert y.shape == y_plain.shape
    torch.testing.assert_close(y, y_plain, rtol=1e-5, atol=1e-6)
    y.square().sum().backward()
    y_plain.square().sum().backward()
    torch.testing.assert_close(x.grad, x_plain.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.weight.grad, plain.weight.grad, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # inference takes torch's own strided conv
        torch.testing.assert_close(ours(x), plain(x), rtol=1e-5, atol=1e-6)


def test_only_the_affected_convs_are_replaced():
    assert type(conv2d(8, 16, 1, 2)) is PointwiseStridedConv
    assert type(conv2d(16, 16, 1, 2)) is torch.nn.Conv2d  # 16 and more input channels are fine
    assert type(conv2d(8, 16, 1, 1)) is torch.nn.Conv2d
    assert type(conv2d(8, 16, 3, 2, 1)) is torch.nn.Conv2d
    assert type(ConvNorm(4, 8, 1, 2).conv) is PointwiseStridedConv
