import json
import os
import warnings

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
scipy_io = pytest.importorskip("scipy.io")

from pyddsar.cli import main  # noqa: E402
from pyddsar.data import FaceDataset  # noqa: E402
from pyddsar.data.synthetic import EASY_MIN, MEDIUM_MIN, write_dataset  # noqa: E402
from pyddsar.evaluation import evaluate, load_ground_truth  # noqa: E402

from _shared_data import data_path  # noqa: E402

REAL = data_path("widerface_val_gt")


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn")
    counts = write_dataset(str(out), 12, 8, seed=3, image_size=(320, 240))
    return str(out), counts


def test_counts_and_boxes_inside(syn):
    out, counts = syn
    assert counts["train_images"] == 12 and counts["val_images"] == 8
    for split in ("train", "val"):
        for prefer in (True, False):
            ds = FaceDataset.from_folder(out, split, prefer_landmarks=prefer)
            assert len(ds) == counts[f"{split}_images"] and not ds.skipped
            assert sum(len(s.boxes) for s in ds.samples) == counts[f"{split}_faces"]
            for s in ds.samples:
                h, w = cv2.imread(s.image_path).shape[:2]
                assert (w, h) == (320, 240)
                assert (s.boxes[:, :2] >= 0).all() and (s.boxes[:, 2] <= w).all() and (s.boxes[:, 3] <= h).all()
                assert (s.boxes[:, 2] > s.boxes[:, 0]).all() and not s.ignore.any()
                if prefer:
                    have = s.landmarks[:, 0, 0] >= 0
                    lm = s.landmarks[have]
                    b = s.boxes[have]
                    assert (lm[..., 0] >= b[:, None, 0] - 1).all() and (lm[..., 0] <= b[:, None, 2] + 1).all()
    heights = [b[3] - b[1] for s in FaceDataset.from_folder(out, "train").samples for b in s.boxes]
    assert min(heights) < 16 and max(heights) > 64


def test_deterministic(syn, tmp_path):
    out, _ = syn
    write_dataset(str(tmp_path), 12, 8, seed=3, image_size=(320, 240))
    for rel in ("wider_face_split/wider_face_train_bbx_gt.txt", "WIDER_val/label.txt"):
        assert open(os.path.join(out, rel)).read() == open(os.path.join(tmp_path, rel)).read()
    a = FaceDataset.from_folder(out, "val").samples[0].image_path
    b = FaceDataset.from_folder(str(tmp_path), "val").samples[0].image_path
    assert open(a, "rb").read() == open(b, "rb").read()
    write_dataset(str(tmp_path / "other"), 2, 0, seed=4, image_size=(320, 240))
    assert (open(os.path.join(out, "wider_face_split/wider_face_train_bbx_gt.txt")).read()
            != open(os.path.join(tmp_path, "other", "wider_face_split/wider_face_train_bbx_gt.txt")).read())


def test_val_mat_subsets_and_gt_as_predictions(syn):
    out, counts = syn
    gt = load_ground_truth(os.path.join(out, "ground_truth"))
    assert len(gt.names) == 8 and sum(len(b) for b in gt.boxes) == counts["val_faces"]
    for i, b in enumerate(gt.boxes):
        assert set(gt.keep["easy"][i]) == set(np.nonzero(b[:, 3] >= EASY_MIN)[0])
        assert set(gt.keep["medium"][i]) == set(np.nonzero(b[:, 3] >= MEDIUM_MIN)[0])
        assert len(gt.keep["hard"][i]) == len(b)
    preds = {k: np.concatenate([b, np.linspace(1, 0.5, len(b))[:, None]], 1) for k, b in zip(gt.keys, gt.boxes)}
    res = evaluate(preds, gt)
    assert res.ap == {"easy": 1.0, "medium": 1.0, "hard": 1.0}


def _structure(mat):
    out = {}
    for k, v in mat.items():
        if k.startswith("__"):
            continue
        first = v[0][0]
        inner = first[0][0] if first.dtype == object else first
        out[k] = (v.dtype, v.shape[1], first.dtype.kind, first.shape[1:] if first.ndim > 1 else (), inner.dtype.kind,
                  inner.ndim)
    return out


