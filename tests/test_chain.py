"""The whole chain on the search's own output: search -> train -> eval -> export ONNX -> bench, for the
default result of each budget and for a deliberately thin backbone (8-channel stages, whose residual
projections once crashed torch's CPU backward: tests/test_torch_cpu_workaround.py)."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from pyddsar import Arch  # noqa: E402
from pyddsar.cli import main  # noqa: E402
from pyddsar.model_file import load_model  # noqa: E402
from pyddsar.onnx_export import RawOutputs, export_onnx  # noqa: E402

THIN = ("SuperConvK3BNRELU(3,8,2,1)SuperResIDWE6K3(8,8,2,8,5)SuperResIDWE4K3(8,8,2,16,5)"
        "SuperResIDWE4K3(8,8,2,16,2)SuperResIDWE6K3(8,16,2,8,1)")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("syn") / "data")
    assert main(["data", "synthetic", "--out", out, "--train", "4", "--val", "2", "--size", "256", "256"]) == 0
    return out


@pytest.mark.parametrize("budget", ["0.5g", "2.5g", "10g", "34g", "thin"])
def test_search_train_eval_export_bench(budget, data, tmp_path, run_python, capsys):
    results = tmp_path / "results"
    if budget == "thin":
        results.mkdir()
        (results / "best.json").write_text(json.dumps({"structure": THIN}))
    else:  # the README's main job at this budget, every default
        assert main(["search", "--budget", budget, "--out", str(results), "--quiet"]) == 0
    arch = Arch.load(str(results / "best.json"))
    capsys.readouterr()

    # train a few steps (in a fresh process: a crash in torch must fail this test, not end the session)
    run = tmp_path / "run"
    r = run_python("-m", "pyddsar", "train", "--data", data, "--model", str(results / "best.json"), "--out", str(run),
                   "--epochs", "1", "--batch", "2", "--size", "128", "--max-steps", "2", "--workers", "0", "--quiet",
                   check=False, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert {"model.pt", "checkpoint.pt", "metrics.jsonl"} <= set(os.listdir(run))
    model, _ = load_model(str(run / "model.pt"))
    assert model.backbone.structure == str(arch)

    # eval on the val images
    assert main(["eval", "--weights", str(run / "model.pt"), "--data", data, "--gt", os.path.join(data, "ground_truth"),
                 "--out", str(tmp_path / "eval"), "--json"]) == 0
    ap = json.loads(capsys.readouterr().out)
    assert all(0.0 <= ap[k] <= 1.0 for k in ("easy", "medium", "hard"))

    # export ONNX (export_onnx checks onnxruntime against torch itself) and compare once more here
    onnx_path = export_onnx(model.eval(), str(tmp_path / "model.onnx"), input_size=(160, 128))
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        want = [t.numpy() for t in RawOutputs(model)(x)]
    got = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"input.1": x.numpy()})
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.isfinite(g).all()
        np.testing.assert_allclose(g, w, atol=1e-4)

    # bench the trained model with onnxruntime (the exported graph), as a deployment would
    assert main(["bench", "--weights", str(run / "model.pt"), "--runtime", "onnxruntime", "--batch", "1", "--size", "160x128",
                 "--input-size", "160", "--warmup", "1", "--runs", "2", "--threads", "1", "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench and "onnxruntime" in json.dumps(bench)
