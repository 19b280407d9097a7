"""pyddsar.Detector end to end, image conversions and bad input; `pyddsar detect`."""

import json
import os

import numpy as np
import pytest
import torch

import pyddsar
from pyddsar.inference import Detector, to_bgr8

cv2 = pytest.importorskip("cv2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("PYDDSAR_DATA") or os.path.join(REPO, "..", "shared", "data")
ONNX = os.path.join(DATA, "models", "scrfd_2.5g_bnkps.onnx")
IMG = os.path.join(DATA, "images")
needs_data = pytest.mark.skipif(not os.path.isfile(ONNX), reason=f"shared data not found at {DATA} (set PYDDSAR_DATA)")


@pytest.fixture(scope="module")
def det():
    return Detector(pyddsar.models.load_scrfd_onnx(ONNX))


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@needs_data
def test_face_found_at_known_place(det):
    portrait = cv2.imread(os.path.join(IMG, "portrait_newton.png"))
    d0 = det.detect(portrait)
    assert d0.scores[0] > 0.5
    face = d0.boxes[0]
    # paste the portrait at half size into a larger canvas: the face must move and scale accordingly
    canvas = np.full((900, 1400, 3), 90, np.uint8)
    small = cv2.resize(portrait, (portrait.shape[1] // 2, portrait.shape[0] // 2), interpolation=cv2.INTER_AREA)
    ox, oy = 700, 350
    canvas[oy:oy + small.shape[0], ox:ox + small.shape[1]] = small
    d = det.detect(canvas)
    expected = face * 0.5 + np.array([ox, oy, ox, oy])
    strong = d.boxes[d.scores > 0.5]
    assert len(strong) == 1
    assert _iou(strong[0], expected) > 0.8
    lm = d.landmarks[0]
    assert (lm[:, 0] > strong[0][0]).all() and (lm[:, 0] < strong[0][2]).all()


@needs_data
def test_crowd(det):
    d = det.detect(os.path.join(IMG, "crowd_cheering.jpg"))
    assert (d.scores > 0.5).sum() >= 20
    assert d.boxes.dtype == np.float32 and d.landmarks.shape == (len(d), 5, 2)
    assert (np.diff(d.scores) <= 0).all() and len(d) <= 750


@needs_data
def test_batch_equals_single(det):
    a = cv2.imread(os.path.join(IMG, "portrait_newton.png"))
    b = cv2.imread(os.path.join(IMG, "crowd_cheering.jpg"))
    batch = det.detect_batch([a, b])
    for img, got in zip((a, b), batch):
        one = det.detect(img)
        np.testing.assert_allclose(got.boxes, one.boxes, atol=1e-3)


@needs_data
def test_formats_gray_rgba_16bit(det, tmp_path):
    bgr = cv2.imread(os.path.join(IMG, "portrait_newton.png"))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    rgba = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    deep = bgr.astype(np.uint16) * 257
    for img in (gray, gray[:, :, None], rgba, deep, bgr.astype(np.float32)):
        d = det.detect(img)
        assert d.scores[0] > 0.5
    np.testing.assert_array_equal(to_bgr8(deep), bgr)
    p = tmp_path / "deep.png"
    cv2.imwrite(str(p), deep)
    assert det.detect(str(p)).scores[0] > 0.5


def test_bad_images(tmp_path):
    torch.manual_seed(0)
    d = Detector(pyddsar.models.build_detector("scrfd-0.5g", stacked_convs=1))
    with pytest.raises(ValueError, match="not found"):
        d.detect(str(tmp_path / "missing.jpg"))
    p = tmp_path / "text.jpg"
    p.write_text("not an image")
    with pytest.raises(ValueError, match="cannot decode"):
        d.detect(str(p))
    with pytest.raises(ValueError, match="too small"):
        d.detect(np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ValueError, match="too small"):
        d.detect(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        d.detect(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        d.detect(np.zeros((10, 10, 3), np.int64))
    with pytest.raises(ValueError, match="too large"):
        d.detect(np.zeros((40000, 2), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        d.detect(np.full((10, 10, 3), np.nan, np.float32))
    with pytest.raises(ValueError):
        d.detect([1, 2, 3])


def test_huge_image_is_downscaled():
    d = Detector(pyddsar.models.build_detector("scrfd-0.5g", stacked_convs=1))
    out = d.detect(np.zeros((10000, 10000), np.uint8))
    assert out.boxes.shape[1] == 4


def test_bad_detector_arguments():
    m = pyddsar.models.build_detector("scrfd-0.5g")
    with pytest.raises(ValueError, match="half"):
        Detector(m, half=True)
    with pytest.raises(ValueError, match="input_size"):
        Detector(m, input_size=100)
    with pytest.raises(ValueError, match="score_threshold"):
        Detector(m, score_threshold=2)
    with pytest.raises(ValueError):
        Detector(torch.nn.Conv2d(3, 3, 1))


def test_import_is_light(run_python):
    code = "import sys, pyddsar; assert 'torch' not in sys.modules; pyddsar.Detector; assert 'torch' in sys.modules"
    run_python("-c", code)


@needs_data
def test_cli_detect_json(tmp_path, capsys):
    from pyddsar.cli import main

    img = os.path.join(IMG, "crowd_cheering.jpg")
    rc = main(["detect", img, "--weights", ONNX, "--out", str(tmp_path), "--json", "--threshold", "0.5"])
    assert rc == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert rec["image"] == img and (rec["width"], rec["height"]) == (1024, 624)
    assert len(rec["detections"]) >= 20
    d0 = rec["detections"][0]
    assert len(d0["box"]) == 4 and len(d0["landmarks"]) == 5 and d0["score"] >= 0.5
    assert (tmp_path / "crowd_cheering.jpg").is_file()


@needs_data
def test_cli_detect_errors(tmp_path, capsys):
    from pyddsar.cli import main

    img = os.path.join(IMG, "portrait_newton.png")
    assert main(["detect", img, "--weights", ONNX, "--model", "scrfd-2.5g"]) == 2
    assert "not for 'scrfd-2.5g'" in capsys.readouterr().err
    bad = tmp_path / "w.onnx"
    bad.write_text("junk")
    assert main(["detect", img, "--weights", str(bad)]) == 2
    assert "neither an ONNX" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "none.jpg"), "--weights", ONNX]) == 2
    assert "not found" in capsys.readouterr().err