@pytest.mark.parametrize("name", ["wider_face_val.mat", "wider_easy_val.mat", "wider_medium_val.mat",
                                  "wider_hard_val.mat"])
def test_mat_structure_like_official(syn, name):
    if not os.path.isfile(os.path.join(REAL, name)):
        pytest.skip("official WIDER val .mat files not in ../shared/data")
    out, _ = syn
    ours = _structure(scipy_io.loadmat(os.path.join(out, "ground_truth", name)))
    ref = _structure(scipy_io.loadmat(os.path.join(REAL, name)))
    assert set(ours) == set(ref)
    for k in ref:
        assert ours[k][:4] == ref[k][:4], k
        assert ours[k][4] == ref[k][4] or {ours[k][4], ref[k][4]} <= {"i", "u"}, k


def test_cli_synthetic_and_preview(tmp_path, capsys):
    assert main(["data", "synthetic", "--out", str(tmp_path / "d"), "--train", "3", "--val", "2", "--seed", "1",
                 "--size", "160", "120", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["train_images"] == 3 and info["val_images"] == 2
    assert main(["data", "preview", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "g.png"), "--n", "4"]) == 0
    img = cv2.imread(str(tmp_path / "g.png"))
    assert img is not None and img.shape[0] >= 2 * 320
    assert main(["data", "preview", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.png")]) == 2


def test_cli_eval_on_synthetic(syn, tmp_path, capsys):
    out, _ = syn
    from pyddsar.evaluation import write_predictions

    gt = load_ground_truth(os.path.join(out, "ground_truth"))
    preds = {k: np.concatenate([b, np.full((len(b), 1), 0.9)], 1) for k, b in zip(gt.keys, gt.boxes)}
    preds[gt.keys[0]] = np.concatenate([preds[gt.keys[0]], [[0, 0, 5, 5, 0.1]]])
    write_predictions(str(tmp_path / "p"), dict(list(preds.items())[1:]) | {gt.keys[0]: preds[gt.keys[0]]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["eval", "--predictions", str(tmp_path / "p"), "--gt", os.path.join(out, "ground_truth"),
                   "--out", str(tmp_path / "ev")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Easy AP: 1.0000" in text and "Medium AP: " in text and "Hard AP: " in text
    assert (tmp_path / "ev" / "pr_curves.png").exists() and (tmp_path / "ev" / "ap.json").exists()
    ap = json.loads((tmp_path / "ev" / "ap.json").read_text())
    assert ap["easy"] == 1.0 and ap["num_images"] == len(gt.keys)
    assert not [p.name for p in (tmp_path / "ev").iterdir() if ".tmp-" in p.name]  # written atomically
    assert main(["eval", "--gt", os.path.join(out, "ground_truth"), "--model", "ddsar-0.5g", "--weights", "w",
                 "--data", out]) == 2
    assert "weights file not found: w" in capsys.readouterr().err


def test_cli_eval_runs_a_detector_from_a_model_file(syn, tmp_path, capsys):
    pytest.importorskip("torch")
    from pyddsar.model_file import save_model
    from pyddsar.models import build_detector

    out, _ = syn
    save_model(build_detector("ddsar-0.5g"), str(tmp_path / "m.pt"))
    rc = main(["eval", "--weights", str(tmp_path / "m.pt"), "--data", out, "--gt", os.path.join(out, "ground_truth"),
               "--out", str(tmp_path / "ev"), "--json"])
    assert rc == 0
    cap = capsys.readouterr()
    res = json.loads(cap.out)
    assert "eval: 100%" in cap.err and "8/8" in cap.err  # the bar on stderr: 8 val images
    assert json.dumps(json.loads((tmp_path / "ev" / "ap.json").read_text())["easy"]) == json.dumps(res["easy"])
    assert {"easy", "medium", "hard"} <= set(res) and 0.0 <= res["easy"] <= 1.0
    assert any((tmp_path / "ev" / "predictions").rglob("*.txt"))
