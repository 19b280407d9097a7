"""Batched mixed-size inference, `pyddsar detect` on folders and with pyddsar model files."""

import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("cv2")

from pyddsar.cli import main  # noqa: E402
from pyddsar.inference import Detector  # noqa: E402
from pyddsar.model_file import Preprocessing, save_model  # noqa: E402
from pyddsar.models import build_detector  # noqa: E402
from pyddsar.onnx_export import match_detections, matched_fraction  # noqa: E402


def _images():
    rng = np.random.default_rng(0)
    shapes = [(120, 200), (333, 97), (64, 64), (250, 410, 4), (90, 150)]
    out = []
    for s in shapes:
        img = rng.integers(0, 255, size=s if len(s) == 3 else s + (3,), dtype=np.uint8)
        out.append(img)
    out.append(rng.integers(0, 255, size=(80, 60), dtype=np.uint8))  # grayscale
    return out


@pytest.fixture(scope="module")
def model(busy_head):
    torch.manual_seed(1)
    return busy_head(build_detector("ddsar-0.5g")).eval()


def test_detect_batch_equals_one_by_one(model):
    det = Detector(model, input_size=256)
    imgs = _images()
    single = [det.detect(im) for im in imgs]
    for bs in (2, 8):
        batched = det.detect_batch(imgs, batch_size=bs)
        assert len(batched) == len(imgs)
        for a, b in zip(single, batched):
            assert abs(len(a) - len(b)) <= len(a) // 100 and len(a) > 0
            # a random-weight model has many (near-)equal scores of overlapping boxes: float noise of batched
            # convolutions may flip which survives NMS, so ask for 99% of the detections (real photos below: all)
            x, y = np.c_[a.boxes, a.scores], np.c_[b.boxes, b.scores]
            assert min(matched_fraction(x, y, 1e-3, 1e-5), matched_fraction(y, x, 1e-3, 1e-5)) >= 0.99
    assert det.detect_batch([]) == []
    with pytest.raises(ValueError, match="batch_size"):
        det.detect_batch(imgs, batch_size=0)
    with pytest.raises(ValueError, match="list of images"):
        det.detect_batch(imgs[0])


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("PYDDSAR_DATA") or os.path.join(REPO, "..", "shared", "data")
ONNX = os.path.join(DATA, "models", "scrfd_2.5g_bnkps.onnx")


@pytest.mark.skipif(not os.path.isfile(ONNX), reason=f"shared data not found at {DATA} (set PYDDSAR_DATA)")
def test_detect_batch_real_photos_equal_one_by_one():
    from pyddsar.models import load_scrfd_onnx

    det = Detector(load_scrfd_onnx(ONNX), input_size=480)
    names = ["crowd_cheering.jpg", "portrait_newton.png", "group_solvay_1927.jpg"]
    imgs = [os.path.join(DATA, "images", n) for n in names]
    batched = det.detect_batch(imgs, batch_size=3)
    for path, b in zip(imgs, batched):
        a = det.detect(path)
        assert len(a) == len(b) > 0
        assert match_detections(np.c_[a.boxes, a.scores, a.landmarks.reshape(-1, 10)],
                                np.c_[b.boxes, b.scores, b.landmarks.reshape(-1, 10)], score_tol=1e-5) <= 1e-2


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("mf")
    path = str(d / "model.pt")
    save_model(model, path, Preprocessing(input_size=256))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    import cv2

    d = tmp_path_factory.mktemp("imgs")
    for i, im in enumerate(_images()[:3]):
        cv2.imwrite(str(d / f"im{i}.png"), im)
    (d / "notes.txt").write_text("not an image")
    return d


def test_cli_folder_model_file_jsonl_and_progress(model, model_file, folder, capsys):
    rc = main(["detect", str(folder), "--weights", model_file, "--json", "--threshold", "0.0", "--batch-size", "2"])
    assert rc == 0
    cap = capsys.readouterr()
    recs = [json.loads(line) for line in cap.out.strip().splitlines()]
    assert [os.path.basename(r["image"]) for r in recs] == ["im0.png", "im1.png", "im2.png"]
    assert "3/3 images" in cap.err
    # same detections as the Detector with the file's preprocessing
    det = Detector(model, input_size=256)
    ref = det.detect(str(folder / "im1.png"))
    assert len(recs[1]["detections"]) == len(ref)
    np.testing.assert_allclose(recs[1]["detections"][0]["box"], ref.boxes[0], atol=0.01)
    assert recs[1]["detections"][0]["landmarks"] is None


def test_cli_refuses_corrupt_model_files(model_file, folder, tmp_path, capsys):
    img = str(folder / "im0.png")
    data = bytearray(open(model_file, "rb").read())
    trunc = tmp_path / "truncated.pt"
    trunc.write_bytes(bytes(data[: len(data) // 2]))
    assert main(["detect", img, "--weights", str(trunc), "--no-progress"]) == 2
    assert "neither an ONNX file nor a readable pyddsar model file" in capsys.readouterr().err
    # a tensor value changed inside the archive: the checksum catches it
    from pyddsar import model_file as mf

    payload = torch.load(model_file, weights_only=True)
    key = next(k for k, v in payload["state_dict"].items() if v.is_floating_point() and v.numel() > 10)
    payload["state_dict"][key] = payload["state_dict"][key] + 1e-3
    tampered = tmp_path / "tampered.pt"
    torch.save(payload, tampered)
    assert main(["detect", img, "--weights", str(tampered), "--no-progress"]) == 2
    assert "checksum" in capsys.readouterr().err
    # a model file for another preset than --model
    assert main(["detect", img, "--weights", model_file, "--model", "scrfd-0.5g", "--no-progress"]) == 2
    assert "not for 'scrfd-0.5g'" in capsys.readouterr().err
    assert mf.is_model_file(model_file) and not mf.is_model_file(str(trunc))
    # a plain checkpoint needs --model
    plain = tmp_path / "plain.pt"
    torch.save({"config": payload["config"], "state_dict": payload["state_dict"]}, plain)
    assert main(["detect", img, "--weights", str(plain), "--no-progress"]) == 2
    assert "give --model" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "empty_dir_missing"), "--weights", model_file]) == 2
    assert "not found" in capsys.readouterr().err
