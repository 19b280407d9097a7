"""Latency tables and latency-budget searches (issue 20): the native prediction against a plain
statement of the model, tables with closed-form latencies, refusal of foreign or incomplete tables,
searches and families under latency budgets, and one small table measured for real."""

import dataclasses
import json
import math
import statistics

import numpy as np
import pytest

import pyddsar
from pyddsar import Arch
from pyddsar.latency import (Environment, Grid, LatencyTable, _axis, build_latency_table, latency_items,
                             load_latency_table, plan_grids, sample_archs)
from pyddsar.search_family import search_family

ENV = Environment(device="cpu", device_name="test cpu", runtime="torch", runtime_version="0", threads=1, torch="0",
                  pyddsar=pyddsar.__version__, python="3")


def round8(x):
    return max(8, int(round(x / 8)) * 8)


def plain_ops(arch, w, h):
    """The operations of the latency model, restated from SPEC section 3 / models.backbone (order aside):
    (op, kernel, stride, act, h, w, cin, cout) with cout 0 for depthwise convs and joins."""
    ops = []

    def down(h, w, s):
        return -(-h // s), -(-w // s)

    for bi, b in enumerate(arch.blocks):
        for i in range(b.layers):
            cin = b.in_channels if i == 0 else b.out_channels
            s = b.stride if i == 0 else 1
            first = i == 0
            if b.type == "Conv":
                ops.append(("conv", b.kernel, s, True, h, w, cin, b.out_channels))
                h, w = down(h, w, s)
            elif b.type == "Res":
                h2, w2 = down(h, w, s)
                ops += [("conv", b.kernel, s, True, h, w, cin, b.bottleneck),
                        ("conv", b.kernel, 1, False, h2, w2, b.bottleneck, b.out_channels)]
                if first or cin != b.out_channels:
                    ops.append(("conv", 1, s, False, h, w, cin, b.out_channels))
                ops.append(("join", 0, 1, True, h2, w2, b.out_channels, 0))
                h, w = h2, w2
            elif b.type == "Btn":
                h2, w2 = down(h, w, s)
                ops += [("conv", 1, 1, True, h, w, cin, b.bottleneck), ("conv", b.kernel, s, True, h, w, b.bottleneck, b.bottleneck),
                        ("conv", 1, 1, False, h2, w2, b.bottleneck, b.out_channels)]
                if first or cin != b.out_channels:
                    ops.append(("conv", 1, s, False, h, w, cin, b.out_channels))
                ops.append(("join", 0, 1, True, h2, w2, b.out_channels, 0))
                ops += [("conv", 1, 1, True, h2, w2, b.out_channels, b.bottleneck),
                        ("conv", b.kernel, 1, True, h2, w2, b.bottleneck, b.bottleneck),
                        ("conv", 1, 1, False, h2, w2, b.bottleneck, b.out_channels), ("join", 0, 1, True, h2, w2, b.out_channels, 0)]
                h, w = h2, w2
            else:  # MB: two inverted-residual halves
                h2, w2 = down(h, w, s)
                d1, d2 = round8(b.expansion * b.bottleneck), round8(b.expansion * b.out_channels)
                ops += [("conv", 1, 1, True, h, w, cin, d1), ("depthwise", b.kernel, s, True, h, w, d1, 0),
                        ("conv", 1, 1, False, h2, w2, d1, b.bottleneck)]
                if first or cin != b.bottleneck:
                    ops.append(("conv", 1, s, False, h, w, cin, b.bottleneck))
                ops.append(("join", 0, 1, True, h2, w2, b.bottleneck, 0))
                ops += [("conv", 1, 1, True, h2, w2, b.bottleneck, d2), ("depthwise", b.kernel, 1, True, h2, w2, d2, 0),
                        ("conv", 1, 1, False, h2, w2, d2, b.out_channels)]
                if b.bottleneck != b.out_channels:
                    ops.append(("conv", 1, 1, False, h2, w2, b.bottleneck, b.out_channels))
                ops.append(("join", 0, 1, True, h2, w2, b.out_channels, 0))
                h, w = h2, w2
    return ops


def closed_form(op, k, s, act, h, w, ci, co):
    """A latency bilinear in the channels (what the grid interpolation must reproduce exactly)."""
    ho, wo = -(-h // s), -(-w // s)
    macs = ci * co * k * k * ho * wo if op == "conv" else ci * max(k, 1) ** 2 * ho * wo
    return 0.002 + 1e-7 * macs + (1e-5 * ci if act else 0.0) + 3e-6 * co


def synthetic_table(space, size=(640, 480), scale=1.25, offset=0.5, detector=None, drop=None, env=ENV, fill=closed_form):
    plan = plan_grids(space, size, detector=detector)
    grids = []
    for (op, k, s, a, h, w), cins, couts in plan:
        if drop and drop((op, k, s, a, h, w)):
            continue
        ms = tuple(fill(op, k, s, a, h, w, ci, co) for ci in cins for co in couts)
        grids.append(Grid(op, k, s, a, h, w, cins, couts, ms))
    return LatencyTable(space, size, env, tuple(grids), scale=scale, offset_ms=offset, detector=detector,
                        settings={"max_flops": 806_000_000})


@pytest.fixture(scope="module")
def mb_table():
    return synthetic_table("damofd-mb", detector={"name": "ddsar-0.5g", "neck_channels": 16, "levels": [2, 3, 4],
                                                  "rest_ms": 2.0})


@pytest.fixture(scope="module")
def mb_archs():
    return sample_archs("damofd-mb", 30, seed=5)


# -- the operation list ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ddsar-0.5g", "ddsar-2.5g", "ddsar-10g"])
def test_operations_are_the_plain_statement(name):
    arch = pyddsar.presets[name]
    assert sorted(latency_items(arch, (640, 480))) == sorted(plain_ops(arch, 640, 480))


def test_operations_match_the_torch_backbone():
    """One conv item per Conv2d of the built backbone (same shapes), one join per Residual."""
    import torch

    from pyddsar.models.backbone import Backbone, Residual

    for arch in [pyddsar.presets["ddsar-0.5g"], pyddsar.presets["ddsar-2.5g"], *sample_archs("damofd-mb", 5, seed=2)]:
        net = Backbone(arch, fused=True)
        convs = sorted((m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.groups > 1)
                       for m in net.modules() if isinstance(m, torch.nn.Conv2d))
        items = latency_items(arch, (640, 480))
        mine = sorted((ci, ci if op == "depthwise" else co, k, s, op == "depthwise") for op, k, s, a, h, w, ci, co in items
                      if op != "join")
        assert mine == convs
        assert sum(op == "join" for op, *_ in items) == sum(isinstance(m, Residual) for m in net.modules())


# -- prediction -----------------------------------------------------------------------------------
def test_prediction_is_scale_times_the_sum_plus_offset(mb_table, mb_archs):
    for arch in mb_archs + [pyddsar.presets["ddsar-0.5g"]]:
        plain = sum(closed_form(*op) for op in plain_ops(arch, 640, 480))
        assert mb_table.predict(arch) == pytest.approx(1.25 * plain + 0.5, rel=1e-9)


def test_detector_prediction_adds_the_lateral_convs_and_the_rest(mb_table, mb_archs):
    for arch in mb_archs[:10]:
        sizes, w, h = [], 640, 480
        for b in arch.blocks:
            w, h = -(-w // b.stride), -(-h // b.stride)
            sizes.append((w, h))
        lateral = sum(closed_form("conv", 1, 1, False, sizes[l][1], sizes[l][0], arch[l].out_channels, 16) for l in (2, 3, 4))
        assert mb_table.predict(arch, detector=True) == pytest.approx(mb_table.predict(arch) + 1.25 * lateral + 2.0, rel=1e-9)


def test_bilinear_interpolation_between_grid_points():
    """A value that is not bilinear (ci^2) is interpolated linearly between neighbours, as stated, by
    the native lookup the search uses; outside the grid it is missing, not extrapolated."""
    g = Grid("conv", 1, 1, False, 15, 20, (8, 16, 32), (8, 64), tuple(float(ci * ci + co) for ci in (8, 16, 32) for co in (8, 64)))
    t = LatencyTable("damofd-mb", (640, 480), ENV, (g,))
    arch = pyddsar.presets["ddsar-0.5g"]  # needs far more than this grid
    assert math.isnan(t._native.predict(arch._native, False)[0])
    for ci, co in [(8, 8), (12, 8), (24, 36), (32, 64), (20, 50)]:
        i0, i1 = (8, 16) if ci <= 16 else (16, 32)
        ti = (ci - i0) / (i1 - i0)
        tj = (co - 8) / 56
        f = lambda a, b: a * a + b  # noqa: E731
        expected = (1 - ti) * ((1 - tj) * f(i0, 8) + tj * f(i0, 64)) + ti * ((1 - tj) * f(i1, 8) + tj * f(i1, 64))
        assert t.lookup("conv", 1, 1, False, 15, 20, ci, co) == pytest.approx(expected, rel=1e-12)
    for ci, co, h in [(4, 8, 15), (8, 65, 15), (8, 8, 16)]:
        with pytest.raises(ValueError, match="lacks conv"):
            t.lookup("conv", 1, 1, False, h, 20, ci, co)


def test_a_missing_operation_is_named(mb_archs):
    table = synthetic_table("damofd-mb", drop=lambda key: key[0] == "depthwise" and key[1] == 7)
    k7 = next(a for a in mb_archs if any(b.kernel == 7 for b in a.blocks[1:]))
    assert "depthwise conv 7x7" in table.missing(k7)
    ms, missing = table.try_predict(k7)
    assert math.isnan(ms) and missing == table.missing(k7)
    k3 = next(a for a in mb_archs if all(b.kernel != 7 for b in a.blocks))
    assert table.try_predict(k3) == (table.predict(k3), "") and table.missing(k3) == ""
    with pytest.raises(ValueError, match="lacks depthwise conv 7x7 .* channels stride [12] \\+relu at"):
        table.predict(k7)
    # channels beyond a grid are missing too (nothing is extrapolated)
    wide = Arch.parse("SuperConvK3BNRELU(3,32,2,1)SuperResIDWE6K3(32,128,2,2048,1)SuperResIDWE1K3(128,128,2,48,1)"
                      "SuperResIDWE1K3(128,128,2,96,1)SuperResIDWE1K3(128,128,2,96,1)")
    assert table.missing(wide)


def test_grid_axis_spans_the_walk_with_neighbours():
    # every multiple of 8 up to 128, then the coarser grid
    assert _axis({32}, lambda c: True) == (24, 32, 40, 48, 56, 64)
    assert _axis({3}, lambda c: True) == (3, 8)
    assert _axis({20, 40}, lambda c: c <= 64) == (16, 24, 32, 40, 48, 56, 64)
    assert _axis({120}, lambda c: True) == (112, 120, 128, 160, 192, 256)


def test_the_table_file_round_trips(tmp_path, mb_table, mb_archs):
    p = mb_table.save(str(tmp_path / "t.json"))
    back = load_latency_table(p)
    assert back.to_dict() == mb_table.to_dict()
    for a in mb_archs[:5]:
        assert back.predict(a, detector=True) == mb_table.predict(a, detector=True)
    bad = json.loads(open(p).read())
    bad["format"] = "x"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="not a pyddsar latency table"):
        load_latency_table(str(tmp_path / "bad.json"))
    (tmp_path / "trunc.json").write_text(open(p).read()[:100])
    with pytest.raises(ValueError, match="not a readable latency table"):
        load_latency_table(str(tmp_path / "trunc.json"))
    with pytest.raises(ValueError, match="no latency table at"):
        load_latency_table(str(tmp_path / "absent.json"))


def test_grids_are_validated():
    with pytest.raises(ValueError, match="strictly increasing"):
        LatencyTable("damofd-mb", (640, 480), ENV, (Grid("conv", 1, 1, False, 15, 20, (16, 8), (8,), (1.0, 1.0)),))
    with pytest.raises(ValueError, match="values for a"):
        LatencyTable("damofd-mb", (640, 480), ENV, (Grid("conv", 1, 1, False, 15, 20, (8, 16), (8,), (1.0,)),))
    with pytest.raises(ValueError, match=">= 0 milliseconds"):
        LatencyTable("damofd-mb", (640, 480), ENV, (Grid("join", 0, 1, True, 15, 20, (8,), (0,), (-1.0,)),))


# -- foreign tables -------------------------------------------------------------------------------
def test_a_table_from_another_device_or_runtime_is_refused(mb_table):
    from pyddsar.latency import current_environment

    here = current_environment("cpu", "torch")
    mine = dataclasses.replace(mb_table, environment=here)
    mine.check_environment(here)  # the same machine: accepted silently
    for field, value in [("device_name", "another cpu"), ("runtime", "onnxruntime"), ("threads", here.threads + 7),
                         ("device", "cuda")]:
        foreign = dataclasses.replace(mb_table, environment=dataclasses.replace(here, **{field: value}))
        with pytest.raises(ValueError, match=f"measured elsewhere \\({field}: table"):
            foreign.check_environment(here)
        with pytest.warns(UserWarning, match="measured elsewhere"):
            foreign.check_environment(here, allow_foreign=True)
    older = dataclasses.replace(mb_table, environment=dataclasses.replace(here, torch="1.0"))
    with pytest.warns(UserWarning, match="other versions"):
        older.check_environment(here)


def test_a_cuda_table_is_refused_on_a_machine_without_a_gpu(mb_table):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    gpu = dataclasses.replace(mb_table, environment=dataclasses.replace(mb_table.environment, device="cuda",
                                                                           device_name="NVIDIA H200"))
    with pytest.raises(ValueError, match=r"measured elsewhere \(measured on cuda \(NVIDIA H200\).*no CUDA device"):
        gpu.check_environment()


def test_search_refuses_a_foreign_table(mb_table):
    with pytest.raises(ValueError, match="measured elsewhere"):
        pyddsar.search(budget=None, budget_latency_ms=30, latency_table=mb_table, iterations=10)


# -- searches -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_table():
    """The closed-form table, marked as measured here (so searches accept it)."""
    from pyddsar.latency import current_environment

    t = synthetic_table("damofd-mb", detector={"name": "ddsar-0.5g", "neck_channels": 16, "levels": [2, 3, 4], "rest_ms": 2.0})
    return dataclasses.replace(t, environment=current_environment("cpu", "torch"))


@pytest.mark.parametrize("of", ["backbone", "detector"])
def test_latency_budget_search_keeps_the_budget(local_table, of):
    seed_ms = local_table.predict(Arch.parse(pyddsar.SPACES["damofd-mb"].seed), detector=of == "detector")
    budget = round(seed_ms * 1.3, 3)
    r = pyddsar.search(budget=None, budget_latency_ms=budget, latency_table=local_table, latency_of=of,
                       iterations=3000, seed=1)
    assert r.predicted_latency_ms == local_table.predict(r.best, detector=of == "detector") <= budget
    assert r.budget_latency_ms == budget and r.latency["of"] == of
    assert r.counters["over_budget"] > 0  # the budget bound
    d = json.loads(r.to_json())
    assert d["predicted_latency_ms"] == r.predicted_latency_ms and d["latency"]["runtime"] == "torch"
    # the FLOPs budget still applies when given with the latency budget
    r2 = pyddsar.search(budget="300m", budget_latency_ms=budget, latency_table=local_table, latency_of=of,
                        iterations=2000, seed=1)
    assert r2.flops <= 300e6 and r2.predicted_latency_ms <= budget


def test_population_members_all_keep_the_latency_budget(local_table):
    """Every member the native loop kept is under the budget by the Python-side prediction."""
    from pyddsar import _core
    from pyddsar.search import Constraints

    space = pyddsar.SPACES["damofd-mb"]
    seed = Arch.parse(space.seed)
    budget = local_table.predict(seed, detector=True) * 1.2
    from pyddsar.score import _scorer

    scorer, _ = _scorer("damofd-release", None, None, (224, 224), None)
    evo = _core.Evolution(space.native(), Constraints().native(), 10**12, 0, 640, 480, False, 64, 2000, 3, 100,
                          seed._native, scorer, local_table._native, budget, True)
    evo.run(2000)
    pop = evo.population()
    assert len(pop) > 10
    for tuples, _score in pop:
        a = Arch._from_native_tuples(tuples)
        assert local_table.predict(a, detector=True) <= budget
        assert evo.predicted_latency(a._native) == pytest.approx(local_table.predict(a, detector=True))
    c = evo.counters()
    assert sum(c.values()) == 2000


def test_untabled_children_are_counted_and_named(local_table):
    table = dataclasses.replace(local_table, grids=tuple(g for g in local_table.grids
                                                         if not (g.op == "depthwise" and g.kernel == 7)))
    budget = table.predict(Arch.parse(pyddsar.SPACES["damofd-mb"].seed)) * 1.5
    r = pyddsar.search(budget=None, budget_latency_ms=budget, latency_table=table, latency_of="backbone",
                       iterations=2000, seed=0)
    assert r.counters["untabled"] > 0
    assert "depthwise conv 7x7" in r.settings["first_untabled"]
    assert all(b.kernel != 7 for b in r.best.blocks[1:])


def test_an_untabled_seed_is_refused_naming_the_operation(local_table):
    table = dataclasses.replace(local_table, grids=tuple(g for g in local_table.grids if g.h != 240))
    with pytest.raises(ValueError, match="lacks .* at 320x240"):
        pyddsar.search(budget=None, budget_latency_ms=50, latency_table=table, iterations=10,
                       seed_arch=pyddsar.SPACES["damofd-mb"].seed)


def test_a_budget_below_the_smallest_network_is_refused(local_table):
    with pytest.raises(ValueError, match="latency budget 0.001 ms is below the smallest network"):
        pyddsar.search(budget=None, budget_latency_ms=0.001, latency_table=local_table, iterations=10)


def test_budget_params_combines_with_latency(local_table):
    budget = local_table.predict(Arch.parse(pyddsar.SPACES["damofd-mb"].seed), detector=True) * 1.5
    r = pyddsar.search(budget=None, budget_latency_ms=budget, latency_table=local_table, budget_params=150_000,
                       iterations=2000)
    assert r.params <= 150_000 and r.predicted_latency_ms <= budget
    with pytest.raises(ValueError, match="budget_params or its old name"):
        pyddsar.search(budget_params=1000, params_budget=1000, iterations=1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(budget_latency_ms=10), "needs latency_table"),
    (dict(budget_latency_ms=-1, latency_table="x"), "positive number"),
    (dict(budget_latency_ms=[1, 2], latency_table="x"), "search_family"),
    (dict(latency_table="x"), "without budget_latency_ms"),
    (dict(budget=None), "needs budget_latency_ms or budget_params"),
    (dict(budget_latency_ms=5, latency_table="/nonexistent.json"), "no latency table at"),
])
def test_bad_latency_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pyddsar.search(iterations=1, **kwargs)


