import os
import warnings

import numpy as np
import pytest

from pyddsar.evaluation import (
    WiderGroundTruth,
    evaluate,
    iou_plus_one,
    load_ground_truth,
    read_predictions,
    write_ap_json,
    write_pr_plot,
    write_predictions,
)

from _wider_plain import plain_ap, plain_normalise

from _shared_data import data_path

REAL_GT = data_path("widerface_val_gt")
HAVE_REAL = os.path.isfile(os.path.join(REAL_GT, "wider_face_val.mat"))


def random_gt(rng, n_images=12):
    events, names, boxes, keep = [], [], [], {"easy": [], "medium": [], "hard": []}
    for i in range(n_images):
        m = int(rng.integers(0, 9))
        xy = rng.uniform(0, 300, (m, 2))
        wh = rng.uniform(2, 120, (m, 2))
        b = np.round(np.concatenate([xy, wh], 1))
        events.append(f"{i % 3}--Ev{i % 3}")
        names.append(f"img_{i}")
        boxes.append(b)
        side = np.sqrt(wh.prod(1)) if m else np.zeros(0)
        keep["hard"].append(np.nonzero(rng.random(m) < 0.9)[0])
        keep["medium"].append(np.nonzero(side >= 24)[0])
        keep["easy"].append(np.nonzero(side >= 64)[0])
    return WiderGroundTruth(events, names, boxes, keep)


def random_preds(rng, gt, sort=True):
    preds = {}
    for k, b in zip(gt.keys, gt.boxes):
        parts = []
        if len(b):
            sel = b[rng.random(len(b)) < 0.8]
            jit = sel + rng.normal(0, 1, sel.shape) * np.maximum(sel[:, 2:4].repeat(2, 1) * 0.15, 1)
            parts.append(jit)
        n_fp = int(rng.integers(0, 5))
        parts.append(np.concatenate([rng.uniform(0, 300, (n_fp, 2)), rng.uniform(2, 100, (n_fp, 2))], 1))
        bb = np.concatenate(parts, 0)
        s = rng.uniform(0.05, 3.0, len(bb))
        p = np.concatenate([bb, s[:, None]], 1)
        if sort:
            p = p[np.argsort(-s, kind="stable")]
        preds[k] = p
    return preds


def plain_for(preds, gt):
    normed = plain_normalise(preds)
    per = [normed.get(k) for k in gt.keys]
    return {s: plain_ap(per, gt.boxes, gt.keep[s]) for s in ("easy", "medium", "hard")}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("sort", [True, False])
def test_matches_plain_statement_on_random_predictions(seed, sort):
    rng = np.random.default_rng(seed)
    gt = random_gt(rng)
    preds = random_preds(rng, gt, sort=sort)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate(preds, gt)
    ref = plain_for(preds, gt)
    for s in ("easy", "medium", "hard"):
        assert res.ap[s] == pytest.approx(ref[s][0], abs=1e-6), s
        np.testing.assert_allclose(res.recall[s], ref[s][2], atol=1e-12)
        np.testing.assert_allclose(res.precision[s], ref[s][1], atol=1e-12, equal_nan=True)


def test_iou_plus_one_convention():
    a = np.array([[0, 0, 9, 9]])  # 10 x 10 pixels
    b = np.array([[5, 0, 14, 9], [10, 0, 19, 9], [9, 9, 20, 20]])
    iou = iou_plus_one(a, b)
    assert iou[0, 0] == pytest.approx(50 / 150)
    assert iou[0, 1] == 0.0  # touching edges do not overlap
    assert iou[0, 2] == pytest.approx(1 / (100 + 144 - 1))


