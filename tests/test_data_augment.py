import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from pyddsar.data.augment import FLIP_ORDER, TrainAugment, augment, collate, denormalise  # noqa: E402
from pyddsar.data import FaceSample  # noqa: E402


def _scene(rng, n=6, w=400, h=300):
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    xy = rng.uniform(0, [w - 60, h - 60], (n, 2))
    wh = rng.uniform(10, 60, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    lms = np.stack([c + [-5, -5], c + [5, -5], c, c + [-4, 6], c + [4, 6]], 1).astype(np.float32)
    lms[0] = -1
    return img, boxes, lms, np.zeros(n, bool)


@pytest.mark.parametrize("seed", range(6))
def test_shapes_and_boxes_inside(seed):
    rng = np.random.default_rng(seed)
    img, boxes, lms, ign = _scene(rng)
    out, b, l, ig = augment(img, boxes, lms, ign, np.random.default_rng(seed), size=320)
    assert out.shape == (3, 320, 320) and out.dtype == np.float32
    assert out.min() >= -127.5 / 128 - 1e-6 and out.max() <= 127.5 / 128 + 1e-6
    assert b.dtype == np.float32 and b.shape[1] == 4 and l.shape == (len(b), 5, 2) and ig.shape == (len(b),)
    assert (b >= 0).all() and (b <= 320).all() and (b[:, 2] >= b[:, 0]).all()


def test_centre_rule_and_padding_without_flip_or_colour():
    img = np.full((100, 200, 3), 50, np.uint8)
    boxes = np.array([[10, 10, 30, 30], [150, 40, 190, 80], [90, 40, 130, 90]], np.float32)
    for seed in range(30):
        rng = np.random.default_rng(seed)
        out, b, _, _ = augment(img, boxes, None, None, rng, size=100, scales=[0.5, 1.5],
                               photometric=False, flip_prob=0.0, normalise=False)
        # recover the crop from the same draws: replay the generator
        r2 = np.random.default_rng(seed)
        side = int(float(r2.choice([0.5, 1.5])) * 100)
        x0 = int(r2.integers(0, 200 - side + 1))
        y0 = int(r2.integers(0, 100 - side + 1)) if side <= 100 else int(r2.integers(100 - side, 1))
        c = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = (c[:, 0] > x0) & (c[:, 0] < x0 + side) & (c[:, 1] > y0) & (c[:, 1] < y0 + side)
        if not inside.any():
            continue  # the crop was redrawn; covered by the other seeds
        assert len(b) == inside.sum()
        exp = np.clip(boxes[inside] - [x0, y0, x0, y0], 0, side) * (100 / side)
        np.testing.assert_allclose(b, exp, atol=1e-4)
        if side > 100:  # padded rows are 128
            top = int(round(-y0 * 100 / side))
            if top >= 2:
                assert (out[0, :, :] == 128).all()


def test_flip_mirrors_and_swaps_landmarks():
    img = np.zeros((200, 200, 3), np.uint8)
    boxes = np.array([[40, 40, 120, 140]], np.float32)
    lms = np.array([[[60, 70], [100, 70], [80, 95], [65, 120], [95, 120]]], np.float32)
    kw = dict(size=200, scales=[1.0], photometric=False, normalise=False)
    _, b0, l0, _ = augment(img, boxes, lms, None, np.random.default_rng(0), flip_prob=0.0, **kw)
    _, b1, l1, _ = augment(img, boxes, lms, None, np.random.default_rng(0), flip_prob=1.0, **kw)
    np.testing.assert_allclose(b0, boxes)
    np.testing.assert_allclose(b1, [[80, 40, 160, 140]])
    # the new left eye (index 0) is the mirrored old right eye, and so on
    for new, old in enumerate(FLIP_ORDER):
        np.testing.assert_allclose(l1[0, new], [200 - l0[0, old, 0], l0[0, old, 1]])
    assert l1[0, 0, 0] < l1[0, 1, 0] and l1[0, 3, 0] < l1[0, 4, 0]  # left stays left


def test_flip_image_content():
    img = np.zeros((50, 50, 3), np.uint8)
    img[:, :10] = 255
    out, *_ = augment(img, np.zeros((0, 4)), None, None, np.random.default_rng(0), size=50, scales=[1.0],
                      photometric=False, flip_prob=1.0, normalise=False)
    assert (out[:, -10:] == 255).all() and (out[:, :40] == 0).all()


def test_missing_landmarks_stay_missing_and_determinism():
    rng = np.random.default_rng(4)
    img, boxes, lms, ign = _scene(rng)
    for seed in range(8):
        a = augment(img, boxes, lms, ign, np.random.default_rng(seed), size=160)
        b = augment(img, boxes, lms, ign, np.random.default_rng(seed), size=160)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        lm = a[2]
        assert ((lm == -1).all(axis=(1, 2)) | (lm != -1).any(axis=(1, 2))).all()
    outs = [augment(img, boxes, lms, ign, np.random.default_rng(s), size=160)[0] for s in (0, 1)]
    assert not np.array_equal(outs[0], outs[1])


def test_photometric_changes_colours_only():
    img = np.full((64, 64, 3), (200, 80, 40), np.uint8)
    vals = set()
    for s in range(10):
        o, *_ = augment(img, np.zeros((0, 4)), None, None, np.random.default_rng(s), size=64, scales=[1.0],
                        flip_prob=0.0, normalise=False)
        assert o.shape == (64, 64, 3) and o.dtype == np.uint8
        vals.add(tuple(o[32, 32]))
    assert len(vals) > 3


def test_normalisation_and_denormalise():
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    o, *_ = augment(img, np.zeros((0, 4)), None, None, np.random.default_rng(0), size=32, scales=[1.0],
                    photometric=False, flip_prob=0.0)
    np.testing.assert_allclose(o, (img.astype(np.float32).transpose(2, 0, 1) - 127.5) / 128)
    np.testing.assert_array_equal(denormalise(o), img)


def test_bad_images_rejected():
    with pytest.raises(ValueError, match="RGB image"):
        augment(np.zeros((0, 10, 3), np.uint8), np.zeros((0, 4)))
    with pytest.raises(ValueError, match="RGB image"):
        augment(np.zeros((10, 10), np.uint8), np.zeros((0, 4)))


def test_transform_and_collate():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    t = TrainAugment(size=96)
    batch = []
    for i in range(3):
        img, boxes, lms, ign = _scene(rng)
        batch.append(t(img, FaceSample("x", boxes, lms if i else None, ign), np.random.default_rng(i)))
    imgs, boxes, lms, ign = collate(batch)
    assert tuple(imgs.shape) == (3, 3, 96, 96) and imgs.dtype == torch.float32
    assert len(boxes) == 3 and boxes[0].shape[1] == 4 and lms[0] is None and lms[1].shape[1:] == (5, 2)
    assert ign[2].dtype == torch.bool
