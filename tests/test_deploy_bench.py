"""`pyddsar bench --json`: the fields, for a preset, a searched Arch and onnxruntime."""

import json

import pytest

from pyddsar.cli import main

pytest.importorskip("cv2")

STAGES = ("preprocess_ms", "network_ms", "postprocess_ms", "total_ms")


def _run(capsys, *args):
    assert main(["bench", "--size", "160x120", "--input-size", "128", "--warmup", "1", "--runs", "2", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def _check(r, batches):
    for k in ("model", "runtime", "device", "device_name", "threads", "size", "torch", "pyddsar", "warmup", "runs"):
        assert k in r
    assert [x["batch"] for x in r["results"]] == batches
    for x in r["results"]:
        for s in STAGES:
            assert x[s]["median"] >= 0 and x[s]["p90"] >= x[s]["median"] - 1e-9
        assert x["images_per_s"] > 0 and 0 <= x["postprocess_share"] <= 1
        assert len(x["warmup_total_ms"]) == r["warmup"]


def test_bench_json_preset_and_arch(capsys):
    r = _run(capsys, "--model", "ddsar-0.5g", "--batch", "1,2", "--threads", "1")
    _check(r, [1, 2])
    assert r["threads"] == 1 and r["size"] == [160, 120] and r["runtime"] == "torch"
    from pyddsar import presets

    r = _run(capsys, "--model", str(presets["ddsar-0.5g"]), "--batch", "1")
    _check(r, [1])


def test_bench_asfd_baseline_uses_its_protocol(capsys):
    r = _run(capsys, "--model", "asfd-baseline", "--batch", "1", "--threads", "1")
    _check(r, [1])
    assert r["protocol"] == {"score_threshold": 0.05, "nms_threshold": 0.4, "pre_nms_topk": 2000, "max_detections": 750}
    assert main(["bench", "--model", "asfd-baseline", "--runtime", "onnxruntime", "--size", "64x64",
                 "--input-size", "64", "--runs", "1", "--batch", "1"]) == 2
    assert "--runtime torch" in capsys.readouterr().err
    r = _run(capsys, "--model", "ddsar-0.5g", "--batch", "1")
    assert r["protocol"]["score_threshold"] == 0.02 and r["protocol"]["nms_threshold"] == 0.45


def test_bench_onnxruntime_and_table(capsys):
    pytest.importorskip("onnxruntime")
    r = _run(capsys, "--model", "scrfd-0.5g", "--batch", "2", "--runtime", "onnxruntime")
    _check(r, [2])
    assert r["onnxruntime"]
    assert main(["bench", "--model", "ddsar-0.5g", "--size", "64x64", "--input-size", "64", "--warmup", "0",
                 "--runs", "1", "--batch", "1"]) == 0
    out = capsys.readouterr().out
    assert "preprocess" in out and "img/s" in out and "pyddsar" in out


def test_bench_errors(capsys):
    assert main(["bench", "--model", "ddsar-0.5g", "--batch", "0"]) == 2
    assert "--batch" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # one --size WxH type for every subcommand: an argparse error
        main(["bench", "--model", "ddsar-0.5g", "--size", "640"])
    assert e.value.code == 2
    assert "--size" in capsys.readouterr().err
    assert main(["bench"]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["bench", "--model", "ddsar-0.5g", "--fp16"]) == 2


def test_bench_progress_callback_and_bar(capsys):
    from pyddsar.benchmark import run_bench

    calls = []
    run_bench("ddsar-0.5g", batches=[1, 2], size=(64, 64), input_size=64, warmup=1, runs=2, threads=1,
              progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 6) for i in range(1, 7)]  # batches x (warmup + runs)
    args = ["bench", "--model", "ddsar-0.5g", "--size", "64x64", "--input-size", "64", "--warmup", "1", "--runs", "2",
            "--batch", "1", "--threads", "1", "--json"]
    assert main(args) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["runs"] == 2 and "bench: 100%" in cap.err and "3/3" in cap.err
    for flag in ("--no-progress", "--quiet"):
        assert main(args + [flag]) == 0
        cap = capsys.readouterr()
        assert json.loads(cap.out)["runs"] == 2 and cap.err == ""
