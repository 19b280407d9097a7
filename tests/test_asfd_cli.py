"""`pyddsar asfd search-neck / scale / baseline` end to end on a tiny synthetic set (CPU, seconds)."""

import json
import os

import pytest
import torch

from pyddsar.asfd import AutoFAESpec, ScalingSpace
from pyddsar.asfd.neck_search import load_autofae_spec, load_derived_autofae
from pyddsar.asfd.scale import genes_from_dict, latency_penalty
from pyddsar.cli import main
from pyddsar.model_file import load_model
from pyddsar.models import config_for

TINY = ["--size", "96", "--base-width", "4", "--batch", "2", "--quiet"]
LOUD = [a for a in TINY if a != "--quiet"]  # with the progress lines and bars on stderr
# a scaling search over a space of 8 paths on the tiny set, in seconds
TINY_SCALE = ["--population", "4", "--iterations", "1", "--top-k", "2", "--supernet-steps", "3", "--backbones",
              "resnet18", "--module-counts", "1,2", "--head-convs", "1,2", "--channels", "4,8",
              "--latency-resolution", "64x64", "--latency-runs", "2", *TINY]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from pyddsar.data.synthetic import write_dataset

    d = tmp_path_factory.mktemp("asfd_data")
    write_dataset(str(d), n_train=10, n_val=4, image_size=(192, 160))
    return str(d)


def test_search_neck_freezes_then_moves_arch_and_saves_derived(data, tmp_path, capsys):
    out = str(tmp_path / "neck")
    rc = main(["asfd", "search-neck", "--data", data, "--out", out, "--epochs", "50", "--max-steps", "4",
               "--channels", "8", "--head-convs", "1", *LOUD])
    assert rc == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "node 1 =" in printed and "top-down:" in printed
    # tqdm's bar on stderr, and the progress line printed above it
    assert "neck search" in captured.err and "%|" in captured.err and "4/4" in captured.err
    assert "loss=" in captured.err and "step 4/4" in captured.err
    hist = [json.loads(line) for line in open(os.path.join(out, "history.jsonl"))]
    assert [h["arch_loss"] is None for h in hist] == [True, True, False, False]
    assert hist[0]["tau"] == pytest.approx(1.0) and hist[-1]["tau"] < hist[0]["tau"]
    ck = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)
    assert ck["step"] == 4
    steps = {int(s["step"]) for s in ck["a_opt"]["state"].values()}
    assert steps == {2}  # Adam stepped only in the second half
    summary = json.load(open(os.path.join(out, "autofae.json")))
    assert summary["arch_change_l2"] > 0 and summary["arch_frozen_steps"] == 2
    assert summary["description"] == open(os.path.join(out, "autofae.txt")).read().strip()
    spec = load_autofae_spec(os.path.join(out, "autofae.json"))
    neck = load_derived_autofae(os.path.join(out, "autofae.pt")).eval()
    assert neck.spec == spec and spec.placement == "between"
    feats = [torch.randn(1, 8, s, s) for s in (8, 4, 2, 1, 1, 1)]
    ys = neck(feats)
    assert [y.shape for y in ys] == [f.shape for f in feats]
    assert all(torch.isfinite(y).all() for y in ys)
    # the derived detector with its searched weights, as a pyddsar model file
    model, _ = load_model(os.path.join(out, "model.pt"))
    assert model.config.neck == "autofae" and AutoFAESpec.from_dict(model.config.autofae) == spec
    assert model.config == config_for(os.path.join(out, "detector.json"))
    with torch.no_grad():
        for a, b in zip(model.neck(feats), ys):
            torch.testing.assert_close(a, b)


def test_search_neck_second_order(data, tmp_path, capsys):
    out = str(tmp_path / "neck2")
    assert main(["asfd", "search-neck", "--data", data, "--out", out, "--max-steps", "4", "--channels", "8",
                 "--head-convs", "1", "--second-order", *TINY]) == 0
    hist = [json.loads(line) for line in open(os.path.join(out, "history.jsonl"))]
    assert [h["arch_loss"] is None for h in hist] == [True, True, False, False]
    assert all(h["arch_loss"] > 0 for h in hist[2:])
    summary = json.load(open(os.path.join(out, "autofae.json")))
    assert summary["arch_change_l2"] > 0 and summary["config"]["second_order"] is True
    ck = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)
    assert {int(s["step"]) for s in ck["a_opt"]["state"].values()} == {2}


