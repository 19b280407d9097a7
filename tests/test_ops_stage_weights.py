"""Stage weights (SPEC section 7), the WIDER ground-truth readers and `pyddsar lambdas`."""

import json
import math
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyddsar  # noqa: E402
from pyddsar.cli import main  # noqa: E402
from pyddsar.data.widerface_gt import read_gt  # noqa: E402
from pyddsar.stage_weights import WIDERFACE_COUNTS, WIDERFACE_LAMBDAS, stage_weights  # noqa: E402
from test_ops_atss import ref_atss  # noqa: E402
from test_ops_boxes import ref_anchors  # noqa: E402

from _shared_data import data_path  # noqa: E402

WIDER_MAT = data_path("widerface_val_gt", "wider_face_val.mat")


def ref_stage_counts(images, sizes):
    """Plain method: 4-level pyramid at native size, ATSS reference, most positives per level (ties: finer)."""
    counts, unassigned = [0, 0, 0, 0], 0
    strides, sides = [4, 8, 16, 32], [[4, 8], [16, 32], [64, 128], [256, 512]]
    for boxes, (w, h) in zip(images, sizes):
        if len(boxes) == 0:
            continue
        fs = [(math.ceil(h / s), math.ceil(w / s)) for s in strides]
        anchors = ref_anchors(fs, strides, sides)
        levels = [a * b * 2 for a, b in fs]
        assigned, _ = ref_atss(anchors, levels, torch.tensor(boxes, dtype=torch.float32))
        level_of = [lvl for lvl, n in enumerate(levels) for _ in range(n)]
        for j in range(len(boxes)):
            per = [0, 0, 0, 0]
            for a in torch.nonzero(assigned == j + 1).flatten().tolist():
                per[level_of[a]] += 1
            if max(per) == 0:
                unassigned += 1
            else:
                counts[per.index(max(per))] += 1  # first maximum: the finer level
    return counts, unassigned


def scene(seed, n_images=4):
    rng = np.random.default_rng(seed)
    images, sizes = [], []
    for _ in range(n_images):
        w, h = int(rng.integers(4, 9)) * 32, int(rng.integers(3, 8)) * 32
        m = int(rng.integers(0, 12))
        side = np.exp(rng.uniform(math.log(3), math.log(300), m))
        xy = rng.uniform(0, 1, (m, 2)) * [w, h]
        images.append(np.concatenate([xy, xy + side[:, None] * rng.uniform(0.8, 1.2, (m, 2))], 1).round(1))
        sizes.append((w, h))
    return images, sizes


@pytest.mark.parametrize("seed", range(3))
def test_stage_weights_match_plain_method(seed):
    images, sizes = scene(seed)
    r = stage_weights(images, sizes)
    counts, unassigned = ref_stage_counts(images, sizes)
    assert list(r.counts) == counts and len(r.unassigned) == unassigned
    assert r.lambdas[0] == 0.2 and math.isclose(sum(r.lambdas), 1.0, abs_tol=1e-12)
    total = sum(counts)
    assert all(math.isclose(r.lambdas[i + 1], 0.8 * counts[i] / total) for i in range(4))


def test_stage_weights_face_sizes_go_to_the_expected_levels():
    faces = [[[10, 10, 16, 16]], [[40, 40, 64, 64]], [[100, 100, 196, 196]], [[100, 100, 500, 500]]]
    r = stage_weights([np.array(f, dtype=float) for f in faces], [(640, 640)] * 4)
    assert r.counts == (1, 1, 1, 1)


def test_stage_weights_sizes_from_extents_and_reports():
    boxes = np.array([[10.0, 10, 40, 40], [50, 50, 50, 70], [300, 20, 290, 40]])  # zero width; negative width
    r = stage_weights([boxes])
    assert r.inferred_sizes == 1
    assert r.unassigned == ((0, 1),) and r.invalid == ((0, 2),)
    assert r.num_faces == 3 and sum(r.counts) == 1
    # inferred size = extents rounded up to multiples of 32: (320, 96) here -> same as explicit
    assert stage_weights([boxes[:1]]).counts == stage_weights([boxes[:1]], [(64, 64)]).counts
    assert "lambda_5" in str(r) and r.to_dict()["unassigned_faces"] == 1


def test_stage_weights_bad_input():
    with pytest.raises(ValueError, match="shape"):
        stage_weights([np.zeros((2, 3))])
    with pytest.raises(ValueError, match="NaN"):
        stage_weights([np.array([[0, 0, np.nan, 1.0]])])
    with pytest.raises(ValueError, match="image_sizes has"):
        stage_weights([np.zeros((0, 4))], [(32, 32), (32, 32)])
    with pytest.raises(ValueError, match="positive"):
        stage_weights([np.array([[0, 0, 5, 5.0]])], [(0, 32)])
    with pytest.raises(ValueError, match="undefined"):
        stage_weights([np.zeros((0, 4))])


def test_widerface_constant():
    assert len(WIDERFACE_LAMBDAS) == 5 and WIDERFACE_LAMBDAS[0] == 0.2
    assert math.isclose(sum(WIDERFACE_LAMBDAS), 1.0, abs_tol=1e-12)
    assert pyddsar.stage_weights.WIDERFACE_LAMBDAS == WIDERFACE_LAMBDAS


