import os
import warnings

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from pyddsar.data import FaceDataset, FaceSample  # noqa: E402
from pyddsar.data.widerface_gt import read_label, read_txt  # noqa: E402


def _img(path, w=64, h=48):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 100, np.uint8))


def test_official_txt_with_invalid_and_missing_images(tmp_path):
    images = tmp_path / "images"
    _img(images / "0--A" / "a.jpg")
    _img(images / "0--A" / "c.jpg")
    (tmp_path / "gt.txt").write_text(
        "0--A/a.jpg\n2\n1 2 10 12 0 0 0 0 0 0 \n5 5 0 4 0 0 0 1 0 0 \n"
        "0--A/b.jpg\n1\n3 3 5 5 0 0 0 0 0 0 \n"
        "0--A/c.jpg\n0\n0 0 0 0 0 0 0 0 0 0 \n")
    with pytest.warns(UserWarning) as rec:
        ds = FaceDataset.from_annotations(str(tmp_path / "gt.txt"), str(images))
    msgs = " ".join(str(w.message) for w in rec)
    assert "skipped 1 of 3 images" in msgs and "zero-size or inverted" in msgs
    assert len(ds) == 2 and ds.skipped == [(str(images / "0--A" / "b.jpg"), "missing")]
    s = ds[0]
    assert isinstance(s, FaceSample)
    assert s.boxes.dtype == np.float32 and s.boxes.shape == (2, 4)
    np.testing.assert_array_equal(s.boxes[0], [1, 2, 11, 14])
    assert s.ignore.tolist() == [False, True]  # zero width and invalid flag
    assert s.landmarks is None
    assert ds[1].boxes.shape == (0, 4)  # an image without faces


def test_label_txt_landmarks(tmp_path):
    images = tmp_path / "images"
    _img(images / "x.jpg")
    (tmp_path / "label.txt").write_text(
        "# x.jpg 64 48\n"
        "10 10 20 20 14 16 0.0 24 16 0.0 19 21 0.0 15 26 0.0 23 26 0.0 0.9\n"
        "40 5 6 6 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1\n"
        "0 30 10 10 -2.5 33 1.0 -1 -1 -1 4 36 0.0 -1 38 0.0 6 -1 0.0 0.7\n"  # points left of / above the image
        "30 30 8 8 31 32 34 32 33 34 31 36 35 36\n"  # x y pairs
        "50 30 8 8\n")  # a box alone
    ds = FaceDataset.from_annotations(str(tmp_path / "label.txt"), str(images))
    s = ds[0]
    assert s.landmarks.shape == (5, 5, 2) and s.landmarks.dtype == np.float32
    np.testing.assert_array_equal(s.landmarks[0, 0], [14, 16])
    assert np.isnan(s.landmarks[1]).all() and np.isnan(s.landmarks[4]).all()
    # SCRFD (retinaface.py) drops a point only when all three numbers are -1: negative coordinates stay
    np.testing.assert_array_equal(s.landmarks[2], [[-2.5, 33], [np.nan, np.nan], [4, 36], [-1, 38], [6, -1]])
    np.testing.assert_array_equal(s.landmarks[3, 4], [35, 36])


def test_label_txt_rejects_non_finite_landmarks(tmp_path):
    p = tmp_path / "label.txt"
    p.write_text("# a.jpg\n1 2 3 4 nan 1 0 2 2 0 3 3 0 4 4 0 5 5 0\n")
    with pytest.raises(ValueError, match=r"label.txt:2: landmarks must be finite"):
        read_label(str(p))


@pytest.mark.parametrize("text,where,what", [
    ("0--A/a.jpg\ntwo\n", ":2:", "face count"),
    ("0--A/a.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n", ":2:", "file ends"),
    ("0--A/a.jpg\n1\n1 2 x 4 0 0 0 0 0 0\n", ":3:", "expected numbers"),
    ("0--A/a.jpg\n1\n1 2 3\n", ":3:", "at least 4 numbers"),
])
def test_malformed_txt(tmp_path, text, where, what):
    p = tmp_path / "gt.txt"
    p.write_text(text)
    with pytest.raises(ValueError, match=what) as e:
        read_txt(str(p))
    assert str(p) + where in str(e.value)


def test_malformed_label(tmp_path):
    p = tmp_path / "label.txt"
    p.write_text("# a.jpg\n1 2 3 4 5 6 7\n")
    with pytest.raises(ValueError, match=r"label.txt:2: expected 'x y w h' then 5 landmarks"):
        read_label(str(p))
    p.write_text("1 2 3 4\n")
    with pytest.raises(ValueError, match=r"label.txt:1: a face line before"):
        read_label(str(p))


def test_corrupt_image_skipped_on_load(tmp_path):
    images = tmp_path / "images"
    _img(images / "good.jpg")
    os.makedirs(images, exist_ok=True)
    (images / "bad.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "label.txt").write_text("# bad.jpg\n1 1 5 5\n# good.jpg\n2 2 8 8\n")
    ds = FaceDataset.from_annotations(str(tmp_path / "label.txt"), str(images),
                                      transform=lambda img, s, rng: (img.shape, s.image_path))
    with pytest.warns(UserWarning, match="cannot decode"):
        shape, path = ds[0]
    assert path.endswith("good.jpg") and shape == (48, 64, 3)
    assert ds.skipped == [(str(images / "bad.jpg"), "cannot decode")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = FaceDataset.from_annotations(str(tmp_path / "label.txt"), str(images), verify=True)
    assert len(v) == 1 and v.skipped[0][1] == "cannot decode"


def test_from_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="no train data found"):
        FaceDataset.from_folder(str(tmp_path))


def test_images_load_as_rgb(tmp_path):
    images = tmp_path / "images"
    os.makedirs(images)
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(images / "a.png"), rgb[..., ::-1])  # OpenCV writes BGR
    (tmp_path / "label.txt").write_text("# a.png\n1 1 5 5\n")
    ds = FaceDataset.from_annotations(str(tmp_path / "label.txt"), str(images))
    np.testing.assert_array_equal(ds.load_image(0), rgb)