def _state(path):
    return torch.load(path, weights_only=False)


@pytest.mark.parametrize("interrupt_at, second_order", [(2, False), (5, False), (4, True)])
def test_search_neck_ctrl_c_then_resume_ends_as_uninterrupted(data, tmp_path, monkeypatch, interrupt_at,
                                                               second_order, capsys):
    """Ctrl-C arrives as step `interrupt_at` begins: the step still completes, a checkpoint is written,
    the CLI exits 130, and --resume ends with the same weights, architecture, history and derived neck
    as a run never interrupted. 7 steps, freeze at 3; with this split (4 weight / 5 architecture images,
    batch 2) step 2 ends a weight epoch before the freeze, step 5 is mid-epoch for both streams after it."""
    import signal

    from pyddsar.asfd import neck_search

    argv = ["asfd", "search-neck", "--data", data, "--max-steps", "7", "--channels", "8", "--head-convs", "1",
            *(["--second-order"] if second_order else []), *TINY]
    straight = str(tmp_path / "straight")
    assert main([*argv, "--out", straight]) == 0

    real_tau, began = neck_search.tau_schedule, []

    def tau_then_ctrl_c(*a, **k):  # called once as every step begins
        began.append(1)
        if len(began) == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        return real_tau(*a, **k)

    interrupted = str(tmp_path / "interrupted")
    with monkeypatch.context() as m:
        m.setattr(neck_search, "tau_schedule", tau_then_ctrl_c)
        assert main([*argv, "--out", interrupted]) == 130
    assert "continue with --resume" in capsys.readouterr().err
    ck = _state(os.path.join(interrupted, "checkpoint.pt"))
    assert ck["step"] == interrupt_at and len(ck["history"]) == interrupt_at
    assert not os.path.exists(os.path.join(interrupted, "autofae.json"))
    assert main([*argv, "--out", interrupted, "--resume"]) == 0

    a, b = _state(os.path.join(straight, "checkpoint.pt")), _state(os.path.join(interrupted, "checkpoint.pt"))
    assert a["step"] == b["step"] == 7 and a["history"] == b["history"]
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = (json.load(open(os.path.join(d, "autofae.json"))) for d in (straight, interrupted))
    assert sa["spec"] == sb["spec"] and sa["arch_change_l2"] == sb["arch_change_l2"] > 0


def test_search_neck_resume_refuses_other_settings(data, tmp_path, capsys):
    out = str(tmp_path / "neck")
    argv = ["asfd", "search-neck", "--data", data, "--out", out, "--channels", "8", "--head-convs", "1", *TINY]
    assert main([*argv, "--max-steps", "2"]) == 0
    assert main([*argv, "--max-steps", "2", "--lr", "0.02", "--resume"]) == 2
    assert "other settings (lr=None, now 0.02)" in capsys.readouterr().err
    assert main([*argv, "--max-steps", "2", "--checkpoint-every", "1", "--resume"]) == 0  # nothing left to do


