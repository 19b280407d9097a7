"""`pyddsar search`: the README's main job writes its outputs, resumes, and fails cleanly."""

import json
import os
import signal
import sys
import time

import pytest

import pyddsar
from pyddsar.cli import main

FAST = ["--iterations", "2000", "--population", "32", "--quiet"]


def test_search_writes_every_output(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["search", "--budget", "0.5g", "--out", str(out), *FAST]) == 0
    stdout = capsys.readouterr().out
    names = {"best.json", "best_structure.txt", "best_table.txt", "history.csv", "history.png", "checkpoint.json"}
    assert names <= set(os.listdir(out))
    best = json.loads((out / "best.json").read_text())
    arch = pyddsar.Arch.parse(best["structure"])
    assert (out / "best_structure.txt").read_text().strip() == str(arch)
    assert best["flops"] == arch.flops() <= best["budget_flops"] == 403_000_000
    assert best["score"] == pyddsar.score(arch, variant="damofd-release")  # the default score in damofd-mb
    assert best["constraints"]["non_decreasing_widths"] is True and best["space"] == "damofd-mb"
    assert best["structure"] in stdout
    table = (out / "best_table.txt").read_text()
    assert "block  kernel" in table and "total" in table
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0] == "iteration,best,mean" and rows[-1].startswith("2000,")
    assert (out / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same command again gives the same best (same seed)
    assert main(["search", "--budget", "0.5g", "--out", str(tmp_path / "again"), *FAST]) == 0
    assert json.loads((tmp_path / "again" / "best.json").read_text())["structure"] == best["structure"]


def test_resume_of_a_finished_search_returns_the_same_best(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["search", "--out", out, *FAST]) == 0
    first = json.loads(open(os.path.join(out, "best.json")).read())
    assert main(["search", "--out", out, "--resume", *FAST]) == 0
    again = json.loads(open(os.path.join(out, "best.json")).read())
    assert again["structure"] == first["structure"] and again["history"] == first["history"]


def test_bad_arguments_exit_2_with_a_message(tmp_path, capsys):
    assert main(["search", "--budget", "1e3", "--out", str(tmp_path), *FAST]) == 2
    assert "below the smallest network" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["search", "--space", "nope", "--out", str(tmp_path), *FAST])
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    assert main(["search", "--budget", "3x", "--out", str(tmp_path), *FAST]) == 2
    assert "unknown budget '3x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["search", "--min-widths", "8,a", "--out", str(tmp_path), *FAST])
    assert "comma-separated integers" in capsys.readouterr().err
    assert main(["search", "--min-widths", "8,16", "--out", str(tmp_path), *FAST]) == 2
    assert "5 numbers" in capsys.readouterr().err
    bad = tmp_path / "c"
    bad.mkdir()
    (bad / "checkpoint.json").write_text("{not json")
    assert main(["search", "--out", str(bad), "--resume", *FAST]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert (bad / "checkpoint.json").read_text() == "{not json"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_ctrl_c_saves_the_best_so_far_and_exits_cleanly(tmp_path, run_python):
    out = tmp_path / "ctrl-c"
    # a long search (50M iterations, about a minute) that Ctrl-C stops after its first checkpoint
    # (5M finished before the signal once on a fast machine)
    proc = run_python("-m", "pyddsar", "search", "--out", str(out), "--iterations", "50000000", "--quiet", popen=True)
    deadline = time.time() + 60
    while not (out / "checkpoint.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    best = json.loads((out / "best.json").read_text())
    assert best["interrupted"] is True and 0 < best["iterations"] < 5_000_000
    assert pyddsar.Arch.parse(best["structure"]).flops() <= 403_000_000


def test_constraints_and_budget_forms_reach_the_search(tmp_path):
    out = tmp_path / "c"
    args = ["search", "--budget", "403m", "--out", str(out), "--min-widths", "16,32,48,96,128", "--max-layers", "12",
            "--params-budget", "300000", "--max-block-layers", "4", *FAST]
    assert main(args) == 0
    best = json.loads((out / "best.json").read_text())
    assert best["constraints"] == {"min_widths": [16, 32, 48, 96, 128], "non_decreasing_widths": True,
                                   "max_width_ratio": 2.5, "max_layers": 12, "max_block_layers": 4, "params_budget": 300000}
    arch = pyddsar.Arch.parse(best["structure"])
    widths = [b.out_channels for b in arch]
    assert widths == sorted(widths) and all(w >= m for w, m in zip(widths, (16, 32, 48, 96, 128)))
    assert sum(b.layers for b in arch) <= 12 and max(b.layers for b in arch) <= 4 and arch.params() <= 300_000
    assert best["budget_flops"] == 403_000_000 and "constraints: min_widths" in (out / "best_table.txt").read_text()
    assert main(["search", "--out", str(tmp_path / "r"), "--budget-check", "release", "--no-non-decreasing-widths",
                 "--max-width-ratio", "0", *FAST]) == 0
    best = json.loads((tmp_path / "r" / "best.json").read_text())
    assert best["budget_check"] == {"check": "release", "flops": 65_000_000, "resolution": [224, 224]}
    assert best["constraints"]["non_decreasing_widths"] is False and best["constraints"]["max_width_ratio"] is None


def test_an_existing_out_is_not_overwritten_without_force(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["search", "--out", out, *FAST]) == 0
    before = open(os.path.join(out, "best.json")).read()
    capsys.readouterr()
    assert main(["search", "--out", out, "--seed", "3", *FAST]) == 2
    err = capsys.readouterr().err
    assert "already holds best.json" in err and "checkpoint.json" in err and "--force" in err
    assert open(os.path.join(out, "best.json")).read() == before
    assert main(["search", "--out", out, "--seed", "3", "--force", *FAST]) == 0
    assert "overwriting" in capsys.readouterr().err
    assert json.loads(open(os.path.join(out, "best.json")).read())["seed"] == 3


def test_a_finished_search_continues_with_more_iterations(tmp_path, capsys):
    out, longer = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["search", "--out", out, *FAST]) == 0
    fast4000 = [*FAST]
    fast4000[1] = "4000"
    assert main(["search", "--out", out, "--resume", *fast4000]) == 0
    assert main(["search", "--out", longer, *fast4000]) == 0
    a, b = (json.loads(open(os.path.join(d, "best.json")).read()) for d in (out, longer))
    assert a["structure"] == b["structure"] and a["history"] == b["history"] and a["iterations"] == 4000
