"""Benchmarks of the training augmentation (pytest-benchmark): `python -m pytest benchmarks/bench_augment.py`.

One round = the same 48 synthetic 640 x 480 photos (`write_dataset`) with the same seeds, output
640 x 640, OpenCV on one thread (the figure per loading core; divide by 48 for one image): JPEG
decoding alone, pyddsar's pipeline, the step-by-step statement of SCRFD's transforms in
tests/test_data_augment.py (the same output, written for clarity), decoding + augmenting through
`FaceDataset`; then a DataLoader with 2 workers (batches of 8, start-up included).

`PYDDSAR_AUGMENT_BEFORE=/path/augment.py` also times an older `augment` module, e.g. the one before
the SCRFD fixes: `git show 6a3500e:pyddsar/data/augment.py > /tmp/augment_before.py`. Figures:
docs/benchmarks.md.
"""

import importlib.util
import os
import sys

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from pyddsar.data import FaceDataset  # noqa: E402
from pyddsar.data.augment import TrainAugment, augment, collate  # noqa: E402
from pyddsar.data.synthetic import write_dataset  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from test_data_augment import reference_pipeline  # noqa: E402

SIZE = 640
N_IMAGES = 48


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("augment_data")
    write_dataset(str(out), N_IMAGES, 0, seed=0, image_size=(640, 480))
    ds = FaceDataset.from_folder(str(out), "train")
    return str(out), ds, [ds.load_image(i) for i in range(len(ds))]


@pytest.fixture(autouse=True)
def one_thread():
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(before)


def _all_images(ds, images, fn):
    def run():
        for k, s in enumerate(ds.samples):
            fn(images[k], s.boxes, s.landmarks, s.ignore, np.random.default_rng([0, k]))

    return run


def test_decode(benchmark, data):
    _, ds, _ = data
    benchmark.pedantic(lambda: [ds.load_image(k) for k in range(len(ds))], rounds=10, iterations=1)


def test_pipeline(benchmark, data):
    _, ds, images = data
    benchmark.pedantic(_all_images(ds, images, lambda *a: augment(*a, size=SIZE)), rounds=10, iterations=1)


def test_reference_statement(benchmark, data):
    _, ds, images = data
    benchmark.pedantic(_all_images(ds, images, lambda *a: reference_pipeline(*a, size=SIZE)), rounds=10, iterations=1)


@pytest.mark.skipif(not os.environ.get("PYDDSAR_AUGMENT_BEFORE"), reason="set PYDDSAR_AUGMENT_BEFORE=/path/augment.py")
def test_pipeline_before(benchmark, data):
    spec = importlib.util.spec_from_file_location("augment_before", os.environ["PYDDSAR_AUGMENT_BEFORE"])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _, ds, images = data
    benchmark.pedantic(_all_images(ds, images, lambda *a: mod.augment(*a, size=SIZE)), rounds=10, iterations=1)


def test_dataset_items(benchmark, data):
    root, _, _ = data
    ds = FaceDataset.from_folder(root, "train", transform=TrainAugment(size=SIZE))
    benchmark.pedantic(lambda: [ds[k] for k in range(len(ds))], rounds=10, iterations=1)


def test_dataloader_two_workers(benchmark, data):
    """All images through a DataLoader with 2 worker processes, batches of 8 (includes start-up)."""
    torch = pytest.importorskip("torch")
    root, _, _ = data
    ds = FaceDataset.from_folder(root, "train", transform=TrainAugment(size=SIZE))

    def epoch():
        loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, collate_fn=collate)
        return sum(len(b[0]) for b in loader)

    assert benchmark.pedantic(epoch, rounds=3, iterations=1) == len(ds)
