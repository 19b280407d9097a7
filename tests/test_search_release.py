"""The release's search, rule by rule, against plain re-statements of ly19965/DamoFD DDSAR/:
SearchSpace/search_space_IDW_fixfc.py and search_space_XXBL.py (candidate lists), evolution_search.py
(the loop), PlainNet/basic_blocks.py + Masternet.py (FLOPs), scripts/DamoFd_*.sh (settings).
docs/search.md cites the lines."""

import collections
import random

import pytest

import pyddsar
from pyddsar import Arch
from pyddsar.arch import BLOCK_TYPES
from pyddsar.search import BUDGET_PRESETS, SPACES, Constraints, search
from pyddsar.search_space import checked_budget


# ------------------------------------------------------------------ the release, re-stated plainly
def smart_round(x, base=8):  # global_utils.smart_round with a base: Python's round (ties to even)
    return max(base, round(x / float(base)) * base)


def idw_out(c):
    return sorted({smart_round(min(128, max(8, x))) for x in [c * 2.5, c * 2, c * 1.5, c * 1.25, c]}, reverse=True)


def xxbl_out(c):
    xs = [c * 1.75, c * 2, c * 1.5, c * 1.25, c * 1, c / 1.25, c / 1.5, c / 2, c / 2.5]
    return sorted({smart_round(min(1024, max(8, x))) for x in xs}, reverse=True)


def idw_bottleneck(c):
    xs = [c * 2.5, c * 2, c * 1.5, c * 1.25, c, c / 1.25, c / 1.5, c / 2, c / 2.5]
    return sorted({smart_round(max(8, x)) for x in xs}, reverse=True)


def xxbl_bottleneck(c):
    xs = [c * 2.5, c * 2, c * 1.5, c * 1.25, c, c / 1.25, c / 1.5, c / 2, c / 2.5]
    return sorted({smart_round(min(256, max(8, x))) for x in xs}, reverse=True)


def sublayers(n):
    return sorted({max(0, round(x)) for x in [n, n + 1, n + 2, n - 1, n - 2]}, reverse=True)


IDW_TYPES = [[("MB", k, e) for k in (3, 5, 7) for e in (1, 2, 4, 6)]]  # E1K3, E2K3, E4K3, E6K3, E1K5, ...
XXBL_TYPES = [[("Btn", 3, 1), ("Btn", 5, 1), ("Btn", 7, 1)], [("Res", 3, 1), ("Res", 5, 1), ("Res", 7, 1)]]


def gen_search_space(block, space):
    """gen_search_space for a stage block, statement for statement (the list is appended, then rebound
    to a de-duplicated copy, so the appended object keeps receiving the next type's candidates), and
    flattened as evolution_search does before random.choice."""
    families, out_list, btl_list = (
        (IDW_TYPES, idw_out, idw_bottleneck) if space == "damofd-mb" else (XXBL_TYPES, xxbl_out, xxbl_bottleneck)
    )
    student_blocks_list_list = []
    for family in families:
        student_blocks_list = []
        for form in family:
            for out in out_list(block.out_channels):
                for layers in sublayers(block.layers):
                    for btl in btl_list(block.bottleneck):
                        if out < 8 or btl < 8 or layers <= 0:
                            continue
                        student_blocks_list.append((form, out, layers, btl))
            student_blocks_list = list(set(student_blocks_list))
            student_blocks_list_list.append(student_blocks_list)
    return [x for sublist in student_blocks_list_list for x in sublist]


# ------------------------------------------------------------------ candidate lists
def outcome(t):
    """(form, out, layers, bottleneck) of a native block tuple (type, kernel, in, out, stride, btn, layers, E)."""
    return (BLOCK_TYPES[t[0]], t[1], t[7]), t[3], t[6], t[5]