def test_a_table_of_another_space_is_refused(local_table):
    with pytest.raises(ValueError, match="built for the 'damofd-mb' space, not 'mb'"):
        pyddsar.search(budget=None, space="mb", budget_latency_ms=30, latency_table=local_table, iterations=10)


def test_a_family_in_one_call(local_table, tmp_path):
    seed_ms = local_table.predict(Arch.parse(pyddsar.SPACES["damofd-mb"].seed), detector=True)
    budgets = [round(seed_ms * f, 2) for f in (1.6, 1.0, 1.3)]
    fam = search_family(budgets, local_table, iterations=2500, seed=0)
    assert fam.budgets_ms == tuple(sorted(budgets))
    for b, r in zip(fam.budgets_ms, fam.results):
        assert r.predicted_latency_ms <= b and r.budget_latency_ms == b
    fam.write(str(tmp_path))
    for b in fam.budgets_ms:
        best = json.loads((tmp_path / f"{b:g}ms" / "best.json").read_text())
        assert best["budget_latency_ms"] == b
    rows = (tmp_path / "summary.csv").read_text().splitlines()
    assert rows[0] == "budget_ms,predicted_ms,score,flops,params,structure" and len(rows) == 4
    png = (tmp_path / "family.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    fig = fam.figure()
    xs = fig.axes[0].lines[0].get_xdata()
    assert list(xs) == sorted(r.predicted_latency_ms for r in fam.results)
    with pytest.raises(ValueError, match="repeats a budget"):
        search_family([5, 5], local_table)
    with pytest.raises(ValueError, match="positive number"):
        search_family([5, -1], local_table)


def test_family_from_the_command_line(local_table, tmp_path, run_python):
    path = local_table.save(str(tmp_path / "t.json"))
    seed_ms = local_table.predict(Arch.parse(pyddsar.SPACES["damofd-mb"].seed), detector=True)
    b1, b2 = round(seed_ms * 1.1, 1), round(seed_ms * 1.5, 1)
    out = tmp_path / "fam"
    r = run_python("-m", "pyddsar", "search", "--budget-latency-ms", f"{b1},{b2}", "--latency-table", path,
                   "--iterations", "1500", "--out", str(out), "--quiet", check=False)
    assert r.returncode == 0, r.stderr
    assert "budget ms" in r.stdout and (out / f"{b1:g}ms" / "best.json").exists() and (out / "family.png").exists()
    one = tmp_path / "one"
    r = run_python("-m", "pyddsar", "search", "--budget-latency-ms", f"{b2}", "--latency-table", path,
                   "--iterations", "1500", "--out", str(one), "--quiet", check=False)
    assert r.returncode == 0, r.stderr
    assert "predicted latency (detector)" in r.stdout
    assert json.loads((one / "best.json").read_text())["predicted_latency_ms"] <= b2


# -- measuring ------------------------------------------------------------------------------------
def test_onnx_single_operation_models_compute_the_operation():
    """The one-node graphs the onnxruntime tables time compute what they claim (against torch)."""
    ort = pytest.importorskip("onnxruntime")
    import onnx
    import torch
    from onnx import numpy_helper

    from pyddsar.latency import _onnx_op

    for op, k, s, act, ci, co in [("conv", 3, 2, True, 8, 16), ("conv", 1, 1, False, 24, 8), ("depthwise", 5, 2, True, 16, 0),
                                  ("join", 0, 1, True, 8, 0)]:
        model_bytes = _onnx_op(op, k, s, act, 12, 10, ci, co, np.random.default_rng(0))
        sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(1).standard_normal((1, ci, 12, 10)).astype(np.float32)
        y = np.random.default_rng(2).standard_normal((1, ci, 12, 10)).astype(np.float32)
        feeds = {"x": x, "y": y} if op == "join" else {"x": x}
        got = sess.run(None, feeds)[0]
        if op == "join":
            want = np.maximum(x + y, 0)
        else:
            inits = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(model_bytes).graph.initializer}
            want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(inits["W"]), torch.from_numpy(inits["B"]),
                                              stride=s, padding=(k - 1) // 2, groups=ci if op == "depthwise" else 1).numpy()
            if act:
                want = np.maximum(want, 0)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _profile(runs, nodes):
    """A hand-written onnxruntime profile: runs [(ts, dur)], nodes [(ts, dur, op_name)] in microseconds."""
    events = [{"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 5}]
    events += [{"cat": "Session", "name": "model_run", "ts": ts, "dur": dur} for ts, dur in runs]
    for ts, dur, op in nodes:
        events.append({"cat": "Node", "name": f"n{ts}_fence_before", "ts": ts, "dur": 0, "args": {"op_name": op}})
        events.append({"cat": "Node", "name": f"n{ts}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}})
    return events[::-1]  # the order of the file must not matter


def test_kernel_time_per_run_sums_each_runs_kernels_without_the_reorders():
    from pyddsar.latency import _kernel_ms_per_run

    runs = [(100, 50), (200, 40), (300, 90)]
    nodes = [(101, 10, "ReorderInput"), (112, 30, "Conv"), (143, 5, "ReorderOutput"),  # run 0: 30 us of kernels
             (201, 20, "Conv"), (222, 15, "Add"),                                      # run 1: 35
             (301, 70, "Conv"), (372, 4, "Relu"),                                      # run 2: 74
             (500, 99, "Conv")]                                                        # outside every run
    assert _kernel_ms_per_run(_profile(runs, nodes)) == pytest.approx([0.030, 0.035, 0.074])
    assert _kernel_ms_per_run(_profile(runs, nodes), skip=2) == pytest.approx([0.074])
    with pytest.raises(ValueError, match="warm-up"):
        _kernel_ms_per_run(_profile(runs, nodes), skip=3)


def test_onnxruntime_operations_are_timed_by_their_kernels():
    """An operation's table time under onnxruntime is its kernels' time (the profiler's), which a
    run's fixed overhead and layout reorders are not in: below the same graph's wall-clock time."""
    pytest.importorskip("onnxruntime")
    from pyddsar.latency import _onnx_op, _Runner, current_environment

    rs = np.random.default_rng(0)
    runner = _Runner(current_environment("cpu", "onnxruntime"), warmup=2, repeats=9, target_s=0.0)
    model = _onnx_op("conv", 1, 1, True, 48, 64, 32, 32, rs)
    feeds = {"x": rs.standard_normal((1, 32, 48, 64), dtype=np.float32)}
    kernels = min(runner._ort_kernel_ms(model, feeds) for _ in range(5))
    wall = min(runner._ort_time(model, feeds) for _ in range(5))
    assert 0 < kernels < wall


def test_onnxruntime_networks_are_exported_once_per_check(monkeypatch):
    pytest.importorskip("onnxruntime")
    from pyddsar import latency

    exports = []
    real = latency._Runner._ort_export
    monkeypatch.setattr(latency._Runner, "_ort_export", lambda self, m, x: exports.append(m) or real(self, m, x))
    runner = latency._Runner(latency.current_environment("cpu", "onnxruntime"), warmup=0, repeats=1, target_s=0.0)
    nets = [latency._backbone(a) for a in sample_archs("damofd-mb", 2, seed=3)]
    times = latency._rounds_ms(runner, nets, (64, 48), rounds=3)
    assert len(exports) == 2 and [len(t) for t in times] == [3, 3] and all(v > 0 for t in times for v in t)


def _optimized_ops(model_bytes, tmp_path):
    """The op types of the graph onnxruntime runs for ``model_bytes`` (its optimized model saved to
    disk), as this machine's session would build it."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]


def test_onnxruntime_join_fusion_is_read_from_the_graph_it_runs(tmp_path):
    """ort_fuses_joins (from a profiled run) against the optimized graph onnxruntime saves: a
    backbone's joins are fused exactly when that graph has no Add; a network without convolutions
    never counts as fused."""
    pytest.importorskip("onnxruntime")
    import torch

    from pyddsar.latency import _backbone, _Runner, current_environment

    runner = _Runner(current_environment("cpu", "onnxruntime"), warmup=0, repeats=1, target_s=0.0)
    net = _backbone(Arch.parse(pyddsar.SPACES["damofd-mb"].seed))
    x = torch.randn(1, 3, 64, 96)
    ops = _optimized_ops(runner._ort_export(net, x), tmp_path)
    assert "Conv" in ops or any("Conv" in o for o in ops)
    assert runner.ort_fuses_joins(net, (96, 64)) == ("Add" not in ops)

    class NoConv(torch.nn.Module):
        def forward(self, x):
            return (x + x).relu()

    assert runner.ort_fuses_joins(NoConv(), (96, 64)) is False


@pytest.mark.parametrize("fused", [True, False])
def test_an_onnxruntime_table_prices_fused_joins_at_nothing(monkeypatch, fused):
    """Where onnxruntime fuses joins, the table times none and prices each at 0 ms, so a backbone's
    prediction is scale x (its convs' sum) + offset, restated here from plain_ops and the table's own
    conv lookups; where it does not, joins are timed like every other operation."""
    pytest.importorskip("onnxruntime")
    from pyddsar import latency

    machine = _DriftingMachine()
    machine.install(monkeypatch)
    monkeypatch.setattr(latency._Runner, "ort_fuses_joins", lambda self, module, size: fused)
    timed = []
    real_op = latency._Runner.op_ms
    monkeypatch.setattr(latency._Runner, "op_ms", lambda self, *key: timed.append(key[0]) or real_op(self, *key))
    table = build_latency_table("damofd-mb", runtime="onnxruntime", size=(96, 64), calibrate=3, passes=1, cache=None,
                                detector=None)
    assert table.settings["join_timing"] == ("fused" if fused else "alone")
    joins = [v for g in table.grids if g.op == "join" for v in g.ms]
    assert joins and (all(v == 0.0 for v in joins) if fused else all(v > 0 or math.isnan(v) for v in joins))
    assert ("join" in timed) is not fused and "conv" in timed and "depthwise" in timed
    for a in sample_archs("damofd-mb", 5, seed=21):
        if table.missing(a):
            continue
        ops = plain_ops(a, 96, 64)
        assert any(o[0] == "join" for o in ops)
        total = sum(table.lookup(*o) for o in ops if not (fused and o[0] == "join"))
        assert table.predict(a) == pytest.approx(table.scale * total + table.offset_ms, rel=1e-9)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A real table of the 0.5G space at a small size (fast), measured on this machine."""
    cache = str(tmp_path_factory.mktemp("latency-cache"))
    calls = []
    table = build_latency_table("damofd-mb", size=(96, 64), calibrate=3, warmup=1, repeats=2, target_s=0.0,
                                cache=cache, progress=lambda d, t, w: calls.append((d, t)))
    return table, cache, calls


def test_a_measured_table_covers_its_space_and_records_where(measured):
    table, _, calls = measured
    env = table.environment
    assert env.device == "cpu" and env.runtime == "torch" and env.threads >= 1 and env.torch and env.device_name
    assert calls[-1][0] == calls[-1][1] == len(calls)  # progress reached its total
    measured_points = [v for g in table.grids for v in g.ms if not math.isnan(v)]
    assert len(measured_points) > 500 and all(v > 0 for v in measured_points)
    assert table.detector["name"] == "ddsar-0.5g" and table.detector["neck_head_ms"] > 0  # (torch)
    covered = [a for a in sample_archs("damofd-mb", 20, seed=9) if not table.missing(a, detector=True)]
    assert len(covered) >= 18  # the grids span what the space's search visits
    for a in covered:  # (no timing claims here: the machine may be busy; docs/search.md has the accuracy)
        assert math.isfinite(table.predict(a)) and table.predict(a, detector=True) >= table.predict(a)
    assert len(table.calibration["archs"]) == 3 and table.scale > 0


def test_a_cached_table_is_not_measured_again(measured, monkeypatch):
    table, cache, _ = measured
    from pyddsar import latency

    def refuse(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(latency._Runner, "op_ms", refuse)
    again = build_latency_table("damofd-mb", size=(96, 64), calibrate=3, warmup=1, repeats=2, target_s=0.0, cache=cache)
    assert again.to_dict() == table.to_dict()


def test_latency_table_command_line(tmp_path, run_python, monkeypatch):
    out = tmp_path / "t.json"
    monkeypatch.setenv("PYDDSAR_CACHE", str(tmp_path / "cache"))
    r = run_python("-m", "pyddsar", "latency-table", "--size", "64x64", "--calibrate", "2", "--detector", "none",
                   "--out", str(out), "--check", "3", "--quiet", check=False)
    assert r.returncode == 0, r.stderr
    assert "operation grids" in r.stdout and "backbone: 3 random networks, |error| median" in r.stdout
    t = load_latency_table(str(out))
    assert t.size == (64, 64) and t.detector is None
    assert "the machine at " in r.stdout and "x the build's time, at that speed |error| median" in r.stdout
    again = tmp_path / "t2.json"
    r = run_python("-m", "pyddsar", "latency-table", "--table", str(out), "--recalibrate", "--out", str(again),
                   "--quiet", check=False)
    assert r.returncode == 0, r.stderr
    t2 = load_latency_table(str(again))
    speed = t2.calibration["speeds"][-1]
    assert f"the machine runs at {speed:.3f}x" in r.stdout and t2.scale == pytest.approx(t.scale * speed)
    r = run_python("-m", "pyddsar", "latency-table", "--recalibrate", check=False)
    assert r.returncode != 0 and "give --table FILE" in r.stderr
    r = run_python("-m", "pyddsar", "latency-table", "--space", "nope", check=False)
    assert r.returncode == 2 and "invalid choice" in r.stderr


class _DriftingMachine:
    """Fake timings for build_latency_table / check_predictions: each operation and network has a
    fixed true time, and the machine runs ``slow`` times slower during calls ``window`` (counted over
    every timing, the reference network's included), as a shared VM does in spells."""

    def __init__(self, slow=2.5, window=(0, 0)):
        self.slow, self.window, self.calls = slow, window, 0

    def factor(self):
        self.calls += 1
        return self.slow if self.window[0] <= self.calls < self.window[1] else 1.0

    @staticmethod
    def true_op(op, kernel, stride, act, h, w, cin, cout):
        return 0.01 + 1e-6 * h * w * cin * max(cout, 1) * max(kernel, 1) ** 2 / stride ** 2 + 0.001 * act

    @staticmethod
    def true_network(module):
        return 1.0 + 1e-5 * sum(p.numel() for p in module.parameters())

    def install(self, monkeypatch):
        from pyddsar import latency

        machine = self
        monkeypatch.setattr(latency._Runner, "op_ms", lambda self, *key: machine.true_op(*key) * machine.factor())
        monkeypatch.setattr(latency._Runner, "network_ms",
                            lambda self, module, size, passes=2: machine.true_network(module) * machine.factor())


def test_a_slow_spell_during_the_build_is_recorded_and_warned_about(monkeypatch):
    """A third of the sweep runs 2.5x slower: the table records its reference network's median and
    the spread it saw (2.5) and warns; the grid holds the times as measured (no correction: a scaling
    one was tried and made real checks worse, see _SpeedReference), here true x 1 or x 2.5."""
    machine = _DriftingMachine(slow=2.5, window=(1000, 3000))
    machine.install(monkeypatch)
    with pytest.warns(UserWarning, match="speed varied by 150 %"):
        table = build_latency_table("damofd-mb", size=(96, 64), calibrate=3, passes=1, cache=None,
                                    reference_every_s=1e-9)
    assert machine.calls > 4000  # the slow window lies well inside the sweep
    ratios = []
    for g in table.grids:
        i = 0
        for ci in g.cin:
            for co in g.cout:
                if not math.isnan(g.ms[i]):
                    ratios.append(g.ms[i] / machine.true_op(g.op, g.kernel, g.stride, g.act, g.h, g.w, ci, co))
                i += 1
    ratios = np.asarray(ratios)
    fast, slow = np.isclose(ratios, 1.0, rtol=1e-9), np.isclose(ratios, 2.5, rtol=1e-9)
    assert len(ratios) > 500 and (fast | slow).all() and 0.1 < slow.mean() < 0.5
    from pyddsar.latency import _backbone

    ref = table.reference
    assert ref["arch"] == pyddsar.SPACES["damofd-mb"].seed and ref["spread"] == pytest.approx(2.5)
    assert ref["ms"] == pytest.approx(machine.true_network(_backbone(Arch.parse(ref["arch"]))))  # most timings fast
    assert ref["timings"] > len(ratios)  # one before every point (reference_every_s tiny)
    again = LatencyTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again.reference == table.reference
    quiet = _DriftingMachine()
    quiet.install(monkeypatch)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calm = build_latency_table("damofd-mb", size=(96, 64), calibrate=3, passes=1, cache=None)
    assert calm.reference["spread"] == 1.0 and calm.reference["timings"] >= 2


def test_a_cost_that_steps_every_16_channels_is_read_exactly_at_the_spaces_widths(monkeypatch):
    """CPU kernels that work in blocks of 16 channels (AVX-512) cost at 40 channels what they cost at
    48, not the midpoint of 32 and 48 a straight line gives: on a machine whose every operation costs
    by whole blocks, the built table returns the true cost of every operation of 40 random networks
    whose channels are at most 128 (all multiples of 8 there are grid points), and would not if
    40, 56, ... were interpolated."""
    def blocks(c):
        return -(-c // 16) * 16

    def blocked_cost(op, kernel, stride, act, h, w, cin, cout):
        return 0.01 + 1e-6 * h * w * blocks(cin) * blocks(max(cout, 1)) * max(kernel, 1) ** 2 / stride ** 2

    class BlockedMachine(_DriftingMachine):  # steady (no slow window), every operation costs by whole blocks
        true_op = staticmethod(blocked_cost)

    BlockedMachine().install(monkeypatch)
    size = (96, 64)
    table = build_latency_table("damofd-mb", size=size, calibrate=3, passes=1, cache=None, detector=None)
    checked = off_block = 0
    for arch in sample_archs("damofd-mb", 40, seed=11, max_flops=table.settings["max_flops"]):
        for op, k, s, a, h, w, ci, co in latency_items(arch, size):
            if op == "join" or max(ci, co) > 128:
                continue
            assert table.lookup(op, k, s, a, h, w, ci, co) == pytest.approx(blocked_cost(op, k, s, a, h, w, ci, co), rel=1e-12)
            checked += 1
            off_block += ci % 16 != 0 or (op == "conv" and co % 16 != 0)
    assert checked > 400 and off_block > 50


def test_the_calibration_networks_are_timed_across_the_whole_sweep(monkeypatch):
    """One round-robin round of the whole networks after each third of the operation sweep (3 rounds),
    not all rounds at its end: the table's level then spans the build's minutes. The reference
    network is timed first and last (reference_every_s far beyond the build)."""
    from itertools import groupby

    from pyddsar import latency

    machine = _DriftingMachine()
    machine.install(monkeypatch)
    log = []
    op, net = latency._Runner.op_ms, latency._Runner.network_ms
    monkeypatch.setattr(latency._Runner, "op_ms", lambda self, *key: log.append("op") or op(self, *key))
    monkeypatch.setattr(latency._Runner, "network_ms", lambda self, *a, **k: log.append("net") or net(self, *a, **k))
    table = build_latency_table("damofd-mb", size=(96, 64), calibrate=3, passes=2, cache=None, reference_every_s=1e9)
    runs = [(kind, len(list(g))) for kind, g in groupby(log)]
    modules = 2 * 3 + 1  # backbones, detectors, the neck and head (torch)
    assert [k for k, _ in runs] == ["net", "op", "net", "op", "net", "op", "net"]
    assert [n for k, n in runs if k == "net"] == [1, modules, modules, modules + 1]
    ops = [n for k, n in runs if k == "op"]
    assert sum(ops) == log.count("op") and max(ops) - min(ops) <= 1
    assert len(table.calibration["backbone_ms"]) == 3


def test_typical_times_are_each_networks_time_at_the_median_speed():
    """_typical_ms against its closed form: when every round runs at its own speed (network i, round r
    takes true_i x s_r), each network comes out at true_i x median(s), whatever the spread of the
    speeds; a single slow timing of one network (a blip inside a round) does not move it."""
    from pyddsar.latency import _typical_ms

    rng = np.random.default_rng(4)
    true = rng.uniform(5, 40, size=9)
    speeds = rng.uniform(1.0, 2.2, size=5)
    times = np.outer(true, speeds)
    assert _typical_ms(times.tolist()) == pytest.approx(true * np.median(speeds), rel=1e-12)
    times[3, 1] *= 3.0
    assert _typical_ms(times.tolist()) == pytest.approx(true * np.median(speeds), rel=1e-12)
    assert _typical_ms([[4.0, 9.0, 5.0]]) == [5.0]  # one network: its median
    with pytest.raises(ValueError, match="non-empty"):
        _typical_ms([])


def test_a_check_measures_each_network_at_the_typical_speed(monkeypatch, local_table):
    """check_predictions times the networks round-robin: a slow spell over the whole first round
    (every network 2.5x) leaves the result at the true times; with one round the spell is what is
    measured."""
    from pyddsar.latency import _backbone, check_predictions

    archs = sample_archs("damofd-mb", 4, seed=3)
    true = [_DriftingMachine.true_network(_backbone(a)) for a in archs]
    _DriftingMachine(slow=2.5, window=(1, 5)).install(monkeypatch)
    seen = []
    checks = check_predictions(local_table, archs, rounds=3, progress=lambda d, t: seen.append((d, t)))
    assert [c.measured_ms for c in checks] == pytest.approx(true)
    assert [c.predicted_ms for c in checks] == pytest.approx([local_table.predict(a) for a in archs])
    assert all(c.speed is None and c.adjusted_error == c.error for c in checks)  # no calibration networks to gauge
    assert seen[-1] == (12, 12)
    _DriftingMachine(slow=2.5, window=(1, 5)).install(monkeypatch)
    assert [c.measured_ms for c in check_predictions(local_table, archs, rounds=1)] == pytest.approx([2.5 * t for t in true])
    with pytest.raises(ValueError, match="rounds"):
        check_predictions(local_table, archs, rounds=0)


def _gauged(table, archs):
    """`table` with calibration networks whose build-time times are the fake machine's true times."""
    from pyddsar.latency import _backbone, _detector

    return dataclasses.replace(table, calibration={
        "archs": [str(a) for a in archs],
        "backbone_ms": [_DriftingMachine.true_network(_backbone(a)) for a in archs],
        "detector_ms": [_DriftingMachine.true_network(_detector(a, "ddsar-0.5g")) for a in archs]})


def test_a_check_on_a_slower_machine_says_so_and_adjusts(monkeypatch, local_table):
    """check_predictions times the table's calibration networks with the checked ones: when the
    machine runs 2.5x slower than when the table was built, it warns, records the speed (2.5), and
    the adjusted error equals the error at the build's speed; at the same speed, silence."""
    from pyddsar.latency import _backbone, _detector, check_predictions, error_summary

    table = _gauged(local_table, sample_archs("damofd-mb", 3, seed=8))
    archs = sample_archs("damofd-mb", 3, seed=3)
    for detector in (False, True):
        true = [_DriftingMachine.true_network(_detector(a, "ddsar-0.5g") if detector else _backbone(a)) for a in archs]
        _DriftingMachine(slow=2.5, window=(0, 10 ** 9)).install(monkeypatch)
        with pytest.warns(UserWarning, match="runs slower now .* 2.50x their time"):
            slow = check_predictions(table, archs, detector=detector, rounds=2)
        assert [c.speed for c in slow] == pytest.approx([2.5] * 3)
        assert [c.measured_ms for c in slow] == pytest.approx([2.5 * t for t in true])
        assert [c.adjusted_error for c in slow] == pytest.approx([(c.predicted_ms - t) / t for c, t in zip(slow, true)])
        summary = error_summary(slow)
        assert summary["speed"] == pytest.approx(2.5)
        assert summary["median_abs_adjusted_error"] == pytest.approx(statistics.median(abs(c.adjusted_error) for c in slow))
        _DriftingMachine().install(monkeypatch)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            checks = check_predictions(table, archs, detector=detector, rounds=2)
        assert [c.speed for c in checks] == pytest.approx([1.0] * 3)
        assert [c.error for c in checks] == pytest.approx([c.adjusted_error for c in slow])


def test_recalibrating_re_anchors_the_table_to_the_machines_speed(monkeypatch, local_table):
    """recalibrate_latency_table measures the calibration networks again: on a machine 1.6x slower
    every prediction (backbone and detector) is 1.6x the old one, the calibration records the new
    times and the speed, and a check at that speed then finds the machine at 1.0x."""
    from pyddsar.latency import check_predictions, recalibrate_latency_table

    table = _gauged(local_table, sample_archs("damofd-mb", 3, seed=8))
    _DriftingMachine(slow=1.6, window=(0, 10 ** 9)).install(monkeypatch)
    new = recalibrate_latency_table(table, rounds=2)
    archs = sample_archs("damofd-mb", 5, seed=3)
    for detector in (False, True):
        assert [new.predict(a, detector=detector) for a in archs] == pytest.approx(
            [1.6 * table.predict(a, detector=detector) for a in archs], rel=1e-9)
    assert new.calibration["speeds"] == pytest.approx([1.6])
    assert new.calibration["backbone_ms"] == pytest.approx([1.6 * v for v in table.calibration["backbone_ms"]])
    assert new.grids == table.grids
    again = LatencyTable.from_dict(json.loads(json.dumps(new.to_dict())))
    assert again.predict(archs[0], detector=True) == pytest.approx(new.predict(archs[0], detector=True))
    assert [c.speed for c in check_predictions(new, archs[:2], rounds=1)] == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="no calibration networks"):
        recalibrate_latency_table(local_table)
    with pytest.raises(ValueError, match="rounds"):
        recalibrate_latency_table(table, rounds=0)