def test_scale_tiny_budget_picks_fastest_and_stays_in_space(data, tmp_path, capsys):
    out = str(tmp_path / "scale")
    rc = main(["asfd", "scale", "--data", data, "--out", out, "--latency-ms", "1e-6",
               *[a for a in TINY_SCALE if a != "--quiet"]])
    assert rc == 0
    captured = capsys.readouterr()
    assert "chosen path:" in captured.out
    # a bar for the supernet's steps, one for the genetic search (rankings, best fitness, paths measured)
    assert "supernet" in captured.err and "3/3" in captured.err and "%|" in captured.err
    assert "search" in captured.err and "2/2" in captured.err and "best=" in captured.err and "paths=" in captured.err
    d = json.load(open(os.path.join(out, "genes.json")))
    space = ScalingSpace(("resnet18",), (1, 2), (1, 2), (4, 8))
    chosen = d["chosen"]
    space.validate(genes_from_dict(chosen["genes"]))
    for e in d["evaluated"]:
        space.validate(genes_from_dict(e["genes"]))
        assert e["fitness"] == pytest.approx(e["minival_ap"] - latency_penalty(e["latency_ms"], 1e-6))
    assert chosen["latency_ms"] == min(e["latency_ms"] for e in d["evaluated"])
    assert chosen["flops"] > 0 and chosen["params"] > 0
    assert os.path.isfile(os.path.join(out, "subnet.pt")) and os.path.isfile(os.path.join(out, "supernet.pt"))
    model, _ = load_model(os.path.join(out, "model.pt"))  # the chosen single path as a detector
    g = genes_from_dict(chosen["genes"])
    c = model.config
    assert (c.backbone, c.num_modules, c.skip_fe, c.head_convs, c.channels) == \
        (g.backbone, g.num_modules, g.skip_fe, g.head_convs, g.channels)
    sub = torch.load(os.path.join(out, "subnet.pt"), weights_only=False)["state_dict"]
    assert all(torch.equal(v, sub[k]) for k, v in model.state_dict().items())