@pytest.mark.parametrize(
    "space,structure,index",
    [
        ("damofd-mb", SPACES["damofd-mb"].seed, 2),
        ("damofd-mb", "SuperConvK3BNRELU(3,32,2,1)SuperResIDWE1K3(32,120,2,8,1)SuperResIDWE4K3(120,128,2,200,5)"
                      "SuperResIDWE1K3(128,128,2,48,2)SuperResIDWE1K3(128,128,2,96,1)", 1),
        ("damofd-mb", SPACES["damofd-mb"].seed, 4),
        ("damofd-res", BUDGET_PRESETS["2.5g"].seed, 1),
        ("damofd-res", BUDGET_PRESETS["34g"].seed, 4),
        ("damofd-res", "SuperConvK3BNRELU(3,24,2,2)SuperResK1K5K1(24,8,2,8,5)SuperResK3K3(8,48,2,256,1)"
                       "SuperResK3K3(48,1024,2,128,2)SuperResK3K3(1024,128,2,16,3)", 3),
    ],
)
def test_redraw_follows_the_release_candidate_list(space, structure, index):
    arch = Arch.parse(structure)
    release = collections.Counter(gen_search_space(arch[index], space))
    total = sum(release.values())
    n = 60000
    ours = collections.Counter(outcome(t) for t in SPACES[space].native().redraw(arch._native, index, 11, n))
    assert set(ours) <= set(release), set(ours) - set(release)  # nothing the release could not draw
    # the marginals of the draw (form, out, layers, bottleneck) against the release's list
    for field in range(4):
        want, got = collections.Counter(), collections.Counter()
        for key, count in release.items():
            want[key[field]] += count / total
        for key, count in ours.items():
            got[key[field]] += count / n
        assert set(got) == set(want), field
        for value, p in want.items():
            sigma = max(0.0, p * (1 - p) / n) ** 0.5
            assert abs(got[value] - p) < 5 * sigma + 1e-9, (field, value, got[value], p)