def test_prediction_files_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    gt = random_gt(rng)
    preds = random_preds(rng, gt)
    n = write_predictions(str(tmp_path / "pred"), preds)
    assert n == len(preds)
    back = read_predictions(str(tmp_path / "pred"))
    assert set(back) == set(preds)
    k = gt.keys[0]
    assert back[k].shape == preds[k].shape
    np.testing.assert_allclose(back[k][:, :4], preds[k][:, :4], atol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = evaluate(str(tmp_path / "pred"), gt), evaluate(preds, gt)
    for s in ("easy", "medium", "hard"):
        assert a.ap[s] == pytest.approx(b.ap[s], abs=1e-4)


def test_malformed_prediction_file(tmp_path):
    d = tmp_path / "pred" / "0--Ev0"
    d.mkdir(parents=True)
    (d / "img_0.txt").write_text("img_0.jpg\n2\n1 2 3 4 0.5\n1 2 three 4 0.5\n")
    with pytest.raises(ValueError, match=r"img_0.txt:4: expected 'x y w h score'"):
        read_predictions(str(tmp_path / "pred"))
    (d / "img_0.txt").write_text("img_0.jpg\n2\n1 2 3 4\n")
    with pytest.raises(ValueError, match=r"img_0.txt:3: expected 5 numbers"):
        read_predictions(str(tmp_path / "pred"))
    (d / "img_0.txt").write_text("img_0.jpg\n3\n1 2 3 4 0.9\n")
    with pytest.warns(UserWarning, match="announces 3 boxes but holds 1"):
        read_predictions(str(tmp_path / "pred"))
    with pytest.raises(ValueError, match="prediction folder not found"):
        read_predictions(str(tmp_path / "nope"))


def test_bad_input_defined_with_warnings():
    gt = WiderGroundTruth(
        ["0--A", "0--A", "0--A"], ["with_faces", "no_faces", "no_preds"],
        [np.array([[10.0, 10, 50, 50], [100, 100, 80, 80]]), np.zeros((0, 4)), np.array([[5.0, 5, 70, 70]])],
        {s: [np.array([0, 1]), np.zeros(0, int), np.array([0])] for s in ("easy", "medium", "hard")},
    )
    preds = {
        "0--A/with_faces": np.array([[10.0, 10, 50, 50, 0.9], [100, 100, 80, 80, 0.8], [0, 0, -5, 3, 0.1]]),
        "0--A/no_faces": np.array([[1.0, 1, 5, 5, 0.5]]),
        "9--Z/unknown": np.array([[1.0, 1, 5, 5, 0.3]]),
    }
    with pytest.warns(UserWarning) as rec:
        res = evaluate(preds, gt)
    text = " | ".join(str(w.message) for w in rec)
    assert "not in the ground truth" in text
    assert "no predictions for 1 of 3" in text
    assert "negative width or height" in text
    # two of three faces found, the zero-width-ish box is a false positive after both hits
    assert res.recall["hard"][-1] == pytest.approx(2 / 3)
    assert 0 < res.ap["hard"] < 1
    # NaN is an error
    with pytest.raises(ValueError, match="NaN"):
        evaluate({"0--A/with_faces": np.array([[np.nan, 0, 1, 1, 0.5]])}, gt)
    with pytest.raises(ValueError, match=r"\[N, 5\]"):
        evaluate({"0--A/with_faces": np.zeros((2, 3))}, gt)
    # equal scores that normalisation cannot spread: defined as all 1
    with pytest.warns(UserWarning, match="scores are equal"):
        res = evaluate({"0--A/with_faces": np.array([[10.0, 10, 50, 50, 1.0]]), "0--A/no_preds": np.zeros((0, 5))}, gt)
    assert res.recall["hard"][0] == pytest.approx(1 / 3)


def test_pr_plot(tmp_path):
    rng = np.random.default_rng(1)
    gt = random_gt(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate(random_preds(rng, gt), gt)
    write_pr_plot(str(tmp_path / "pr.png"), res)
    assert (tmp_path / "pr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Easy AP: " in str(res) and set(res.to_dict()) >= {"easy", "medium", "hard"}


def test_ap_json_is_written_atomically(tmp_path, monkeypatch):
    import json

    rng = np.random.default_rng(2)
    gt = random_gt(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate(random_preds(rng, gt), gt)
    path = tmp_path / "ap.json"
    write_ap_json(str(path), res)
    assert json.loads(path.read_text()) == json.loads(json.dumps(res.to_dict()))
    before = path.read_text()

    def crash(fd):  # the write fails after the temporary is written, before it replaces ap.json
        raise OSError("disk gone")

    monkeypatch.setattr("pyddsar._atomic.os.fsync", crash)
    with pytest.raises(OSError, match="disk gone"):
        write_ap_json(str(path), res)
    assert path.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ap.json"]


@pytest.fixture(scope="module")
def real_gt():
    if not HAVE_REAL:
        pytest.skip("WIDER val ground truth not in ../shared/data/widerface_val_gt")
    return load_ground_truth(REAL_GT)


def test_real_gt_counts(real_gt):
    assert len(real_gt.names) == 3226
    assert sum(len(b) for b in real_gt.boxes) == 39708
    assert [real_gt.num_faces(s) for s in ("easy", "medium", "hard")] == [7211, 13319, 31958]


def _gt_as_predictions(gt, rng):
    out = {}
    for k, b in zip(gt.keys, gt.boxes):
        s = np.sort(rng.uniform(0.1, 1.0, len(b)))[::-1]
        out[k] = np.concatenate([b, s[:, None]], 1)
    return out


def test_real_gt_as_predictions(real_gt):
    # The val ground truth holds one exact duplicate box and one box of width -2: the reference
    # counts the duplicate's second prediction and the inverted box as false positives, so AP is
    # 1.0 to three decimals, not exactly 1.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate(_gt_as_predictions(real_gt, np.random.default_rng(0)), real_gt)
    for s in ("easy", "medium", "hard"):
        assert res.ap[s] > 0.9998, s
    assert res.recall["easy"][-1] == 1.0 and res.recall["medium"][-1] == 1.0


def _subset(gt, n_events):
    evs = sorted(set(gt.events), key=gt.events.index)[:n_events]
    idx = [i for i, e in enumerate(gt.events) if e in evs]
    return WiderGroundTruth([gt.events[i] for i in idx], [gt.names[i] for i in idx], [gt.boxes[i] for i in idx],
                            {s: [gt.keep[s][i] for i in idx] for s in gt.keep})


def test_real_gt_perturbed_matches_plain(real_gt):
    gt = _subset(real_gt, 2)
    rng = np.random.default_rng(7)
    preds = {}
    for k, b in zip(gt.keys, gt.boxes):
        keep = b[rng.random(len(b)) < 0.85]  # dropped
        jit = keep + rng.normal(0, 0.12, keep.shape) * keep[:, [2, 3, 2, 3]]  # jittered
        extra = np.concatenate([rng.uniform(0, 900, (3, 2)), rng.uniform(5, 80, (3, 2))], 1)  # added
        bb = np.concatenate([jit, extra])
        s = rng.random(len(bb))
        p = np.concatenate([bb, s[:, None]], 1)
        preds[k] = p[np.argsort(-s)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate(preds, gt)
    ref = plain_for(preds, gt)
    for s in ("easy", "medium", "hard"):
        assert res.ap[s] == pytest.approx(ref[s][0], abs=1e-6), s
    assert 0.3 < res.ap["hard"] < 0.95
