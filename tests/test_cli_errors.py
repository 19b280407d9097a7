"""Bad arguments and files give `pyddsar X: error: ...` (exit 2), never a traceback or a silent answer."""

import struct
import zlib

import pytest

import pyddsar
from pyddsar.cli import main


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    data = str(root / "d")
    assert main(["data", "synthetic", "--out", data, "--train", "2", "--val", "2", "--size", "64", "64"]) == 0
    preds = root / "preds" / "1--Group"
    preds.mkdir(parents=True)
    (preds / "1_Group_synthetic_val_0.txt").write_text("1_Group_synthetic_val_0\ninf\n1 2 3 4 0.5\n")
    return root, data


def probes(root, data):
    return [
        (["score", "--preset", "ddsar-0.5g", "--alpha", "1e308"], "alpha must be non-negative and at most 1e+06"),
        (["regions", "--input", "5x5x1", "--kernel", "3", "--filters", "99999999999999999999"], "beyond the largest"),
        (["train", "--data", data, "--device", "bogus", "--max-steps", "1"], "device must be cpu, cuda or cuda:N"),
        (["train", "--data", data, "--lr", "inf", "--max-steps", "1"], "lr must be a positive number"),
        (["data", "preview", "--n", "0", "--data", data, "--out", str(root / "p.png")], "--n must be a positive integer at most 1024"),
        (["eval", "--predictions", str(root / "preds"), "--gt", f"{data}/ground_truth", "--iou", "-1"], "iou_thresh"),
        (["eval", "--predictions", str(root / "preds"), "--gt", f"{data}/ground_truth", "--iou", "nan"], "iou_thresh"),
        (["eval", "--predictions", str(root / "preds"), "--gt", f"{data}/ground_truth"], "expected the number of boxes"),
        (["search", "--out", f"{data}/synthetic.json", "--iterations", "10"], "is a file, not a folder"),
    ]


@pytest.mark.parametrize("index", range(9))
def test_bad_arguments_are_clear_errors(syn, capsys, index):
    argv, fragment = probes(*syn)[index]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"pyddsar {argv[0]}: error:" in err and fragment in err and "Traceback" not in err


def test_limits_of_the_api_are_value_errors():
    for v in (-5, 1.5, True):
        with pytest.raises(ValueError, match="max_states"):
            pyddsar.linear_regions((5, 5, 1), 3, 1, 7, max_states=v)
    assert pyddsar.linear_regions((5, 5, 1), 3, 1, 7, max_states=0) == 560134574838141912


def huge_png(path):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))


def test_detect_skips_an_unreadable_image_and_does_the_others(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    import cv2
    import numpy as np

    from pyddsar.model_file import save_model
    from pyddsar.models import build_detector

    torch.manual_seed(0)
    save_model(build_detector("scrfd-0.5g"), str(tmp_path / "m.pt"))
    huge_png(tmp_path / "huge.png")  # its header claims 100000 x 100000 pixels
    cv2.imwrite(str(tmp_path / "ok.png"), np.full((64, 80, 3), 90, np.uint8))
    assert main(["detect", str(tmp_path / "huge.png"), str(tmp_path / "ok.png"), "--weights", str(tmp_path / "m.pt"),
                 "--no-progress"]) == 1
    out = capsys.readouterr()
    assert "ok.png: 0 faces" in out.out
    assert "skipped" in out.err and "huge.png" in out.err and "1 of 2 images could not be read" in out.err


def test_unbounded_work_is_refused_up_front(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from pyddsar import ops

    n = ops.NMS_MAX_BOXES + 1
    boxes = torch.zeros(n, 4)
    boxes[:, 2:] = 1
    with pytest.raises(ValueError, match="pre_nms_topk"):
        ops.nms(boxes, torch.rand(n), 0.5)
    with pytest.raises(ValueError, match="population must be at most 1,000,000"):
        pyddsar.search("0.5g", population=10**9)
    assert main(["data", "synthetic", "--out", str(tmp_path / "s"), "--size", "20000", "20000", "--train", "1"]) == 2
    assert "at most 4096x4096" in capsys.readouterr().err
    arrangement = pytest.importorskip("scipy")  # noqa: F841
    import numpy as np

    with pytest.raises(ValueError, match="max_hyperplanes"):  # 16 neurons: about a minute of LPs
        pyddsar.count_arrangement_regions(np.ones((16, 4, 2, 2)), np.arange(16.0), (2, 2, 4))
