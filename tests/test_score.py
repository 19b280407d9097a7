"""DDSAR-Score against plain Python re-statements written here from the SPEC (paper variant) and from
the notes on the released code (damofd-release variant), plus the release's published numbers."""

import functools
import json
import math
import random
import re

import pytest

import pyddsar
from pyddsar import Arch, Block, FsProbe, ScoreReport, presets, score, score_batch, score_report
from pyddsar.score import _scorer, fs_layer
from pyddsar.stage_weights import WIDERFACE_LAMBDAS

D0 = 3
LAMBDAS = (0.2, 0.27, 0.25, 0.18, 0.10)
LN_2_63 = 63 * math.log(2)


# -- a plain re-statement of the paper's score (SPEC sections 2 and 3) ----------------------------


def round8(x):
    return max(8, round(x / 8) * 8)


def plain_chain(block):
    """(in, out, kernel, stride) of each conv of the block's plain chain, from the SPEC's block table
    (residual projections left out)."""
    k, s, btn, out = block.kernel, block.stride, block.bottleneck, block.out_channels
    convs, cin = [], block.in_channels
    for layer in range(block.layers):
        st = s if layer == 0 else 1
        if block.type == "Conv":
            convs.append((cin, out, k, st))
        elif block.type == "Res":
            convs += [(cin, btn, k, st), (btn, out, k, 1)]
        elif block.type == "Btn":
            convs += [(cin, btn, 1, 1), (btn, btn, k, st), (btn, out, 1, 1)]
            convs += [(out, btn, 1, 1), (btn, btn, k, 1), (btn, out, 1, 1)]
        else:  # MB: depthwise convs keep their width
            e1, e2 = round8(block.expansion * btn), round8(block.expansion * out)
            convs += [(cin, e1, 1, 1), (e1, e1, k, st), (e1, btn, 1, 1)]
            convs += [(btn, e2, 1, 1), (e2, e2, k, 1), (e2, out, 1, 1)]
        cin = out
    return convs


@functools.lru_cache(maxsize=None)
def probe_fs(kernel, stride, grid=3, depth=1, filters=7):
    side = kernel + (grid - 1) * stride
    return pyddsar.log_linear_regions((side, side, depth), kernel, stride, filters)


def literal_fs(input_depth, filters=7):
    return sum(math.comb(filters, t) for t in range(min(filters, input_depth) + 1))


