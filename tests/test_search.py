"""The native evolutionary search: budgets, spaces, reproducibility, checkpoints, bad input."""

import json

import pytest

import pyddsar
from pyddsar import Arch, presets, search
from pyddsar.search import BUDGETS, SPACES, SearchSpace, _arch_from_tuples, load_checkpoint


def small(**kw):
    args = dict(budget="0.5g", iterations=3000, population=32, seed=1)
    args.update(kw)
    return search(**args)


# ---------------------------------------------------------------- mutation
@pytest.mark.parametrize("space_name", ["mb", "res-btn"])
def test_mutations_change_one_block_and_stay_in_the_space(space_name):
    space = SPACES[space_name]
    native = space.native()
    parent = Arch.parse(space.seed)
    children = [_arch_from_tuples(t) for t in native.mutate(parent._native, 7, 3000)]
    seen_types, seen_kernels, seen_expansions, changed_blocks = set(), set(), set(), set()
    for child in children:
        # valid (Arch validates chaining), inside the space except possibly the total-layer limit
        why = native.why_outside(child._native)
        assert why == "" or why.startswith("total layers"), why
        differs = [i for i in range(5) if parent[i].to_dict() | {"in": 0} != child[i].to_dict() | {"in": 0}]
        assert len(differs) <= 1
        changed_blocks.update(differs)
        for i in range(1, 5):
            assert child[i].in_channels == child[i - 1].out_channels
            seen_types.add(child[i].type)
            seen_kernels.add(child[i].kernel)
            if child[i].type == "MB":
                seen_expansions.add(child[i].expansion)
        assert child[0].kernel == 3 and child[0].stride == 2
        for i in range(1, 5):
            assert child[i].out_channels % 8 == 0 and child[i].bottleneck % 8 == 0
            assert abs(child[i].layers - parent[i].layers) <= space.max_layer_step
    assert changed_blocks == {0, 1, 2, 3, 4}  # the stem mutates too (channels and layers)
    assert seen_types == set(space.types)
    assert seen_kernels == set(space.kernels)
    if space_name == "mb":
        assert seen_expansions == {1, 2, 4, 6}


def test_out_channels_are_scaled_by_a_factor_and_clamped():
    space = SPACES["mb"]
    parent = Arch.parse(space.seed)
    allowed = {
        i: {min(space.max_channels, max(space.min_channels, max(8, round(parent[i].out_channels * f / 8) * 8)))
            for f in space.channel_factors}
        for i in range(1, 5)
    }
    for t in space.native().mutate(parent._native, 3, 2000):
        child = _arch_from_tuples(t)
        for i in range(1, 5):
            if child[i].out_channels != parent[i].out_channels:
                assert child[i].out_channels in allowed[i]


def test_published_backbones_lie_in_their_spaces():
    for budget, (flops, space) in BUDGETS.items():
        arch = presets[f"ddsar-{budget}"]
        assert SPACES[space].contains(arch), budget
        assert arch.flops() <= flops


# ---------------------------------------------------------------- the loop
def test_result_is_under_budget_and_scored_consistently():
    r = small()
    assert r.flops == r.best.flops() <= r.budget_flops == 403_000_000
    assert r.params == r.best.params()
    assert SPACES["mb"].contains(r.best)
    assert r.score == pyddsar.score(r.best)  # the native loop's score is the public score, exactly
    assert r.report.total == r.score
    assert r.iterations == 3000 and not r.interrupted
    its = [h[0] for h in r.history]
    assert its[0] == 0 and its[-1] == 3000 and its == sorted(its)
    bests = [h[1] for h in r.history]
    assert bests == sorted(bests)  # the best never gets worse
    assert all(mean <= best + 1e-9 for _, best, mean in r.history)
    counters = r.counters
    assert sum(counters.values()) == 3000
    json.loads(r.to_json())


def test_same_seed_same_result_different_seed_different_run():
    a, b, c = small(seed=5), small(seed=5), small(seed=6)
    assert str(a.best) == str(b.best) and a.score == b.score and a.history == b.history
    assert a.history != c.history


def test_chunking_does_not_change_the_result():
    a = small(chunk=7)
    b = small(chunk=100000)
    assert a.history == b.history and str(a.best) == str(b.best)


def test_python_score_fn_gives_the_same_search():
    # the slower path with the same scores must walk exactly the same way
    native = small(iterations=1500, population=16)
    python = small(iterations=1500, population=16, score_fn=lambda arch: pyddsar.score(arch))
    assert python.history == native.history and str(python.best) == str(native.best)
    assert python.report is None


