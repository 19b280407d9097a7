"""Arch: parse/print round-trips, precise errors, FLOPs and params against a per-layer count here."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyddsar
from pyddsar import Arch, Block, presets


# ---------------------------------------------------------------- random valid architectures
def round8(x):
    # the release's smart_round(x, 8): banker's rounding of x/8, at least 8
    return max(8, round(x / 8) * 8)


channels = st.integers(min_value=1, max_value=160)


@st.composite
def archs(draw):
    c = draw(st.integers(8, 96))
    blocks = [Block("Conv", draw(st.sampled_from([1, 3, 5, 7])), 3, c, draw(st.sampled_from([1, 2])), 0, draw(st.integers(1, 3)))]
    for _ in range(4):
        kind = draw(st.sampled_from(["Res", "Btn", "MB"]))
        out = draw(channels)
        blocks.append(
            Block(
                kind,
                draw(st.sampled_from([3, 5, 7])),
                c,
                out,
                draw(st.sampled_from([1, 2])),
                draw(channels),
                draw(st.integers(1, 6)),
                draw(st.sampled_from([1, 2, 4, 6])) if kind == "MB" else 1,
            )
        )
        c = out
    return Arch(tuple(blocks))


@settings(max_examples=150, deadline=None)
@given(archs())
def test_three_forms_round_trip(arch):
    assert Arch.parse(str(arch)) == arch
    assert Arch.parse(arch.to_table()) == arch
    assert Arch.parse(arch.to_json()) == arch
    assert Arch.parse(arch.to_json(indent=2)) == arch
    assert str(Arch.parse(arch.to_table())) == str(arch)


def test_structure_string_is_the_release_form():
    text = presets["ddsar-0.5g"]
    assert str(text).startswith("SuperConvK3BNRELU(3,32,2,1)SuperResIDWE1K3(32,32,2,8,1)")
    assert str(presets["ddsar-10g"]).endswith("SuperResK7K7(168,256,2,8,1)")
    assert "SuperResK1K5K1(80,112,2,32,5)" in str(presets["ddsar-10g"])


def test_json_schema():
    data = json.loads(presets["ddsar-2.5g"].to_json())
    assert set(data) == {"blocks"}
    assert data["blocks"][1] == {
        "type": "Res", "kernel": 3, "in": 24, "out": 32, "stride": 2, "bottleneck": 24, "layers": 4, "expansion": 1
    }


def test_table_has_the_paper_columns():
    header = presets["ddsar-0.5g"].to_table().splitlines()[0].split()
    assert header == ["block", "kernel", "in", "out", "stride", "bottleneck", "expansion", "layers"]


def test_presets_are_read_only_and_complete():
    assert set(presets) == {"ddsar-0.5g", "ddsar-2.5g", "ddsar-10g", "ddsar-34g"}
    with pytest.raises(TypeError):
        presets["mine"] = presets["ddsar-0.5g"]
    with pytest.raises(Exception):
        presets["ddsar-0.5g"].blocks = ()


# ---------------------------------------------------------------- errors name the position
@pytest.mark.parametrize(
    "text,fragment",
    [
        ("SuperConvK3BNRELU(3,32,2,1)SuperResIDWE1K3(32,32,2,8,1)XX", "position 55"),
        ("SuperConvK3BNRELU(3,32,2,1)SuperResK3K3(32,32,2,8)", "position 39"),
        ("SuperConvK3BNRELU(3,32,2", "position 17"),
        ("SuperConvK4BNRELU(3,32,2,1)", "kernel 4"),
        ("SuperConvK3BNRELU(3,32,3,1)", "stride 3"),
        ("SuperConvK3BNRELU(3,0,2,1)", "out_channels = 0"),
        ("SuperConvK3BNRELU(3,32,2,1)SuperResK3K5(32,32,2,8,1)", "mixes kernels"),
        ("SuperConvK3BNRELU(3,32,2,1)SuperResIDWE3K3(32,32,2,8,1)", "expansion 3"),
    ],
)
def test_bad_structure_strings(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        Arch.parse(text)


def test_bad_chaining_and_counts():
    good = str(presets["ddsar-0.5g"])
    with pytest.raises(ValueError, match="do not match the previous block's output 32"):
        Arch.parse(good.replace("SuperResIDWE1K7(32,64", "SuperResIDWE1K7(48,64"))
    with pytest.raises(ValueError, match="5 blocks"):
        Arch.parse(good.split("SuperResIDWE1K5")[0])
    with pytest.raises(ValueError, match="stem"):
        Arch.parse(good.replace("SuperConvK3BNRELU(3,32,2,1)", "SuperResK3K3(3,32,2,8,1)"))
    with pytest.raises(ValueError, match="layers = 100"):
        Arch.parse(good.replace("(120,160,2,120,1)", "(120,160,2,120,100)"))


def test_bad_tables_and_json():
    table = presets["ddsar-0.5g"].to_table().splitlines()
    broken = "\n".join(table[:3] + [table[3].replace("MB", "Foo")] + table[4:])
    with pytest.raises(ValueError, match="table line 4"):
        Arch.parse(broken)
    with pytest.raises(ValueError, match="invalid JSON at position"):
        Arch.parse('{"blocks": [}')
    with pytest.raises(ValueError, match=r"blocks\[0\] lacks"):
        Arch.parse('{"blocks": [{"type": "Conv"}]}')
    with pytest.raises(ValueError, match="empty"):
        Arch.parse("   ")


# ---------------------------------------------------------------- FLOPs and params
def plain_conv_list(arch, width, height):
    """Every conv (cin, cout, k, stride, groups, h_in, w_in) written from SPEC section 3's table."""
    convs, h, w = [], height, width

    def out(x, s):
        return -(-x // s)  # 'same' padding: ceil(x / s)

    for blk in arch.blocks:
        cin = blk.in_channels
        for layer in range(blk.layers):
            s = blk.stride if layer == 0 else 1
            h0, w0 = h, w
            if blk.type == "Conv":
                convs.append((cin, blk.out_channels, blk.kernel, s, 1, h, w))
                h, w = out(h, s), out(w, s)
            elif blk.type == "Res":
                b = blk.bottleneck
                convs.append((cin, b, blk.kernel, s, 1, h, w))
                h, w = out(h, s), out(w, s)
                convs.append((b, blk.out_channels, blk.kernel, 1, 1, h, w))
                if layer == 0 or cin != blk.out_channels:
                    convs.append((cin, blk.out_channels, 1, s, 1, h0, w0))
            elif blk.type == "Btn":
                b, o = blk.bottleneck, blk.out_channels
                convs.append((cin, b, 1, 1, 1, h, w))
                convs.append((b, b, blk.kernel, s, 1, h, w))
                h, w = out(h, s), out(w, s)
                convs.append((b, o, 1, 1, 1, h, w))
                if layer == 0 or cin != o:
                    convs.append((cin, o, 1, s, 1, h0, w0))
                convs += [(o, b, 1, 1, 1, h, w), (b, b, blk.kernel, 1, 1, h, w), (b, o, 1, 1, 1, h, w)]
            else:  # MB: two inverted-residual halves
                b, o, e = blk.bottleneck, blk.out_channels, blk.expansion
                e1, e2 = round8(e * b), round8(e * o)
                convs.append((cin, e1, 1, 1, 1, h, w))
                convs.append((e1, e1, blk.kernel, s, e1, h, w))
                h, w = out(h, s), out(w, s)
                convs.append((e1, b, 1, 1, 1, h, w))
                if layer == 0 or cin != b:
                    convs.append((cin, b, 1, s, 1, h0, w0))
                convs += [(b, e2, 1, 1, 1, h, w), (e2, e2, blk.kernel, 1, e2, h, w), (e2, o, 1, 1, 1, h, w)]
                if b != o:
                    convs.append((b, o, 1, 1, 1, h, w))
            cin = blk.out_channels
    return convs


def plain_cost(arch, width, height):
    flops = params = 0
    for cin, cout, k, s, g, h, w in plain_conv_list(arch, width, height):
        ho, wo = -(-h // s), -(-w // s)
        flops += cin // g * cout * k * k * ho * wo + cout * ho * wo  # MACs + one per BN output
        params += cin // g * cout * k * k + 2 * cout  # weights + BN weight and bias
    return flops, params


@settings(max_examples=150, deadline=None)
@given(archs(), st.integers(16, 700), st.integers(16, 700))
def test_flops_and_params_match_a_plain_count(arch, width, height):
    flops, params = plain_cost(arch, width, height)
    assert arch.flops((width, height)) == flops
    assert arch.params() == params
    per_block = arch.flops_breakdown((width, height))
    assert sum(b["flops"] for b in per_block) == flops
    assert sum(b["params"] for b in per_block) == params
    assert len(arch.convs((width, height))) == len(plain_conv_list(arch, width, height))


def test_presets_under_their_budgets():
    budgets = {"ddsar-0.5g": 403e6, "ddsar-2.5g": 2118e6, "ddsar-10g": 8659e6, "ddsar-34g": 26787e6}
    for name, budget in budgets.items():
        assert presets[name].flops() <= budget, name
    # SPEC section 3: 400.7 M under this convention
    assert round(presets["ddsar-0.5g"].flops() / 1e6, 1) == 400.7
    assert presets["ddsar-0.5g"].flops() == plain_cost(presets["ddsar-0.5g"], 640, 480)[0]


def test_stem_flops_by_hand():
    # 3x3 conv 3->32, stride 2, 640x480 -> 320x240: 3*32*9 MACs per output + 32 BN outputs
    arch = presets["ddsar-0.5g"]
    assert arch.flops_breakdown()[0]["flops"] == (3 * 32 * 9 + 32) * 320 * 240
    assert arch.flops_breakdown()[0]["params"] == 3 * 32 * 9 + 64


def test_bad_resolution():
    with pytest.raises(ValueError, match="width"):
        presets["ddsar-0.5g"].flops((0, 480))
    with pytest.raises(ValueError, match=r"\(width, height\)"):
        presets["ddsar-0.5g"].flops(640)


def test_round8_matches_python_round():
    for x in [4, 12, 20, 36, 44, 60, 100.0, 7.5 * 8]:
        assert pyddsar.arch._core.round8(float(x)) == round8(x)


def test_flops_beyond_int64_are_refused_not_wrapped():
    wide = Arch.parse("SuperConvK3BNRELU(3,64,2,1)SuperResK7K7(64,8192,2,8192,8)SuperResK7K7(8192,8192,2,8192,8)"
                      "SuperResK7K7(8192,8192,2,8192,8)SuperResK7K7(8192,8192,2,8192,8)")
    with pytest.raises(ValueError, match="exceeds 2\\^63"):
        wide.flops((100000, 100000))
    assert wide.flops((64, 64)) > 0
    with pytest.raises(ValueError, match="resolution width must be a positive integer at most 100000"):
        presets["ddsar-0.5g"].flops((100001, 10))
