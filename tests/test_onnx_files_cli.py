"""`pyddsar detect`, `eval`, `bench` and `train --init` take SCRFD files in every layout seen in the wild."""

import json
import os

import onnx
import pytest
import torch

import _scrfd_layouts as L
from pyddsar.cli import main
from pyddsar.models import build_detector
from pyddsar.model_file import load_model

pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

DATA = L.data_dir()
REAL = os.path.join(DATA, "models", "scrfd_2.5g_bnkps.onnx")
PHOTO = os.path.join(DATA, "images", "crowd_cheering.jpg")
needs_real = pytest.mark.skipif(not (os.path.isfile(REAL) and os.path.isfile(PHOTO)),
                                reason=f"pretrained SCRFD / photos not found in {DATA} (set PYDDSAR_DATA)")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """layout name -> file: the real model renamed / without batch axis, and random family members."""
    d = tmp_path_factory.mktemp("files")
    out = {}
    if os.path.isfile(REAL):
        for layout in ("out_k", "no_batch"):
            m = onnx.load(REAL)
            if layout == "out_k":
                L.rename_outputs(m, [f"out{i}" for i in range(9)])
            else:
                L.drop_batch_axis(m)
                L.rename_outputs(m, L.numeric_names(m, 9))
            out[f"real-{layout}"] = str(d / f"real_{layout}.onnx")
            onnx.save(m, out[f"real-{layout}"])
    torch.manual_seed(0)
    out["scrfd-0.5g-numeric"] = L.export(L.randomise(build_detector("scrfd-0.5g")), str(d / "gn.onnx"), "numeric")
    out["scrfd-10g-kps-fixed"] = L.export(L.randomise(build_detector("scrfd-10g-kps")), str(d / "kps.onnx"), "fixed")
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("syn") / "data")
    assert main(["data", "synthetic", "--out", out, "--train", "4", "--val", "2", "--size", "256", "256"]) == 0
    return out


@needs_real
@pytest.mark.parametrize("layout", ["real-out_k", "real-no_batch"])
def test_detect_same_faces_as_the_original_file(files, layout, capsys):
    assert main(["detect", PHOTO, "--weights", REAL, "--json", "--no-progress"]) == 0
    ref = json.loads(capsys.readouterr().out)
    assert main(["detect", PHOTO, "--weights", files[layout], "--json", "--no-progress"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert len(got["detections"]) == len(ref["detections"]) == 26
    assert got["detections"] == ref["detections"]  # rounded to 0.01 px / 1e-5: the same numbers
    assert main(["detect", PHOTO, "--weights", files[layout], "--model", "scrfd-2.5g-kps", "--no-progress"]) == 0


@pytest.mark.parametrize("layout", ["scrfd-0.5g-numeric", "scrfd-10g-kps-fixed"])
def test_detect_and_bench_family_files(files, layout, capsys, tmp_path):
    import cv2
    import numpy as np

    img = str(tmp_path / "img.png")
    cv2.imwrite(img, np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8))
    name = layout.rsplit("-", 1)[0]
    assert main(["detect", img, "--weights", files[layout], "--model", name, "--json", "--threshold", "0",
                 "--no-progress"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["detections"] and (rec["detections"][0]["landmarks"] is None) == ("kps" not in name)
    for runtime in ("torch", "onnxruntime"):
        assert main(["bench", "--weights", files[layout], "--runtime", runtime, "--batch", "1", "--size", "160x128",
                     "--input-size", "160", "--warmup", "0", "--runs", "1", "--threads", "1", "--json"]) == 0
        r = json.loads(capsys.readouterr().out)
        assert r["model"] == name and r["results"][0]["total_ms"]["median"] > 0


@pytest.mark.parametrize("layout", ["real-no_batch", "scrfd-0.5g-numeric"])
def test_eval_and_train_init(files, layout, data, tmp_path, run_python, capsys):
    if layout not in files:
        pytest.skip(f"pretrained SCRFD not found in {DATA} (set PYDDSAR_DATA)")
    assert main(["eval", "--weights", files[layout], "--data", data, "--gt", os.path.join(data, "ground_truth"),
                 "--json"]) == 0
    ap = json.loads(capsys.readouterr().out)
    assert all(0.0 <= ap[k] <= 1.0 for k in ("easy", "medium", "hard"))
    run = tmp_path / "run"
    r = run_python("-m", "pyddsar", "train", "--data", data, "--init", files[layout], "--out", str(run), "--epochs", "1",
                   "--batch", "2", "--size", "128", "--max-steps", "1", "--workers", "0", "--quiet", check=False,
                   timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    model, _ = load_model(str(run / "model.pt"))
    assert model.config.name == ("scrfd-2.5g-kps" if layout.startswith("real") else "scrfd-0.5g")
    assert model.config.fused and model.config.norm == ("bn" if layout.startswith("real") else "gn")