def test_scale_family_of_budgets_from_one_supernet(data, tmp_path, capsys, monkeypatch):
    """Two budgets, one supernet: D0 (a budget no path meets) is the fastest path its search measured,
    D1 (a budget every path meets) the one with the best mini-val AP; every path is measured once."""
    from pyddsar.asfd import scale

    calls = []
    real = scale.measure_latency_ms
    monkeypatch.setattr(scale, "measure_latency_ms", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = str(tmp_path / "family")
    rc = main(["asfd", "scale", "--data", data, "--out", out, "--latency-ms", "1e6,1e-6", *TINY_SCALE])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "family of 2" in printed and "D0: budget 1e-06 ms" in printed and "D1: budget 1e+06 ms" in printed
    fam = json.load(open(os.path.join(out, "family.json")))
    assert [m["name"] for m in fam["members"]] == ["D0", "D1"]
    assert [m["latency_budget_ms"] for m in fam["members"]] == [1e-6, 1e6]
    tight, loose = (json.load(open(os.path.join(out, n, "genes.json"))) for n in ("D0", "D1"))
    assert tight["chosen"]["latency_ms"] == min(e["latency_ms"] for e in tight["evaluated"])
    assert loose["chosen"]["minival_ap"] == max(e["minival_ap"] for e in loose["evaluated"])
    for e in loose["evaluated"]:
        assert e["fitness"] == e["minival_ap"]
    measured = {json.dumps(e["genes"]) for e in tight["evaluated"] + loose["evaluated"]}
    assert fam["measured_paths"] == len(measured) == len(calls)
    for n, m in zip(("D0", "D1"), fam["members"]):
        model, _ = load_model(os.path.join(out, n, "model.pt"))
        g = genes_from_dict(m["genes"])
        assert (model.config.backbone, model.config.channels, model.config.head_convs) == \
            (g.backbone, g.channels, g.head_convs)
    assert not os.path.exists(os.path.join(out, "genes.json"))


def test_latency_penalty_formula():
    assert latency_penalty(5.0, 10.0) == 0.0
    assert latency_penalty(30.0, 10.0) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        latency_penalty(1.0, 0.0)


def test_baseline_trains_and_evaluates(data, tmp_path, capsys):
    out = str(tmp_path / "base")
    rc = main(["asfd", "baseline", "--data", data, "--out", out, "--max-steps", "2", "--channels", "8",
               "--head-convs", "1", "--eval-size", "128", *LOUD])
    assert rc == 0
    captured = capsys.readouterr()
    assert "Hard AP" in captured.out
    assert "epoch 1/10" in captured.err and "eval" in captured.err and "%|" in captured.err  # tqdm's bars
    res = json.load(open(os.path.join(out, "result.json")))
    assert res["steps"] == 2 and 0 <= res["hard"] <= 1 and res["num_images"] == 4
    model, pre = load_model(os.path.join(out, "model.pt"))
    assert (model.config.channels, model.config.head_convs, model.config.base_width) == (8, 1, 4)
    assert model.config == config_for(os.path.join(out, "detector.json")) and pre.nms_threshold == 0.4


def test_baseline_with_searched_neck_and_backbone(data, tmp_path, capsys):
    neck = str(tmp_path / "neck")
    assert main(["asfd", "search-neck", "--data", data, "--out", neck, "--max-steps", "2", "--channels", "8",
                 "--head-convs", "1", *TINY]) == 0
    out = str(tmp_path / "base")
    rc = main(["asfd", "baseline", "--data", data, "--out", out, "--max-steps", "1", "--channels", "8",
               "--head-convs", "1", "--eval-size", "96", "--neck", os.path.join(neck, "autofae.json"),
               "--modules", "2", "--backbone", "ddsar-0.5g", *TINY])
    assert rc == 0
    assert "ddsar backbone" in capsys.readouterr().out
    model, _ = load_model(os.path.join(out, "model.pt"))
    assert model.config.backbone == "ddsar" and model.config.num_modules == 2
    assert AutoFAESpec.from_dict(model.config.autofae) == load_autofae_spec(os.path.join(neck, "autofae.json"))


@pytest.mark.parametrize("argv, message", [
    (["asfd", "search-neck", "--data", "/nonexistent/asfd"], "no dataset folder"),
    (["asfd", "scale", "--data", "/nonexistent/asfd", "--latency-ms", "5"], "no dataset folder"),
    (["asfd", "scale", "--data", ".", "--latency-ms", "-3"], "--latency-ms must be a positive number"),
    (["asfd", "scale", "--data", ".", "--latency-ms", "0"], "--latency-ms must be a positive number"),
    (["asfd", "scale", "--data", ".", "--latency-ms", "5,nan"], "--latency-ms must be a positive number"),
    (["asfd", "scale", "--data", ".", "--latency-ms", "5,5"], "distinct budgets"),
    (["asfd", "scale", "--data", ".", "--latency-ms", "5", "--lr", "0"], "lr must be a positive number"),
    (["asfd", "search-neck", "--data", ".", "--lr", "-0.1"], "lr must be a positive number"),
    (["asfd", "search-neck", "--data", ".", "--epochs", "0"], "epochs must be a positive"),
    (["asfd", "baseline", "--data", "/nonexistent/asfd"], "no dataset folder"),
    (["asfd", "baseline", "--data", ".", "--gt", ".", "--backbone", "vgg"], "unknown backbone 'vgg'"),
    (["asfd", "baseline", "--data", ".", "--gt", ".", "--modules", "2"], "--modules needs --neck"),
    (["asfd", "baseline", "--data", ".", "--eval-size", "100"], "multiple of 32"),
    (["asfd", "search-neck", "--data", ".", "--device", "cuda:x"], "invalid device"),
    (["asfd", "search-neck", "--data", ".", "--backbone", "vgg"], "unknown backbone 'vgg'"),
    (["asfd", "scale", "--data", ".", "--latency-ms", "5", "--backbones", "resnet18,vgg"], "unknown backbone 'vgg'"),
])
def test_bad_input_clear_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err




def test_the_bars_can_be_turned_off(tmp_path, capsys, monkeypatch):
    """--no-progress: the lines without the bar; --quiet: neither (the library stands in: the flags
    are the CLI's)."""
    from pyddsar.asfd import neck_search

    def search(cfg, log=print, progress=None):
        for step in (1, 2):
            if progress is not None:
                progress(step, 2, phase="neck search", loss=0.5, tau=1.0, arch_loss=None)
        log("step 2/2  loss 0.5000")
        return {"description": "derived", "minival_ap_derived": 0.0}

    monkeypatch.setattr(neck_search, "search_neck", search)
    argv = ["asfd", "search-neck", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "%|" in err and "step 2/2" in err
    assert main([*argv, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "%|" not in err and "step 2/2" in err
    assert main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""