def test_custom_score_fn_is_maximised():
    # score = -FLOPs: the best should be far cheaper than the seed
    r = small(iterations=2000, score_fn=lambda arch: -arch.flops())
    assert r.flops < Arch.parse(SPACES["mb"].seed).flops() / 2
    assert r.score == -r.flops


def test_restarts_report_every_run_and_return_the_best():
    r = small(restarts=3, iterations=1500)
    singles = [small(seed=s, iterations=1500) for s in (1, 2, 3)]
    assert [s for s, _ in r.runs] == [1, 2, 3]
    assert [score for _, score in r.runs] == [s.score for s in singles]
    assert r.score == max(s.score for s in singles)


def test_params_budget_and_max_layers():
    r = small(params_budget=60_000, max_layers=8)
    assert r.params <= 60_000
    assert sum(b.layers for b in r.best) <= 8


def test_budget_numbers_and_spaces():
    r = small(budget=150e6, space="res-btn", iterations=1000)
    assert r.budget_flops == 150_000_000 and r.flops <= 150_000_000
    assert all(b.type in ("Res", "Btn") for b in r.best.blocks[1:])


@pytest.mark.parametrize("budget", ["0.5g", "2.5g", "10g", "34g"])
@pytest.mark.parametrize("variant", ["paper", "damofd-release"])
def test_full_search_beats_the_published_backbone(budget, variant):
    # the acceptance run of the issue: 96,000 iterations, population 256
    r = search(budget, iterations=96000, population=256, seed=0, variant=variant)
    published = pyddsar.score(presets[f"ddsar-{budget}"], variant=variant)
    assert r.flops <= r.budget_flops
    assert r.score >= published


# ---------------------------------------------------------------- checkpoints
def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path):
    path = str(tmp_path / "checkpoint.json")
    full = small(iterations=4000)
    calls = []

    def stop_after_first_chunk(done, total, best, rate):
        calls.append(done)
        if len(calls) == 1:
            raise KeyboardInterrupt

    part = small(iterations=4000, chunk=1000, checkpoint=path, progress=stop_after_first_chunk)
    assert part.interrupted and part.iterations == 1000
    assert load_checkpoint(path)["runs"][0]["iteration"] == 1000
    resumed = small(iterations=4000, chunk=1000, checkpoint=path, resume=True)
    assert not resumed.interrupted
    assert resumed.history == full.history and str(resumed.best) == str(full.best) and resumed.score == full.score


def test_corrupt_checkpoint_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "checkpoint.json"
    path.write_text('{"format": "pyddsar-search-checkpoint", "version": 1, "runs": [')
    before = path.read_bytes()
    with pytest.raises(ValueError, match="corrupt"):
        small(checkpoint=str(path), resume=True)
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="no checkpoint"):
        small(checkpoint=str(tmp_path / "missing.json"), resume=True)


def test_checkpoint_of_another_search_is_refused(tmp_path):
    path = str(tmp_path / "checkpoint.json")
    small(iterations=1000, checkpoint=path)
    with pytest.raises(ValueError, match="different search.*population"):
        small(iterations=1000, population=33, checkpoint=path, resume=True)


def test_tampered_checkpoint_population_is_refused(tmp_path):
    path = str(tmp_path / "checkpoint.json")
    small(iterations=1000, checkpoint=path)
    data = json.load(open(path))
    data["runs"][0]["population"][0][0] = str(presets["ddsar-34g"])  # far over the 0.5g budget
    with open(path, "w") as f:
        json.dump(data, f)
    with pytest.raises(ValueError, match="corrupt"):
        small(iterations=1000, checkpoint=path, resume=True)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        (dict(budget=1e6), "below the smallest network"),
        (dict(budget="3g"), "unknown budget"),
        (dict(budget=-5), "positive"),
        (dict(space="vgg"), "unknown search space"),
        (dict(population=0), "population must be at least 1"),
        (dict(iterations=-1), "iterations must be at least 0"),
        (dict(seed=-1), "seed"),
        (dict(variant="zen"), "variant"),
        (dict(restarts=2, score_fn=lambda a: 0.0), "restarts"),
        (dict(seed_arch=str(presets["ddsar-2.5g"])), "outside"),
        (dict(resume=True), "checkpoint path"),
    ],
)
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        small(**kwargs)


def test_bad_score_fn_value():
    with pytest.raises(ValueError, match="finite float"):
        small(score_fn=lambda arch: float("nan"))


def test_custom_space_validation():
    bad = SearchSpace(name="tiny", types=("MB",), expansions=(3,))
    with pytest.raises(ValueError, match="expansions"):
        small(space=bad)
    with pytest.raises(ValueError, match="stage type"):
        small(space=SearchSpace(name="x", types=("Conv",)))
