"""One inference path for every detector: the Detector's preprocessing (insightface's / SCRFD's test
pipeline) for `pyddsar eval`, `detect` and ASFD's mini-validation, and a model file's stored
preprocessing honoured by every loader."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from pyddsar.asfd.train import minival_ap  # noqa: E402
from pyddsar.data import FaceDataset  # noqa: E402
from pyddsar.data.synthetic import write_dataset  # noqa: E402
from pyddsar.evaluation.model_eval import evaluate_model  # noqa: E402
from pyddsar.inference import Detector  # noqa: E402
from pyddsar.model_file import Preprocessing, save_model  # noqa: E402
from pyddsar.models import build_detector  # noqa: E402


def insightface_input(img_bgr, size, mean=127.5, std=128.0, rgb=True):
    """insightface model_zoo/scrfd.py `detect`: the longer side to `size` with int() truncation of the
    other, bilinear, top-left on a zero canvas; then (x - mean) / std in the network's channel order."""
    h, w = img_bgr.shape[:2]
    if h / w > 1:
        nh, nw = size, int(size / (h / w))
    else:
        nw, nh = size, int(size * (h / w))
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[:nh, :nw] = cv2.resize(img_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    x = canvas[..., ::-1] if rgb else canvas
    return ((x.astype(np.float32) - mean) / std).transpose(2, 0, 1), nh / h


@pytest.mark.parametrize("shape", [(480, 640), (641, 303), (100, 100), (37, 900)])
@pytest.mark.parametrize("pre", [Preprocessing(), Preprocessing(input_size=320, mean=0.0, std=255.0, rgb=False)])
def test_preprocessing_is_insightfaces(shape, pre):
    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    det = Detector(build_detector("scrfd-0.5g"), preprocessing=pre)
    x, scales = det.preprocess([img])
    want, scale = insightface_input(img, pre.input_size, pre.mean, pre.std, pre.rgb)
    np.testing.assert_allclose(x[0].numpy(), want, atol=1e-6)
    assert scales[0] == pytest.approx(scale)


def test_a_model_files_preprocessing_is_used_by_every_loader(tmp_path):
    torch.manual_seed(0)
    model = build_detector("ddsar-0.5g").eval()
    stored = Preprocessing(input_size=320, mean=10.0, std=64.0, rgb=False, score_threshold=0.3, nms_threshold=0.5,
                           pre_nms_topk=100, max_detections=7)
    path = str(tmp_path / "m.pt")
    save_model(model, path, stored)
    det = Detector(path)
    assert det.preprocessing == stored and det.input_size == 320 and det.max_detections == 7
    img = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    x, _ = det.preprocess([img])
    np.testing.assert_allclose(x[0].numpy(), insightface_input(img, 320, 10.0, 64.0, False)[0], atol=1e-6)
    # overrides replace single values, the rest stays the file's
    assert Detector(path, input_size=640).preprocessing == Preprocessing(**{**stored.__dict__, "input_size": 640})
    with pytest.raises(ValueError, match="unknown keywords"):
        Detector(path, input_side=640)
    with pytest.raises(ValueError, match="std"):
        Detector(model, std=0.0)


def test_eval_and_asfd_minival_give_one_ap(tmp_path):
    # the same model on the same images: pyddsar eval's Hard AP (synthetic Hard = every face) and the
    # mini-validation AP of the ASFD searches, both through the Detector (they used to letterbox apart)
    data = str(tmp_path / "syn")
    write_dataset(data, n_train=0, n_val=6, seed=5, image_size=(300, 220))
    torch.manual_seed(0)
    model = build_detector("asfd-baseline", backbone="resnet18", channels=32, head_convs=1, base_width=16).eval()
    with torch.no_grad():  # scores spread around 0.5 (the 1 % face prior would detect nothing): a non-zero AP
        model.head.cls_out.reset_parameters()
    path = str(tmp_path / "asfd.pt")
    save_model(model, path)
    samples = FaceDataset.from_folder(data, split="val").samples
    assert not any(np.asarray(s.ignore).any() for s in samples)
    ap = minival_ap(model, samples, size=256)
    res = evaluate_model(weights=path, data=data, gt=os.path.join(data, "ground_truth"), input_size=256)
    assert ap == pytest.approx(res.ap["hard"], abs=1e-12)
    assert 0.0 < ap <= 1.0