def ref_paper(arch, alpha=0.25, lambdas=LAMBDAS, resolution=(224, 224), literal=False):
    """-> (total, [(layers, sae, fs, sar)] per stage)."""
    w, h = resolution
    total, stages = 0.0, []
    for b, block in enumerate(arch.blocks):
        terms, fs, layers = 0.0, 0.0, []
        for n, (cin, cout, k, s) in enumerate(plain_chain(block), 1):
            h, w = -(-h // s), -(-w // s)
            if cout // D0 == 0:
                raise AssertionError(f"ln 0 at block {b} layer {n}")
            terms += h * w * D0 * math.log(cout // D0)
            fs += literal_fs(cin) if literal else probe_fs(k, s)
            layers.append((h, w, cout, k, s))
        sae = math.log(h * w * D0) + terms
        sar = sae + alpha * fs
        total += lambdas[b] * sar
        stages.append((layers, sae, fs, sar))
    return total, stages


# -- a plain re-statement of the released forward_ddsar_score (notes/release.md section 3) ---------


def ref_release(structure, input_h=224, input_w=None, alpha=0.005):
    """The release's walk over str(block), in its order; input_w generalises h*h to h*w."""
    d_0, log_eps = 3, 0
    cur_h = input_h
    cur_w = input_h if input_w is None else input_w
    scores = {}
    for block_id, m in enumerate(re.finditer(r"(Super[A-Za-z0-9]+)\(([^)]*)\)", structure)):
        block_str = m.group(0)
        info = m.group(2).split(",")
        ks = re.findall(r"K\d", block_str)
        k1 = None
        if len(ks) == 1:
            k = int(ks[0][1:])
        elif len(ks) == 2:
            k, k1 = int(ks[0][1:]), int(ks[1][1:])
        else:
            k = int(ks[1][1:])
        in_ch, out_ch, stride, n_layers = int(info[0]), int(info[1]), int(info[2]), int(info[-1])
        btn = int(info[-2])
        item_1 = math.log(cur_h * cur_w * d_0)
        item_2, item_3 = 0, 0

        def t(c):
            return cur_h * cur_w * d_0 * math.log(c / d_0 + log_eps)

        for _ in range(n_layers):
            if "IDWE" in block_str:
                dw = int(block_str[block_str.index("IDWE") + 4]) * btn
                item_2 += t(in_ch)
                item_2 += t(dw)
                if stride == 2:
                    cur_h, cur_w, stride = cur_h / 2, cur_w / 2, 1
                for c in (dw, btn, dw, dw):
                    item_2 += t(c)
                item_3 += 2 * k + 4
            elif len(ks) == 2:
                item_2 += t(in_ch)
                if stride == 2:
                    cur_h, cur_w, stride = cur_h / 2, cur_w / 2, 1
                item_2 += t(btn)
                item_3 += k + k1
            elif len(ks) == 3:
                item_2 += t(in_ch)
                item_2 += t(btn)
                if stride == 2:
                    cur_h, cur_w, stride = cur_h / 2, cur_w / 2, 1
                for c in (btn, out_ch, btn, btn):
                    item_2 += t(c)
                item_3 += 2 * k + 4
            else:
                item_2 += t(in_ch)
                if stride == 2:
                    cur_h, cur_w, stride = cur_h / 2, cur_w / 2, 1
                item_3 += k
            in_ch = out_ch
        scores[f"stage_{block_id + 1}"] = math.log(item_1 + item_2 + log_eps) + alpha * item_3
    ddsar = 0
    ddsar += 0.2 * scores["stage_1"]
    ddsar += 0.27 * scores["stage_2"]
    ddsar += 0.25 * scores["stage_3"]
    ddsar += 0.18 * scores["stage_4"]
    ddsar += 0.1 * scores["stage_5"]
    return ddsar, [scores[f"stage_{i}"] for i in range(1, 6)]


# -- random architectures ---------------------------------------------------------------------------


def random_arch(rng, max_layers=3):
    c = rng.choice([8, 16, 24, 32, 48, 64])
    blocks = [Block("Conv", rng.choice([1, 3, 5, 7]), 3, c, rng.choice([1, 2]), 0, rng.randint(1, 2))]
    for _ in range(4):
        kind = rng.choice(["Res", "Btn", "MB"])
        out = rng.randint(8, 256)
        blocks.append(
            Block(
                kind,
                rng.choice([1, 3, 5, 7]),
                c,
                out,
                rng.choice([1, 2]),
                rng.randint(8, 256),
                rng.randint(1, max_layers),
                rng.choice([1, 2, 4, 6]) if kind == "MB" else 1,
            )
        )
        c = out
    return Arch(tuple(blocks))


RANDOM_ARCHS = [random_arch(random.Random(seed)) for seed in range(200)]
RESOLUTIONS = [(224, 224), (640, 480), (97, 131), (32, 32), (320, 224)]


# -- paper variant ----------------------------------------------------------------------------------


def test_paper_matches_restatement_on_random_archs():
    for i, arch in enumerate(RANDOM_ARCHS):
        res = RESOLUTIONS[i % len(RESOLUTIONS)]
        want, stages = ref_paper(arch, resolution=res)
        assert score(arch, resolution=res) == pytest.approx(want, rel=1e-12), str(arch)
        report = score_report(arch, resolution=res)
        assert report.total == score(arch, resolution=res)
        for got, (layers, sae, fs, sar) in zip(report.stages, stages):
            assert got.layers == layers
            assert got.sae == pytest.approx(sae, rel=1e-12)
            assert got.fs == pytest.approx(fs, rel=1e-12)
            assert got.sar == pytest.approx(sar, rel=1e-12)


def test_paper_alpha_lambdas_and_widerface():
    rng = random.Random(7)
    for arch in RANDOM_ARCHS[:40]:
        alpha = rng.uniform(0, 3)
        raw = [rng.random() for _ in range(5)]
        lambdas = tuple(x / sum(raw) for x in raw)
        want, _ = ref_paper(arch, alpha=alpha, lambdas=lambdas)
        assert score(arch, alpha=alpha, lambdas=lambdas) == pytest.approx(want, rel=1e-12)
        want, _ = ref_paper(arch, lambdas=WIDERFACE_LAMBDAS)
        assert score(arch, lambdas="widerface") == pytest.approx(want, rel=1e-12)
    arch = presets["ddsar-0.5g"]
    report = score_report(arch, alpha=0.0)
    assert all(s.sar == s.sae for s in report.stages)


def test_paper_literal_probe_matches_restatement():
    for arch in RANDOM_ARCHS[:60]:
        want, stages = ref_paper(arch, literal=True)
        assert score(arch, fs_probe="literal") == pytest.approx(want, rel=1e-12)
        report = score_report(arch, fs_probe="literal")
        for got, (_, _, fs, _) in zip(report.stages, stages):
            assert got.fs == fs


def test_paper_stem_layers_of_the_05g_preset():
    report = score_report(presets["ddsar-0.5g"], resolution=(640, 480))
    assert report.stages[0].layers == [(240, 320, 32, 3, 2)]
    # MB(32,32,2,8,1) with E=1: 1x1 -> 8, dw 8 (stride 2), 1x1 -> 8, 1x1 -> 32, dw 32, 1x1 -> 32
    assert [layer[2] for layer in report.stages[1].layers] == [8, 8, 8, 32, 32, 32]
    assert report.stages[1].layers[1] == (120, 160, 8, 3, 2)


def test_wider_stage_never_lowers_sae():
    rng = random.Random(3)
    for arch in RANDOM_ARCHS[:80]:
        b = rng.randint(1, 4)
        base = score_report(arch).stages[b].sae
        blk = arch.blocks[b]
        wider = list(arch.blocks)
        wider[b] = Block(blk.type, blk.kernel, blk.in_channels, blk.out_channels + rng.randint(1, 64), blk.stride,
                         blk.bottleneck + rng.randint(0, 32), blk.layers, blk.expansion)
        if b < 4:
            nxt = wider[b + 1]
            wider[b + 1] = Block(nxt.type, nxt.kernel, wider[b].out_channels, nxt.out_channels, nxt.stride,
                                 nxt.bottleneck, nxt.layers, nxt.expansion)
        assert score_report(Arch(tuple(wider))).stages[b].sae >= base


# -- the FS probe -----------------------------------------------------------------------------------


def fs_table(fs_probe=None):
    return {(k, s): fs_layer(k, s, fs_probe) for k in (1, 3, 5, 7) for s in (1, 2)}


def test_default_probe_values_of_the_spec():
    fs = fs_table()
    assert fs[1, 1] == pytest.approx(18.715, abs=5e-4)
    assert fs[3, 1] == pytest.approx(40.8670, abs=5e-5)
    assert fs[3, 2] == pytest.approx(43.66826, abs=5e-6)
    assert fs[5, 1] == pytest.approx(43.668271, abs=5e-7)
    for key in ((7, 1), (7, 2), (5, 2)):
        assert fs[key] == pytest.approx(LN_2_63, abs=1e-12)  # saturated at 2^63
    for (k, s), v in fs.items():
        assert v == probe_fs(k, s)
    # the raw counts of the SPEC, from the exact big-integer count
    assert pyddsar.linear_regions((5, 5, 1), 3, 1, 7) == 560134574838141912
    assert pyddsar.linear_regions((7, 7, 1), 3, 2, 7) == 9223252118611379552
    assert pyddsar.linear_regions((7, 7, 1), 5, 1, 7) == 9223358127303041792
    assert pyddsar.linear_regions((9, 9, 1), 7, 1, 7) == 2**63
    assert fs[3, 1] == pytest.approx(math.log(560134574838141912), rel=1e-14)


def test_default_probe_is_monotone_in_kernel_and_separates_strides():
    fs = fs_table()
    assert fs[1, 1] < fs[3, 1] < fs[5, 1] < fs[7, 1]
    assert fs[3, 1] != fs[3, 2] and fs[5, 1] != fs[5, 2]
    # 1x1 windows never overlap, 7x7 ones saturate: stride makes no difference there
    assert fs[1, 1] == fs[1, 2]
    assert fs[7, 1] == pytest.approx(fs[7, 2], abs=1e-12)


def test_other_probe_sizes():
    probe = FsProbe(grid=2, depth=1, filters=5)
    for k in (1, 3, 5, 7):
        for s in (1, 2):
            assert fs_layer(k, s, probe) == probe_fs(k, s, 2, 1, 5)
    for bad in (dict(kernel=2, stride=1), dict(kernel=3, stride=3), dict(kernel=3, stride=1, input_depth=0)):
        with pytest.raises(ValueError):
            fs_layer(**bad)


def test_literal_probe_is_constant():
    fs = fs_table("literal")
    assert set(fs.values()) == {128.0}
    for d in range(1, 12):
        want = pyddsar.linear_regions((1, 1, d), 1, 1, 7)  # the exact enumerator: one 1x1 window
        assert want == literal_fs(d)
        for k in (1, 3, 5, 7):
            for s in (1, 2):
                assert fs_layer(k, s, "literal", input_depth=d) == want
    # two nets differing only in kernels get the same literal FS per stage
    a = Arch.parse("SuperConvK3BNRELU(3,32,2,1)SuperResK3K3(32,64,2,16,2)SuperResK1K3K1(64,96,2,24,1)"
                   "SuperResIDWE2K3(96,128,2,32,1)SuperResK3K3(128,160,2,32,1)")
    b = Arch.parse(str(a).replace("K3", "K7"))
    fa = [s.fs for s in score_report(a, fs_probe="literal").stages]
    fb = [s.fs for s in score_report(b, fs_probe="literal").stages]
    assert fa == fb
    assert [s.fs for s in score_report(a).stages] != [s.fs for s in score_report(b).stages]


# -- damofd-release variant -------------------------------------------------------------------------

RELEASE_TABLE = {
    "ddsar-0.5g": ((2.49337741, 12.05096094, 11.26068182, 10.46105317, 8.85164145), 9.3357591077),
    "ddsar-2.5g": ((11.29786174, 12.43639378, 11.09983535, 10.03255374, 9.33891148), 11.1321083264),
    "ddsar-10g": ((11.63960724, 14.01280071, 12.71979391, 10.88720069, 7.90100789), 12.0411230287),
    "ddsar-34g": ((11.63960724, 14.23594602, 13.02727734, 11.34847714, 9.65010696), 12.4361827902),
}


@pytest.mark.parametrize("name", sorted(RELEASE_TABLE))
def test_release_reference_values(name):
    stages, total = RELEASE_TABLE[name]
    arch = presets[name]
    assert score(arch, variant="damofd-release") == pytest.approx(total, abs=1e-10)
    report = score_report(arch, variant="damofd-release")
    assert [s.sar for s in report.stages] == pytest.approx(stages, abs=1e-8)
    assert report.alpha == 0.005 and report.lambdas == LAMBDAS
    # bit-equal to the plain re-statement (same summation order)
    want, want_stages = ref_release(str(arch))
    assert report.total == want
    assert [s.sar for s in report.stages] == want_stages


def test_release_worked_example_and_intermediates():
    report = score_report(presets["ddsar-0.5g"], variant="damofd-release")
    assert report.stages[2].sar == 11.260681819436842
    assert report.stages[2].sae == pytest.approx(11.170681819436842, abs=1e-14)
    assert report.stages[2].fs == 18
    assert [layer[2] for layer in report.stages[2].layers] == [32, 40, 40, 40, 40, 40]
    # item_2 = exp(SAE) - item_1 for the released intermediates of the 10G and 2.5G nets
    for name, item_2 in (("ddsar-10g", (110139.0572, 948644.6870, 235568.0404, 43783.9855, 2511.0887)),
                         ("ddsar-2.5g", (78253.5441, 223316.7851, 58669.7425, 17714.0892, 8588.4132))):
        rep = score_report(presets[name], variant="damofd-release")
        h = 224
        for stage, want in zip(rep.stages, item_2):
            assert math.exp(stage.sae) - math.log(h * h * 3) == pytest.approx(want, abs=2e-4 * max(1, want / 1e5))
            h /= 2


def test_release_matches_restatement_on_random_archs():
    for i, arch in enumerate(RANDOM_ARCHS):
        side = (224, 100, 160)[i % 3]
        want, want_stages = ref_release(str(arch), side)
        report = score_report(arch, variant="damofd-release", resolution=(side, side))
        assert report.total == want, str(arch)
        assert [s.sar for s in report.stages] == want_stages


def test_release_non_square_uses_h_times_w():
    for arch in RANDOM_ARCHS[:50]:
        want, _ = ref_release(str(arch), input_h=480, input_w=640)
        assert score(arch, variant="damofd-release", resolution=(640, 480)) == pytest.approx(want, rel=1e-14)


def test_release_alpha_and_lambdas_are_parameters():
    arch = presets["ddsar-2.5g"]
    rep = score_report(arch, variant="damofd-release", alpha=0.25, lambdas=(0.2, 0.2, 0.2, 0.2, 0.2))
    assert rep.total == pytest.approx(sum(0.2 * (s.sae + 0.25 * s.fs) for s in rep.stages), rel=1e-14)


# -- batch, report object ---------------------------------------------------------------------------


def test_batch_equals_single_scores():
    archs = RANDOM_ARCHS[:50] + [str(a) for a in presets.values()]
    for variant in ("paper", "damofd-release"):
        got = score_batch(archs, variant=variant)
        assert got == [score(a, variant=variant) for a in archs]
    scorer, _ = _scorer("paper", None, None, (224, 224), None)
    tuples = [[b._native_tuple() for b in a.blocks] for a in RANDOM_ARCHS[:20]]
    assert scorer.batch_tuples(tuples) == [score(a) for a in RANDOM_ARCHS[:20]]
    assert score_batch([]) == []


def test_report_dict_json_and_table():
    rep = score_report(presets["ddsar-10g"], lambdas="widerface")
    assert isinstance(rep, ScoreReport)
    d = rep.to_dict()
    assert json.loads(rep.to_json()) == d
    assert [s["name"] for s in d["stages"]] == ["C1", "C2", "C3", "C4", "C5"]
    assert d["lambdas"] == list(WIDERFACE_LAMBDAS)
    assert d["total"] == pytest.approx(sum(s["weighted"] for s in d["stages"]), rel=1e-14)
    text = str(rep)
    for word in ("C1", "C5", "SAE", "FS", "SAR", "lambda", "weighted", "total"):
        assert word in text
    lines = text.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("stage"))
    assert len({len(ln) for ln in lines[header : header + 6]}) == 1  # aligned columns


def test_import_does_not_import_torch(run_python):
    code = "import sys, pyddsar; pyddsar.score(pyddsar.presets['ddsar-0.5g']); print('torch' in sys.modules)"
    out = run_python("-c", code)
    assert out.stdout.strip() == "False"


# -- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(variant="release"), "unknown score variant"),
        (dict(variant=None), "unknown score variant"),
        (dict(lambdas=(0.25, 0.25, 0.25, 0.25)), "five values"),
        (dict(lambdas=(0.2, 0.2, 0.2, 0.2, 0.3)), "sum to 1"),
        (dict(lambdas=(1.2, -0.2, 0.0, 0.0, 0.0)), "non-negative"),
        (dict(lambdas="coco"), "widerface"),
        (dict(lambdas=(0.2, 0.2, 0.2, 0.2, "0.2")), "number"),
        (dict(alpha=-0.1), "non-negative"),
        (dict(alpha=float("nan")), "finite"),
        (dict(alpha=True), "number"),
        (dict(resolution=(0, 224)), "positive"),
        (dict(resolution=(224,)), "width, height"),
        (dict(resolution=(224.0, 224)), "positive integer"),
        (dict(resolution=(200000, 224)), "at most"),
        (dict(fs_probe="square"), "fs_probe"),
        (dict(fs_probe=(3, 1, 7)), "fs_probe"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        score(presets["ddsar-0.5g"], **kwargs)
    with pytest.raises(ValueError, match=match):
        score_report(presets["ddsar-0.5g"], **kwargs)


@pytest.mark.parametrize("field, value", [("grid", 0), ("grid", 5), ("depth", 5), ("filters", 0), ("filters", 17),
                                          ("grid", 2.0), ("depth", True)])
def test_bad_probe(field, value):
    with pytest.raises(ValueError, match=f"FsProbe.{field}"):
        FsProbe(**{field: value})


def test_ln_zero_names_the_block_and_layer():
    stem_two = Arch.parse("SuperConvK3BNRELU(3,2,2,1)SuperResK3K3(2,32,2,8,1)SuperResK3K3(32,32,2,8,1)"
                          "SuperResK3K3(32,32,2,8,1)SuperResK3K3(32,32,2,8,1)")
    with pytest.raises(ValueError, match=r"block 0 \(C1\), layer 1 .*ln 0"):
        score(stem_two)
    btn_two = Arch.parse("SuperConvK3BNRELU(3,16,2,1)SuperResK3K3(16,32,2,8,1)SuperResK1K3K1(32,32,2,2,1)"
                         "SuperResK3K3(32,32,2,8,1)SuperResK3K3(32,32,2,8,1)")
    with pytest.raises(ValueError, match=r"block 2 \(C3\), layer 1 "):
        score(btn_two)
    # the release has no floor: ln(2/3) is finite, the stage stays defined
    assert math.isfinite(score(btn_two, variant="damofd-release"))
    with pytest.raises(ValueError, match=r"archs\[1\]: paper DDSAR: block 0"):
        score_batch([presets["ddsar-0.5g"], stem_two])


def test_release_non_positive_log_argument_names_the_block():
    thin = Arch.parse("SuperConvK3BNRELU(3,1,2,3)SuperResK3K3(1,32,2,8,1)SuperResK3K3(32,32,2,8,1)"
                      "SuperResK3K3(32,32,2,8,1)SuperResK3K3(32,32,2,8,1)")
    with pytest.raises(ValueError, match=r"block 0 \(C1\).*not positive"):
        score(thin, variant="damofd-release")


def test_bad_architectures():
    with pytest.raises(ValueError):
        score("SuperConvK3BNRELU(3,32,2,1)")
    with pytest.raises(ValueError, match="expected a pyddsar.Arch"):
        score(12)
    with pytest.raises(ValueError, match="sequence"):
        score_batch(str(presets["ddsar-0.5g"]))
    with pytest.raises(ValueError, match=r"archs\[1\]"):
        score_batch([presets["ddsar-0.5g"], "nonsense"])


def test_native_scorer_rejects_bad_config():
    core = pyddsar._core
    with pytest.raises(ValueError, match="variant"):
        core.Scorer(2, 0.25, list(LAMBDAS), 224, 224)
    with pytest.raises(ValueError, match="sum to 1"):
        core.Scorer(0, 0.25, [0.2] * 4 + [0.3], 224, 224)
    with pytest.raises(ValueError, match="5 values"):
        core.Scorer(0, 0.25, [0.5, 0.5], 224, 224)
    with pytest.raises(ValueError, match="alpha"):
        core.Scorer(0, -1.0, list(LAMBDAS), 224, 224)
    with pytest.raises(ValueError, match="resolution"):
        core.Scorer(0, 0.25, list(LAMBDAS), 0, 224)
    with pytest.raises(ValueError, match="grid"):
        core.Scorer(0, 0.25, list(LAMBDAS), 224, 224, grid=9)
    with pytest.raises(ValueError, match="block type"):
        core.Scorer(0, 0.25, list(LAMBDAS), 224, 224).batch_tuples([[(9, 3, 3, 8, 2, 0, 1, 1)] * 5])


def test_python_and_native_refuse_at_the_same_limits():
    """The limits Python validates against are the native ones (read from _core): one past each,
    both layers refuse; at each, both accept."""
    from pyddsar import _core
    import importlib

    score_module = importlib.import_module("pyddsar.score")  # the module (pyddsar.score is the function)

    assert (score_module.MAX_PROBE_GRID, score_module.MAX_PROBE_DEPTH, score_module.MAX_PROBE_FILTERS) == (4, 4, 16)
    assert score_module.MAX_RESOLUTION == pyddsar.arch.MAX_RESOLUTION == 100_000
    lambdas = list(score_module.DEFAULT_LAMBDAS)
    args = dict(literal=False, grid=1, depth=1, filters=1)
    _core.Scorer(0, 0.25, lambdas, 100_000, 100_000, **args)
    for w, h in [(100_001, 10), (10, 100_001)]:
        with pytest.raises(ValueError, match="at most 100000|between 1 and 100000"):
            score(presets["ddsar-0.5g"], resolution=(w, h))
        with pytest.raises(ValueError, match="between 1 and 100000"):
            _core.Scorer(0, 0.25, lambdas, w, h, **args)
    for field, hi in [("grid", 4), ("depth", 4), ("filters", 16)]:
        FsProbe(**{field: hi})
        with pytest.raises(ValueError, match=field):
            _core.Scorer(0, 0.25, lambdas, 64, 64, **{**args, field: hi + 1})
    off = [lambdas[0] + 2e-6] + lambdas[1:]
    with pytest.raises(ValueError, match="sum to 1"):
        _core.Scorer(0, 0.25, off, 64, 64, **args)
    with pytest.raises(ValueError, match="sum to 1"):
        score(presets["ddsar-0.5g"], lambdas=off)
    _core.Scorer(0, 0.25, [lambdas[0] + 5e-7] + lambdas[1:], 64, 64, **args)