@pytest.mark.skipif(not os.path.exists(WIDER_MAT), reason="WIDER Face val ground truth (wider_face_val.mat) is absent")
def test_widerface_constant_recomputed():
    images = read_gt(WIDER_MAT)
    assert len(images) == 3226 and sum(len(g.boxes) for g in images) == 39708
    r = stage_weights([g.boxes for g in images])
    assert r.counts == WIDERFACE_COUNTS
    assert r.lambdas == WIDERFACE_LAMBDAS


# --- readers and CLI ----------------------------------------------------------------------------


def test_read_official_txt_and_label(tmp_path):
    txt = tmp_path / "gt.txt"
    txt.write_text(
        "0--Parade/a.jpg\n2\n10 20 30 40 0 0 0 0 0 0 \n5 5 1 2 1 0 0 0 0 0 \n"
        "0--Parade/b.jpg\n0\n0 0 0 0 0 0 0 0 0 0 \n1--Handshaking/c.jpg\n1\n1 2 3 4 0 0 0 0 0 0\n"
    )
    gt = read_gt(str(txt))
    assert [g.path for g in gt] == ["0--Parade/a", "0--Parade/b", "1--Handshaking/c"]
    assert gt[0].boxes.tolist() == [[10, 20, 40, 60], [5, 5, 6, 7]] and gt[1].boxes.shape == (0, 4)
    label = tmp_path / "label.txt"
    label.write_text("# 0--Parade/a.jpg 1024 768\n10 20 30 40 1 1 0.0 2 2 0.0 3 3 0.0 4 4 0.0 5 5 0.0 0.9\n# x/b.jpg\n")
    gl = read_gt(str(label))
    assert gl[0].image_size == (1024, 768) and gl[0].boxes.tolist() == [[10, 20, 40, 60]]
    assert gl[1].image_size is None and gl[1].boxes.shape == (0, 4)
    assert read_gt(str(label), "label")[0].path == "0--Parade/a"


def test_read_bad_files(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("a.jpg\nthree\n")
    with pytest.raises(ValueError, match="face count"):
        read_gt(str(bad))
    bad.write_text("a.jpg\n2\n1 2 3 4\n")
    with pytest.raises(ValueError, match="file ends"):
        read_gt(str(bad))
    with pytest.raises(ValueError, match="not found"):
        read_gt(str(tmp_path / "missing.mat"))
    with pytest.raises(ValueError, match="format"):
        read_gt(str(bad), "xml")


def test_read_mat_roundtrip(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    events = np.empty((1, 1), dtype=object)
    events[0, 0] = np.array(["0--Parade"])
    files = np.empty((1, 1), dtype=object)
    f = np.empty((2, 1), dtype=object)
    f[0, 0], f[1, 0] = np.array(["a"]), np.array(["b"])
    files[0, 0] = f
    bbx = np.empty((1, 1), dtype=object)
    b = np.empty((2, 1), dtype=object)
    b[0, 0] = np.array([[1, 2, 3, 4]], dtype=np.int32)
    b[1, 0] = np.array([[0, 0, 10, 10], [5, 5, 2, 2]], dtype=np.int32)
    bbx[0, 0] = b
    path = tmp_path / "gt.mat"
    scipy_io.savemat(str(path), {"event_list": events, "file_list": files, "face_bbx_list": bbx})
    gt = read_gt(str(path))
    assert [g.path for g in gt] == ["0--Parade/a", "0--Parade/b"]
    assert gt[1].boxes.tolist() == [[0, 0, 10, 10], [5, 5, 7, 7]]


def test_cli_lambdas(tmp_path, capsys):
    label = tmp_path / "label.txt"
    label.write_text("# a.jpg 640 640\n10 10 6 6\n40 40 24 24\n100 100 96 96\n100 100 400 400\n")
    assert main(["lambdas", "--gt", str(label), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"] == {"C2": 1, "C3": 1, "C4": 1, "C5": 1}
    assert out["lambdas"] == [0.2, 0.2, 0.2, 0.2, 0.2]
    assert main(["lambdas", "--gt", str(label)]) == 0
    assert "lambda_1: 0.200000" in capsys.readouterr().out
    assert main(["lambdas", "--gt", str(tmp_path / "nope.txt")]) == 2
    assert "not found" in capsys.readouterr().err


def test_progress_callback_and_cli_bar(tmp_path, capsys):
    calls = []
    boxes = [np.array([[10.0, 10, 20, 20]]), np.zeros((0, 4)), np.array([[5.0, 5, 100, 100]])]
    stage_weights(boxes, [(64, 64)] * 3, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    label = tmp_path / "label.txt"
    label.write_text("# a.jpg 640 640\n10 10 6 6\n40 40 24 24\n# b.jpg 640 640\n100 100 96 96\n")
    assert main(["lambdas", "--gt", str(label), "--json"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["num_images"] == 2
    assert "lambdas: 100%" in cap.err and "2/2" in cap.err
    for flag in ("--no-progress", "--quiet"):
        assert main(["lambdas", "--gt", str(label), "--json", flag]) == 0
        cap = capsys.readouterr()
        assert json.loads(cap.out)["num_images"] == 2 and cap.err == ""