def test_form_weights_are_the_aliased_list_quirk():
    # how often each form stands in the flattened list: 12, 12, 11, ..., 2 times the candidates of one
    # form in the 0.5G space, 3, 3, 2 per family in the other (measured on the release's own code too,
    # docs/search.md)
    for space, arch, families in (("damofd-mb", Arch.parse(SPACES["damofd-mb"].seed), IDW_TYPES),
                                  ("damofd-res", Arch.parse(BUDGET_PRESETS["2.5g"].seed), XXBL_TYPES)):
        b = arch[1]
        counts = collections.Counter(form for form, *_ in gen_search_space(b, space))
        outs, btls = (idw_out, idw_bottleneck) if space == "damofd-mb" else (xxbl_out, xxbl_bottleneck)
        per_form = len(outs(b.out_channels)) * len([n for n in sublayers(b.layers) if n > 0]) * len(btls(b.bottleneck))
        forms = [f for family in families for f in family]
        assert SPACES[space].forms() == forms
        assert tuple(counts[f] // per_form for f in forms) == SPACES[space].choice_weights
    assert SPACES["damofd-mb"].choice_weights == (12, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2)
    assert SPACES["damofd-res"].choice_weights == (3, 3, 2, 3, 3, 2)


@pytest.mark.parametrize("c", range(8, 1033, 8))
def test_channel_candidates_for_every_width(c):
    # every width the spaces can hold: the distinct candidates equal the release's lists
    arch = Arch.parse(f"SuperConvK3BNRELU(3,24,2,1)SuperResK3K3(24,{min(c, 1024)},2,{min(c, 256)},2)"
                      f"SuperResK3K3({min(c, 1024)},64,2,64,1)SuperResK3K3(64,64,2,64,1)SuperResK3K3(64,64,2,64,1)")
    outs = {t[3] for t in SPACES["damofd-res"].native().redraw(arch._native, 1, c, 3000)}
    assert outs == set(xxbl_out(min(c, 1024)))
    btls = {t[5] for t in SPACES["damofd-res"].native().redraw(arch._native, 1, c, 3000)}
    assert btls == set(xxbl_bottleneck(min(c, 256)))
    if c <= 128:
        mb = Arch.parse(f"SuperConvK3BNRELU(3,32,2,1)SuperResIDWE1K3(32,{c},2,{c},1)SuperResIDWE1K3({c},128,2,8,1)"
                        "SuperResIDWE1K3(128,128,2,8,1)SuperResIDWE1K3(128,128,2,8,1)")
        draws = SPACES["damofd-mb"].native().redraw(mb._native, 1, c, 3000)
        assert {t[3] for t in draws} == set(idw_out(c))
        assert {t[5] for t in draws} == set(idw_bottleneck(c))


# ------------------------------------------------------------------ mutation and loop
@pytest.mark.parametrize("space", ["damofd-mb", "damofd-res"])
def test_the_stem_never_changes_and_at_most_two_blocks_do(space):
    sp = SPACES[space]
    parent = Arch.parse(sp.seed)
    changed_counts = collections.Counter()
    for count in (1, 2):
        for t in sp.native().mutate(parent._native, 5, 4000, count):
            child = Arch._from_native_tuples(t)
            assert child[0] == parent[0]  # evolution_search: random.randint(1, len(block_list) - 1)
            changed = sum(child[i].to_dict() | {"in": 0} != parent[i].to_dict() | {"in": 0} for i in range(1, 5))
            assert changed <= count
            changed_counts[count, changed] += 1
    # two draws pick the same block a quarter of the time (then it changes once)
    two = changed_counts[2, 2] / 4000
    assert 0.6 < two < 0.76, two


class Recorder:
    """A score_fn that remembers what it scored (the release's score, so the loop is the real one)."""

    def __init__(self):
        self.seen = []

    def __call__(self, arch):
        self.seen.append(arch)
        return pyddsar.score(arch, variant="damofd-release")


def release_flops(arch, res=224):
    """Masternet.get_FLOPs over basic_blocks, re-stated: convs (in*out*k^2*r^2//s^2//groups), one per
    BN output, and each residual projection at (its output size / its stride)^2 (the quirk)."""
    total, r = 0.0, res

    def conv(cin, cout, k, s, groups=1):
        nonlocal r
        out = r // s
        f = cin * cout * k * k * r * r // s // s // groups + out * out * cout
        r = out
        return f

    for b in arch:
        for i in range(b.layers):
            cin, s = (b.in_channels, b.stride) if i == 0 else (b.out_channels, 1)
            if b.type == "Conv":
                total += conv(cin, b.out_channels, b.kernel, s)
                continue
            units = []
            if b.type == "Res":
                units.append((cin, b.out_channels, [(cin, b.bottleneck, b.kernel, s, 1), (b.bottleneck, b.out_channels, b.kernel, 1, 1)], s, i == 0))
            elif b.type == "Btn":
                branch = lambda c, st: [(c, b.bottleneck, 1, 1, 1), (b.bottleneck, b.bottleneck, b.kernel, st, 1), (b.bottleneck, b.out_channels, 1, 1, 1)]  # noqa: E731
                units += [(cin, b.out_channels, branch(cin, s), s, i == 0), (b.out_channels, b.out_channels, branch(b.out_channels, 1), 1, False)]
            else:
                d1, d2 = smart_round(b.bottleneck * b.expansion), smart_round(b.out_channels * b.expansion)
                units.append((cin, b.bottleneck, [(cin, d1, 1, 1, 1), (d1, d1, b.kernel, s, d1), (d1, b.bottleneck, 1, 1, 1)], s, i == 0))
                units.append((b.bottleneck, b.out_channels, [(b.bottleneck, d2, 1, 1, 1), (d2, d2, b.kernel, 1, d2), (d2, b.out_channels, 1, 1, 1)], 1, False))
            for uin, uout, convs, st, proj in units:
                for c in convs:
                    total += conv(*c)
                if proj or st > 1 or uin != uout:  # ResBlockProj always, ResBlock when shapes differ
                    total += uin * uout * (r / st) ** 2 + (r / st) ** 2 * uout
    return total


def test_release_flops_restated():
    rng = random.Random(3)
    archs = [pyddsar.presets[k] for k in pyddsar.presets] + [Arch.parse(p.seed) for p in BUDGET_PRESETS.values()]
    for space in ("damofd-mb", "damofd-res"):
        archs += [Arch._from_native_tuples(t) for t in SPACES[space].native().mutate(archs[0 if space == "damofd-mb" else 1]._native,
                                                                               rng.randrange(1000), 60, 2)]
    for a in archs:
        assert pyddsar._core.release_flops(a._native, 224, 224) == pytest.approx(release_flops(a), rel=1e-12), str(a)


def test_budgets_and_seeds_are_the_scripts():
    assert {k: p.release_flops_224 for k, p in BUDGET_PRESETS.items()} == {
        "0.5g": 65e6, "2.5g": 345e6, "10g": 1414e6, "34g": 4375e6}  # scripts/DamoFd_*.sh budget_flops
    scripts = {  # the echo lines of scripts/DamoFd_*.sh, whose channel chains are repaired by mutation
        "0.5g": "SuperConvK3BNRELU(3,32,2,1)SuperResIDWE1K3(8,32,2,8,1)SuperResIDWE4K3(32,48,2,32,1)"
                "SuperResIDWE1K3(48,96,2,48,1)SuperResIDWE1K3(96,128,2,96,1)",
        "2.5g": "SuperConvK3BNRELU(3,24,2,2)SuperResK3K3(32,32,2,32,3)SuperResK3K3(32,48,2,64,2)"
                "SuperResK3K3(48,64,2,128,2)SuperResK3K3(64,128,2,16,3)",
        "10g": "SuperConvK3BNRELU(3,24,2,1)SuperResK3K3(24,48,2,64,5)SuperResK3K3(48,64,2,64,5)"
               "SuperResK3K3(64,96,2,128,3)SuperResK3K3(96,128,2,16,1)",
        "34g": "SuperConvK3BNRELU(3,56,2,2)SuperResK3K3(56,112,2,96,5)SuperResK3K3(112,224,2,96,5)"
               "SuperResK3K3(224,448,2,128,3)SuperResK3K3(448,1024,2,16,1)",
    }
    for k, text in scripts.items():
        blocks = text.replace(")S", ")\nS").split("\n")
        chained, prev = [], None
        for blk in blocks:
            head, args = blk.split("(")
            vals = args.rstrip(")").split(",")
            if prev is not None:
                vals[0] = prev
            prev = vals[1]
            chained.append(f"{head}({','.join(vals)})")
        assert BUDGET_PRESETS[k].seed == "".join(chained), k
    assert checked_budget("0.5g", "release") == 65_000_000 and checked_budget(403e6, "release") == int(403e6 * 224 * 224 / (640 * 480))


@pytest.mark.parametrize("budget", ["0.5g", "2.5g"])
def test_the_loop_follows_the_release(budget):
    space = BUDGET_PRESETS[budget].space
    seed = Arch.parse(BUDGET_PRESETS[budget].seed)
    rec = Recorder()
    r = search(budget, space=space, iterations=1500, population=64, seed=2, score_fn=rec, budget_check="release",
               constraints=Constraints())
    limit = SPACES[space].max_total_layers
    for a in rec.seen:  # only children that passed the release's checks are scored
        assert a[0] == seed[0]
        assert sum(b.layers for b in a) <= limit and max(b.layers for b in a[1:]) <= 5
        assert release_flops(a) <= checked_budget(budget, "release")
    # while the population has at most 10 members, children come from the seed with one change
    for a in rec.seen[:11]:
        assert sum(a[i].to_dict() | {"in": 0} != seed[i].to_dict() | {"in": 0} for i in range(1, 5)) <= 1
    later = rec.seen[11:]
    assert any(sum(a[i].to_dict() | {"in": 0} != seed[i].to_dict() | {"in": 0} for i in range(1, 5)) > 1 for a in later)
    c = r.counters
    assert c["accepted"] == len(rec.seen) and sum(c.values()) == 1500
    assert c["over_budget"] > 0 and (budget == "0.5g" or c["outside_space"] > 0)  # both are dropped
    assert r.score == max(pyddsar.score(a, variant="damofd-release") for a in rec.seen)
