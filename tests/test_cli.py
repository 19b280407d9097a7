"""The command line: output of `pyddsar regions` and `pyddsar arch`, and clean errors."""

import json


import pyddsar
from pyddsar.cli import main


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_version_through_the_module_entry_point(run_python):
    out = run_python("-m", "pyddsar", "--version")
    assert out.stdout.strip() == f"pyddsar {pyddsar.__version__}"


def test_process_entry_point_keeps_exit_codes_and_output(run_python, tmp_path):
    """`python -m pyddsar` (and the `pyddsar` script) exit through ``cli.run``, which skips the final
    garbage collection: the exit code, everything printed and every file written must survive it."""
    bad = run_python("-m", "pyddsar", "arch", "--preset", "nope", check=False)
    assert bad.returncode == 2 and "unknown preset 'nope'" in bad.stderr
    out = tmp_path / "res"
    ok = run_python("-m", "pyddsar", "search", "--iterations", "200", "--population", "16", "--out", str(out),
                    "--json", "--quiet", check=False)
    assert ok.returncode == 0, ok.stderr
    printed = json.loads(ok.stdout)
    assert json.loads((out / "best.json").read_text())["arch"] == printed["arch"]


def test_regions_prints_the_spec_count(capsys):
    rc, out, _ = run(capsys, "regions", "--input", "5x5x1", "--kernel", "3", "--stride", "1", "--filters", "7")
    assert rc == 0
    assert "560134574838141912" in out
    assert "3x3" in out
    assert "40.866953" in out  # ln 560134574838141912


def test_regions_json(capsys):
    rc, out, _ = run(capsys, "regions", "--input", "1x6x1", "--kernel", "1x2", "--filters", "3", "--json")
    assert rc == 0
    data = json.loads(out)
    assert data["regions"] == 6160 and data["output_grid"] == [1, 5]


def test_regions_bad_input_is_a_message_not_a_traceback(capsys):
    rc, _, err = run(capsys, "regions", "--input", "3x3x1", "--kernel", "5", "--filters", "7")
    assert rc == 2
    assert "larger than the input" in err and "Traceback" not in err


def test_arch_preset_totals(capsys):
    rc, out, _ = run(capsys, "arch", "--preset", "ddsar-0.5g", "--json")
    assert rc == 0
    data = json.loads(out)
    arch = pyddsar.presets["ddsar-0.5g"]
    assert data["flops"] == arch.flops() and data["params"] == arch.params()
    assert data["structure"] == str(arch)


def test_arch_parse_error_names_position(capsys):
    rc, _, err = run(capsys, "arch", "SuperConvK3BNRELU(3,32,2,1)Oops")
    assert rc == 2 and "position 27" in err
