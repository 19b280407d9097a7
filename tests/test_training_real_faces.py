"""pyddsar's training is consistent with a real pretrained SCRFD: on real photos pseudo-labelled by the
pretrained SCRFD-2.5G, (a) its training loss is far below that of the same architecture at random
initialisation, (b) a few dozen fine-tuning steps keep its AP against the pseudo-labels of held-out
photos, and (c) the same fine-tuning with a deliberately wrong target encoding (anchor centres shifted
by half a stride) does not, so (b) can fail."""

import glob
import os
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from pyddsar.evaluation import WiderGroundTruth, evaluate  # noqa: E402
from pyddsar.inference import Detector  # noqa: E402
from pyddsar.models import build_detector, load_scrfd_onnx  # noqa: E402
from pyddsar.training.targets import AnchorSet  # noqa: E402
from pyddsar.training.trainer import TrainConfig, Trainer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("PYDDSAR_DATA") or os.path.join(REPO, "..", "shared", "data")
ONNX = os.path.join(DATA, "models", "scrfd_2.5g_bnkps.onnx")
PHOTOS = sorted(glob.glob(os.path.join(DATA, "images", "pascal_faces", "*.jpg"))) + \
    [os.path.join(DATA, "images", n) for n in ("crowd_cheering.jpg", "portrait_newton.png")]
pytestmark = pytest.mark.skipif(not (os.path.isfile(ONNX) and all(map(os.path.isfile, PHOTOS))),
                                reason=f"the pretrained SCRFD-2.5G and the photos of {DATA} are absent (set PYDDSAR_DATA)")

TRAIN, HELD_OUT = PHOTOS[:6], PHOTOS[6:]
SIZE, STEPS, LR = 320, 20, 0.001  # measured: right encoding AP 0.998, shifted centres 0.81


def pseudo_labels(detector, paths, threshold=0.5):
    out = []
    for p in paths:
        d = detector.detect(p)
        keep = d.scores >= threshold
        out.append((d.boxes[keep], d.landmarks[keep]))
    return out


def write_folder(root, paths, labels):
    """A RetinaFace-layout training folder (root/train/images + root/train/label.txt)."""
    lines = []
    for p, (boxes, lms) in zip(paths, labels):
        img = cv2.imread(p)
        name = os.path.splitext(os.path.basename(p))[0]
        os.makedirs(os.path.join(root, "train", "images", "photos"), exist_ok=True)
        cv2.imwrite(os.path.join(root, "train", "images", "photos", name + ".jpg"), img)
        lines.append(f"# photos/{name}.jpg {img.shape[1]} {img.shape[0]}")
        for (x1, y1, x2, y2), pts in zip(boxes, lms):
            kp = " ".join(f"{x:.2f} {y:.2f} 0.0" for x, y in pts)
            lines.append(f"{x1:.2f} {y1:.2f} {x2 - x1:.2f} {y2 - y1:.2f} {kp} 1.0")
    with open(os.path.join(root, "train", "label.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def ap_against(model, paths, labels):
    """WIDER AP (IoU 0.5) of `model` on `paths` against the pseudo-label boxes, every face counted."""
    det = Detector(model)
    preds = {}
    for p in paths:
        d = det.detect(p)
        b = d.boxes.astype(np.float64)
        preds[f"photos/{os.path.splitext(os.path.basename(p))[0]}"] = np.hstack([b[:, :2], b[:, 2:] - b[:, :2], d.scores[:, None]])
    boxes = [np.hstack([b[:, :2], b[:, 2:] - b[:, :2]]).astype(np.float64) for b, _ in labels]
    keep = [np.arange(len(b)) for b in boxes]
    gt = WiderGroundTruth(["photos"] * len(paths), [os.path.splitext(os.path.basename(p))[0] for p in paths], boxes,
                          {s: keep for s in ("easy", "medium", "hard")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(evaluate(preds, gt).ap["hard"])


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    teacher = Detector(load_scrfd_onnx(ONNX))
    train_labels, held_labels = pseudo_labels(teacher, TRAIN), pseudo_labels(teacher, HELD_OUT)
    assert sum(len(b) for b, _ in train_labels) >= 20 and sum(len(b) for b, _ in held_labels) >= 20
    root = str(tmp_path_factory.mktemp("photos"))
    write_folder(root, TRAIN, train_labels)
    return root, held_labels


def trainer(root, out, **kw):
    cfg = TrainConfig(data=root, out=str(out), init=ONNX, epochs=100, batch=3, size=SIZE, lr=LR, warmup_iters=0,
                      max_steps=STEPS, log_every=STEPS, **kw)
    return Trainer(cfg)


def shifted_centres(anchors: AnchorSet) -> AnchorSet:
    """The wrong encoding: targets measured from anchor centres moved by half a stride."""
    return AnchorSet(anchors.boxes, anchors.centers + anchors.strides[:, None] / 2, anchors.strides, anchors.per_level)


def test_pretrained_loss_is_far_below_random_initialisation(photos, tmp_path):
    root, _ = photos
    t = trainer(root, tmp_path / "a")
    batch = next(iter(t._batches()))
    images = batch[0].contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        pretrained = float(t.recipe.loss(t.model(images), *batch[1:]).total)
        torch.manual_seed(0)
        random_init = build_detector(t.model.config).to(memory_format=torch.channels_last).train()
        random = float(t.recipe.loss(random_init(images), *batch[1:]).total)
    assert pretrained < 0.25 * random, (pretrained, random)


def test_fine_tuning_keeps_the_ap_and_a_wrong_encoding_loses_it(photos, tmp_path):
    root, held_labels = photos
    start = ap_against(load_scrfd_onnx(ONNX), HELD_OUT, held_labels)
    assert start > 0.9
    right = trainer(root, tmp_path / "right")
    right.fit()
    kept = ap_against(right.model, HELD_OUT, held_labels)
    wrong = trainer(root, tmp_path / "wrong")
    wrong.recipe.anchors = shifted_centres(wrong.recipe.anchors)  # the targets are the recipe's
    wrong.fit()
    lost = ap_against(wrong.model, HELD_OUT, held_labels)
    assert kept >= 0.95 * start, (start, kept)
    assert lost < 0.95 * start, (start, lost)
