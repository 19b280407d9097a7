"""`pyddsar score`: the report as a table or JSON, and clear errors."""

import json

import pytest

from pyddsar import presets, score_report
from pyddsar.cli import main


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_preset_table(capsys):
    rc, out, _ = run(capsys, "score", "--preset", "ddsar-0.5g")
    assert rc == 0
    assert "DDSAR-Score (paper)" in out and "total" in out
    assert f"{score_report(presets['ddsar-0.5g']).total:.10f}" in out


def test_release_json(capsys):
    rc, out, _ = run(capsys, "score", "--preset", "ddsar-0.5g", "--variant", "damofd-release", "--json")
    assert rc == 0
    data = json.loads(out)
    assert data["total"] == pytest.approx(9.3357591077, abs=1e-10)
    assert data["alpha"] == 0.005
    assert [s["name"] for s in data["stages"]] == ["C1", "C2", "C3", "C4", "C5"]


def test_structure_string_and_options(capsys):
    text = str(presets["ddsar-2.5g"])
    rc, out, _ = run(capsys, "score", text, "--alpha", "0.5", "--lambdas", "widerface", "--resolution", "640x480",
                     "--probe", "literal", "--json")
    assert rc == 0
    want = score_report(text, alpha=0.5, lambdas="widerface", resolution=(640, 480), fs_probe="literal")
    assert json.loads(out) == json.loads(want.to_json())
    rc, out, _ = run(capsys, "score", text, "--lambdas", "0.2,0.2,0.2,0.2,0.2", "--json")
    assert rc == 0 and json.loads(out)["lambdas"] == [0.2] * 5


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--preset", "ddsar-0.5g", "--lambdas", "0.5,0.5"], "five values"),
        (["--preset", "ddsar-0.5g", "--lambdas", "0.2,0.2,0.2,0.2,0.3"], "sum to 1"),
        (["--preset", "ddsar-0.5g", "--alpha", "-1"], "alpha"),
        (["--preset", "ddsar-1g"], "unknown preset"),
        (["SuperConvK3BNRELU(3,2,2,1)SuperResK3K3(2,32,2,8,1)SuperResK3K3(32,32,2,8,1)SuperResK3K3(32,32,2,8,1)"
          "SuperResK3K3(32,32,2,8,1)"], "layer 1"),
    ],
)
def test_errors(capsys, argv, message):
    rc, _, err = run(capsys, "score", *argv)
    assert rc == 2
    assert message in err


@pytest.mark.parametrize("argv", [["--preset", "ddsar-0.5g", "--resolution", "224"],
                                  ["--preset", "ddsar-0.5g", "--variant", "release"],
                                  ["--preset", "ddsar-0.5g", "--lambdas", "a,b"]])
def test_argument_errors(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(["score", *argv])
    assert e.value.code == 2
