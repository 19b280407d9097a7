"""The training augmentation against a plain, step-by-step statement of SCRFD's transforms.

``ref_*`` below restate insightface's detection/scrfd/mmdet/datasets/pipelines/transforms.py
(RandomSquareCrop, Resize, RandomFlip, PhotoMetricDistortion, Normalize) and the order of
configs/scrfd/scrfd_2.5g.py, on a float32 image as SCRFD loads it, with numpy.random.Generator
draws in SCRFD's order. Written for clarity, not speed; ``reference_pipeline`` is also the baseline
of benchmarks/bench_augment.py. pyddsar's fast pipeline must equal it bit for bit for every seed.
"""

import os
import glob

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from pyddsar.data import FaceSample  # noqa: E402
from pyddsar.data.augment import (CROP_TRIES, DEFAULT_SCALES, FLIP_ORDER, TrainAugment, augment,  # noqa: E402
                                  collate, denormalise)

REPO = os.path.join(os.path.dirname(__file__), "..")
DATA = os.environ.get("PYDDSAR_DATA") or os.path.join(REPO, "..", "shared", "data")
PASCAL = sorted(glob.glob(os.path.join(DATA, "images", "pascal_faces", "*.jpg")))


# ------------------------------------------------------------------ SCRFD's steps, stated plainly
def ref_offset(rng, length, side):
    # numpy.random.randint(low, high): high excluded; no draw when the lengths are equal
    if length == side:
        return 0
    if length > side:
        return int(rng.integers(0, length - side))
    return int(rng.integers(length - side, 0))


def ref_random_square_crop(r, rng, crop_choice, clip_border):
    img, h, w = r["img"], r["img"].shape[0], r["img"].shape[1]
    gt = r["boxes"][~r["ignore"]]
    max_scale = max(crop_choice)
    scale_retry = 0
    while True:
        scale_retry += 1
        if scale_retry == 1 or max_scale > 1.0:
            scale = float(crop_choice[int(rng.integers(len(crop_choice)))])
        else:
            scale = scale * 1.2
        for _ in range(250):
            cw = max(1, int(scale * min(w, h)))
            ch = cw
            left = ref_offset(rng, w, cw)
            top = ref_offset(rng, h, ch)
            patch = np.array([left, top, left + cw, top + ch])

            def centre_inside(boxes):
                c = (boxes[:, :2] + boxes[:, 2:]) / 2
                return (c[:, 0] > patch[0]) & (c[:, 1] > patch[1]) & (c[:, 0] < patch[2]) & (c[:, 1] < patch[3])

            if r.get("searchable", True) and len(gt) and not centre_inside(gt).any():
                continue
            mask = centre_inside(r["boxes"])
            boxes = r["boxes"][mask].copy()
            if clip_border:
                boxes[:, 2:] = boxes[:, 2:].clip(max=patch[2:])
                boxes[:, :2] = boxes[:, :2].clip(min=patch[:2])
            boxes -= np.tile(patch[:2], 2)
            r["boxes"], r["ignore"] = boxes, r["ignore"][mask]
            if r["kps"] is not None:
                kps = r["kps"][mask].copy()
                if clip_border:
                    kps[:, :, :2] = kps[:, :, :2].clip(max=patch[2:])
                    kps[:, :, :2] = kps[:, :, :2].clip(min=patch[:2])
                kps[:, :, 0] -= patch[0]
                kps[:, :, 1] -= patch[1]
                r["kps"] = kps
            rimg = np.ones((ch, cw, 3), dtype=img.dtype) * 128
            src = [max(0, patch[0]), max(0, patch[1]), min(w, patch[2]), min(h, patch[3])]
            dst = [max(0, -patch[0]), max(0, -patch[1])]
            dst += [dst[0] + src[2] - src[0], dst[1] + src[3] - src[1]]
            rimg[dst[1]:dst[3], dst[0]:dst[2]] = img[src[1]:src[3], src[0]:src[2]]
            r["img"] = rimg
            return r


def ref_resize(r, size, clip_border):
    h, w = r["img"].shape[:2]
    r["img"] = cv2.resize(r["img"], (size, size), interpolation=cv2.INTER_LINEAR)  # mmcv 'bilinear'
    factor = np.array([size / w, size / h, size / w, size / h], dtype=np.float32)
    r["boxes"] = r["boxes"] * factor
    if clip_border:
        r["boxes"][:, 0::2] = np.clip(r["boxes"][:, 0::2], 0, size)
        r["boxes"][:, 1::2] = np.clip(r["boxes"][:, 1::2], 0, size)
    if r["kps"] is not None:
        kps = r["kps"].copy()
        kps[:, :, 0] *= factor[0]
        kps[:, :, 1] *= factor[1]
        if clip_border:
            kps[:, :, 0] = np.clip(kps[:, :, 0], 0, size)
            kps[:, :, 1] = np.clip(kps[:, :, 1], 0, size)
        r["kps"] = kps
    return r


def ref_random_flip(r, rng, flip_ratio):
    if rng.random() < flip_ratio:
        w = r["img"].shape[1]
        r["img"] = np.flip(r["img"], axis=1)
        b = r["boxes"].copy()
        b[:, 0] = w - r["boxes"][:, 2]
        b[:, 2] = w - r["boxes"][:, 0]
        r["boxes"] = b
        if r["kps"] is not None:
            k = r["kps"].copy()
            for idx, a in enumerate([1, 0, 2, 4, 3]):
                k[:, idx, :] = r["kps"][:, a, :]
            k[..., 0] = w - k[..., 0]
            r["kps"] = k
    return r


def ref_photometric(r, rng, brightness_delta=32, contrast_range=(0.5, 1.5), saturation_range=(0.5, 1.5),
                    hue_delta=18):
    img = r["img"].copy()
    if rng.integers(2):
        img += rng.uniform(-brightness_delta, brightness_delta)
    mode = rng.integers(2)
    if mode == 1:
        if rng.integers(2):
            img *= rng.uniform(*contrast_range)
    img = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)  # mmcv.bgr2hsv on SCRFD's BGR image: the same numbers
    if rng.integers(2):
        img[..., 1] *= rng.uniform(*saturation_range)
    if rng.integers(2):
        img[..., 0] += rng.uniform(-hue_delta, hue_delta)
        img[..., 0][img[..., 0] > 360] -= 360
        img[..., 0][img[..., 0] < 0] += 360
    img = cv2.cvtColor(img, cv2.COLOR_HSV2RGB)
    if mode == 0:
        if rng.integers(2):
            img *= rng.uniform(*contrast_range)
    if rng.integers(2):
        img = img[..., rng.permutation(3)]
    r["img"] = img
    return r


def ref_normalise(r):
    mean = np.array([127.5, 127.5, 127.5], np.float32)
    stdinv = 1 / np.array([128.0, 128.0, 128.0], np.float32)  # mmcv.imnormalize multiplies by 1 / std
    r["img"] = np.ascontiguousarray(((r["img"] - mean) * stdinv).transpose(2, 0, 1))
    return r


def reference_pipeline(image, boxes, landmarks, ignore, rng, size=640, scales=DEFAULT_SCALES, flip_prob=0.5,
                       photometric=True, clip_border=False, searchable=True):
    """SCRFD's train pipeline on an RGB uint8 image; NaN landmarks are SCRFD's weight-0 points.
    ``searchable=False``: no face can be held by any crop, so the first drawn crop is taken."""
    n = len(boxes)
    r = dict(img=np.asarray(image).astype(np.float32), boxes=np.asarray(boxes, np.float32).reshape(n, 4),
             kps=None if landmarks is None else np.asarray(landmarks, np.float32).reshape(n, 5, 2),
             ignore=np.zeros(n, bool) if ignore is None else np.asarray(ignore, bool), searchable=searchable)
    r = ref_random_square_crop(r, rng, scales, clip_border)
    r = ref_resize(r, size, clip_border)
    r = ref_random_flip(r, rng, flip_prob)
    if photometric:
        r = ref_photometric(r, rng)
    r = ref_normalise(r)
    return r["img"], r["boxes"], r["kps"], r["ignore"]


# ------------------------------------------------------------------------------------ scenes
def scene(rng, w=None, h=None, n=None):
    """A random image with random faces: some ignored, some without landmarks (NaN), some near or
    over the border, landmarks partly outside their box."""
    w = int(rng.integers(40, 900)) if w is None else w
    h = int(rng.integers(40, 900)) if h is None else h
    n = int(rng.integers(0, 12)) if n is None else n
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[: h // 3] = np.clip(img[: h // 3].astype(int) // 4 + 200, 0, 255)  # bright: brightness exceeds 255
    c = rng.uniform(0.02, 0.98, (n, 2)) * [w, h]
    wh = np.exp(rng.uniform(np.log(4), np.log(max(8, min(w, h) * 0.8)), (n, 1))) * rng.uniform(0.7, 1.3, (n, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)
    lms = (c[:, None] + rng.uniform(-0.6, 0.6, (n, 5, 2)) * wh[:, None]).astype(np.float32)
    lms[rng.random(n) < 0.3] = np.nan
    ignore = rng.random(n) < 0.2
    return img, boxes, lms, ignore


def assert_same(a, b):
    for x, y in zip(a, b):
        if x is None or y is None:
            assert x is None and y is None
            continue
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)  # NaN equals NaN here, nothing else may differ


# ------------------------------------------------------------------------------ whole pipeline
@pytest.mark.parametrize("seed", range(40))
def test_pipeline_equals_reference_bit_for_bit(seed):
    rng = np.random.default_rng(1000 + seed)
    img, boxes, lms, ignore = scene(rng)
    size = [640, 320, 96][seed % 3]
    clip = seed % 4 == 1
    scales = DEFAULT_SCALES if seed % 5 else (0.3, 0.5, 0.8)  # max <= 1: SCRFD grows the scale by 1.2
    kw = dict(size=size, scales=scales, clip_border=clip)
    got = augment(img, boxes, lms, ignore, np.random.default_rng(seed), **kw)
    want = reference_pipeline(img, boxes, lms, ignore, np.random.default_rng(seed), **kw)
    assert_same(got, want)


@pytest.mark.skipif(not PASCAL, reason=f"real photos not found under {DATA}/images/pascal_faces (set PYDDSAR_DATA)")
def test_pipeline_equals_reference_on_real_photos():
    rng = np.random.default_rng(7)
    for k, path in enumerate(PASCAL):
        img = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        _, boxes, lms, ignore = scene(rng, img.shape[1], img.shape[0], 6)
        for seed in range(3):
            got = augment(img, boxes, lms, ignore, np.random.default_rng([k, seed]))
            want = reference_pipeline(img, boxes, lms, ignore, np.random.default_rng([k, seed]))
            assert_same(got, want)


def test_train_augment_and_options_equal_reference():
    rng = np.random.default_rng(3)
    img, boxes, lms, ignore = scene(rng, 500, 375, 8)
    t = TrainAugment(size=160, scales=(0.6, 1.0, 1.8), flip_prob=1.0, clip_border=True)
    got = t(img, FaceSample("x", boxes, lms, ignore), np.random.default_rng(5))
    want = reference_pipeline(img, boxes, lms, ignore, np.random.default_rng(5), size=160, scales=(0.6, 1.0, 1.8),
                              flip_prob=1.0, clip_border=True)
    assert_same(got, want)
    got = augment(img, boxes, None, None, np.random.default_rng(6), size=160, photometric=False, flip_prob=0.0)
    want = reference_pipeline(img, boxes, None, None, np.random.default_rng(6), size=160, photometric=False,
                              flip_prob=0.0)
    assert_same(got, want)


# ------------------------------------------------------------------------------------ each step
def test_crop_offsets_follow_numpy_randint_bounds():
    # SCRFD's randint(0, w - cw) never returns w - cw; randint(w - cw, 0) never returns 0
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, :, 0] = np.arange(60)  # column index; channel 1 is 0 inside the image, 128 in the padding
    lefts = {0.5: set(), 2.0: set()}
    for seed in range(600):
        for scale, side in ((0.5, 20), (2.0, 80)):
            out, *_ = augment(img, np.zeros((0, 4)), None, None, np.random.default_rng(seed), size=side,
                              scales=[scale], photometric=False, flip_prob=0.0, normalise=False)
            row = out[np.nonzero((out[:, :, 1] == 0).any(axis=1))[0][0]]  # a row inside the image
            inside = np.nonzero(row[:, 1] == 0)[0]
            lefts[scale].add(int(row[0, 0]) if inside[0] == 0 else -int(inside[0]))
    assert lefts[0.5] == set(range(0, 60 - 20))  # 0..39, never 40
    assert lefts[2.0] == set(range(60 - 80, 0))  # -20..-1, never 0


def test_crop_always_holds_a_face_when_one_can_be_held():
    # one small face in a corner: the old pipeline gave up after 50 draws; SCRFD never does
    img = np.zeros((480, 640, 3), np.uint8)
    box = np.array([[2, 2, 10, 10], [300, 200, 320, 220]], np.float32)
    ignore = np.array([False, True])  # the ignored face does not count
    for seed in range(200):
        _, b, _, ig = augment(img, box, None, ignore, np.random.default_rng(seed), size=64, scales=[0.3],
                              photometric=False, flip_prob=0.0)
        assert (~ig).sum() == 1
        if seed < 10:  # thousands of positions over many scale draws: the same ones as SCRFD's loop
            kw = dict(size=64, scales=[0.3], photometric=False, flip_prob=0.0)
            assert_same(augment(img, box, None, ignore, np.random.default_rng(seed), **kw),
                        reference_pipeline(img, box, None, ignore, np.random.default_rng(seed), **kw))


def test_crop_without_holdable_faces_takes_the_first_draw():
    img = np.zeros((100, 100, 3), np.uint8)
    far = np.array([[-500, -500, -400, -400]], np.float32)  # no crop can hold this centre
    for seed in range(5):
        got = augment(img, far, None, None, np.random.default_rng(seed), size=50)
        want = reference_pipeline(img, far, None, None, np.random.default_rng(seed), size=50, searchable=False)
        assert_same(got, want)
        assert len(got[1]) == 0
    got = augment(img, far, None, np.array([True]), np.random.default_rng(0), size=50)  # only ignored faces
    assert_same(got, reference_pipeline(img, far, None, np.array([True]), np.random.default_rng(0), size=50))


def test_crop_pads_with_128_and_keeps_centre_faces():
    rng = np.random.default_rng(11)
    for seed in range(30):
        img, boxes, lms, ignore = scene(rng, 200, 120, 10)
        out, b, _, ig = augment(img, boxes, lms, ignore, np.random.default_rng(seed), size=400, scales=[2.0],
                                photometric=False, flip_prob=0.0, normalise=False)
        # crop 240 px on a 200 x 120 image: left in [-40, -1], top in [-120, -1]; rows above the image are 128
        r2 = np.random.default_rng(seed)
        r2.integers(1)  # the scale draw
        want_faces = None
        for _ in range(CROP_TRIES):
            left, top = int(r2.integers(-40, 0)), int(r2.integers(-120, 0))
            c = (boxes[:, :2] + boxes[:, 2:]) / 2
            inside = (c[:, 0] > left) & (c[:, 1] > top) & (c[:, 0] < left + 240) & (c[:, 1] < top + 240)
            if not (~ignore).any() or (inside & ~ignore).any():
                want_faces = inside
                break
        assert want_faces is not None
        assert len(b) == want_faces.sum() and (ig == ignore[want_faces]).all()
        f = np.float32(400 / 240)
        np.testing.assert_array_equal(b, (boxes[want_faces] - np.float32([left, top, left, top])) * f)
        pad_rows = int(-top * 400 / 240) - 2
        if pad_rows > 0:
            assert (out[:pad_rows] == 128).all()


def test_resize_is_bilinear_on_the_float_image():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    out, *_ = augment(img, np.zeros((0, 4)), None, None, np.random.default_rng(0), size=128, scales=[1.0],
                      photometric=False, flip_prob=0.0)
    want = cv2.resize(img.astype(np.float32), (128, 128), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out, ((want - np.float32(127.5)) * np.float32(1 / 128)).transpose(2, 0, 1))
    area = cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert not np.array_equal(want, area)  # the old INTER_AREA downscale is a different image


def test_boxes_and_landmarks_leave_the_image_unless_clip_border():
    img = np.zeros((200, 200, 3), np.uint8)
    box = np.array([[-30, 60, 50, 140]], np.float32)  # centre (10, 100): crosses the left border
    lm = np.array([[[-20, 80], [30, 80], [5, 100], [-10, 120], [20, 120]]], np.float32)
    kw = dict(size=200, scales=[1.0], photometric=False, flip_prob=0.0)
    _, b, l, _ = augment(img, box, lm, None, np.random.default_rng(0), **kw)
    np.testing.assert_array_equal(b, box)
    np.testing.assert_array_equal(l, lm)
    _, b, l, _ = augment(img, box, lm, None, np.random.default_rng(0), clip_border=True, **kw)
    np.testing.assert_array_equal(b, [[0, 60, 50, 140]])
    np.testing.assert_array_equal(l[0, :, 0], [0, 30, 5, 0, 20])


def test_flip_mirrors_and_swaps_landmarks():
    img = np.zeros((200, 200, 3), np.uint8)
    boxes = np.array([[40, 40, 120, 140]], np.float32)
    lms = np.array([[[60, 70], [100, 70], [80, 95], [65, 120], [95, 120]]], np.float32)
    kw = dict(size=200, scales=[1.0], photometric=False, normalise=False)
    _, b0, l0, _ = augment(img, boxes, lms, None, np.random.default_rng(0), flip_prob=0.0, **kw)
    _, b1, l1, _ = augment(img, boxes, lms, None, np.random.default_rng(0), flip_prob=1.0, **kw)
    np.testing.assert_allclose(b0, boxes)
    np.testing.assert_allclose(b1, [[80, 40, 160, 140]])
    for new, old in enumerate(FLIP_ORDER):  # the new left eye (index 0) is the mirrored old right eye
        np.testing.assert_allclose(l1[0, new], [200 - l0[0, old, 0], l0[0, old, 1]])
    assert l1[0, 0, 0] < l1[0, 1, 0] and l1[0, 3, 0] < l1[0, 4, 0]  # left stays left
    strip = np.zeros((50, 50, 3), np.uint8)
    strip[:, :10] = 255
    out, *_ = augment(strip, np.zeros((0, 4)), None, None, np.random.default_rng(0), size=50, scales=[1.0],
                      photometric=False, flip_prob=1.0, normalise=False)
    assert (out[:, -10:] == 255).all() and (out[:, :40] == 0).all()


def test_landmark_validity_survives_crops_and_flips():
    # the old pipeline marked a point missing once it became negative, so a crop or a flip changed
    # which faces had landmarks; now a face keeps real coordinates wherever they fall
    rng = np.random.default_rng(5)
    outside = 0
    for seed in range(80):
        n = 8
        img = np.zeros((300, 400, 3), np.uint8)
        c = rng.uniform([20, 20], [380, 280], (n, 2))
        aspect = 0.6 + 0.1 * rng.permutation(n)  # a face's height / width survives crops and flips
        wd = rng.uniform(20, 60, n)
        half = np.stack([wd, wd * aspect], 1) / 2
        boxes = np.concatenate([c - half, c + half], 1).astype(np.float32)
        lms = (c[:, None] + rng.uniform(-1.5, 1.5, (n, 5, 2)) * half[:, None]).astype(np.float32)  # some outside
        lms[rng.random(n) < 0.4] = np.nan
        _, b, l, _ = augment(img, boxes, lms, None, np.random.default_rng(seed), size=128, photometric=False)
        for k in range(len(b)):
            i = int(np.argmin(np.abs(aspect - (b[k, 3] - b[k, 1]) / (b[k, 2] - b[k, 0]))))
            assert np.array_equal(np.isnan(l[k]), np.isnan(lms[i]))
            outside += int(np.isfinite(l[k]).all() and ((l[k] < 0) | (l[k] > 128)).any())
    assert outside > 0  # points outside the image kept their coordinates


def test_photometric_matches_scrfd_step():
    rng = np.random.default_rng(9)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    img[:20] = 250
    beyond = 0
    for seed in range(60):
        got, *_ = augment(img, np.zeros((0, 4)), None, None, np.random.default_rng(seed), size=64, scales=[1.0],
                          flip_prob=0.0)
        r = np.random.default_rng(seed)
        r.integers(1)  # the scale draw; the crop is the image, so no offset is drawn
        r.random()  # the flip draw
        want = ref_normalise(ref_photometric(dict(img=img.astype(np.float32)), r))["img"]
        np.testing.assert_array_equal(got, want)
        beyond += int(got.max() > 127.5 / 128 + 1e-3 or got.min() < -127.5 / 128 - 1e-3)
    assert beyond > 0  # values beyond 0..255 are not clipped, as in SCRFD


def test_channel_swap_happens():
    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 0] = 200  # pure red
    orders = set()
    for seed in range(80):
        o, *_ = augment(img, np.zeros((0, 4)), None, None, np.random.default_rng(seed), size=32, scales=[1.0],
                        flip_prob=0.0)
        orders.add(int(np.argmax(o[:, 16, 16])))
    assert orders == {0, 1, 2}  # red moved to every channel: SCRFD's random channel permutation


def test_normalisation_and_denormalise():
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    o, *_ = augment(img, np.zeros((0, 4)), None, None, np.random.default_rng(0), size=32, scales=[1.0],
                    photometric=False, flip_prob=0.0)
    np.testing.assert_array_equal(o, (img.astype(np.float32).transpose(2, 0, 1) - 127.5) / 128)
    np.testing.assert_array_equal(denormalise(o), img)


def test_deterministic_for_a_seed():
    rng = np.random.default_rng(4)
    img, boxes, lms, ign = scene(rng, 300, 200, 6)
    a = augment(img, boxes, lms, ign, np.random.default_rng(8), size=160)
    b = augment(img, boxes, lms, ign, np.random.default_rng(8), size=160)
    assert_same(a, b)
    assert not np.array_equal(a[0], augment(img, boxes, lms, ign, np.random.default_rng(9), size=160)[0])


# ------------------------------------------------------------------------------ bad input, collate
@pytest.mark.parametrize("kwargs,match", [
    (dict(image=np.zeros((0, 10, 3), np.uint8)), "RGB image"),
    (dict(image=np.zeros((10, 10), np.uint8)), "RGB image"),
    (dict(image=np.zeros((10, 10, 3), np.float32)), "uint8"),
    (dict(boxes=np.zeros((2, 3))), r"boxes must be \[N, 4\]"),
    (dict(boxes=np.array([[0, 0, np.inf, 4]])), "boxes must be finite"),
    (dict(landmarks=np.zeros((2, 5, 2))), r"landmarks must be \[1, 5, 2\]"),
    (dict(landmarks=np.full((1, 5, 2), np.inf)), "not infinite"),
    (dict(ignore=np.zeros(3, bool)), r"ignore must be \[1\]"),
    (dict(size=0), "size must be a positive integer"),
    (dict(scales=[]), "scales must not be empty"),
    (dict(scales=[0.5, -1]), "positive and finite"),
    (dict(flip_prob=1.5), "flip_prob"),
    (dict(contrast_range=(1.5, 0.5)), "contrast_range"),
    (dict(hue_delta=-1), "hue_delta"),
])
def test_bad_input_rejected(kwargs, match):
    args = dict(image=np.zeros((10, 10, 3), np.uint8), boxes=np.array([[1, 1, 5, 5]], np.float32))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        augment(**args)


def test_transform_and_collate():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    t = TrainAugment(size=96)
    batch = []
    for i in range(3):
        img, boxes, lms, ign = scene(rng, 200, 150, 5)
        batch.append(t(img, FaceSample("x", boxes, lms if i else None, ign), np.random.default_rng(i)))
    imgs, boxes, lms, ign = collate(batch)
    assert tuple(imgs.shape) == (3, 3, 96, 96) and imgs.dtype == torch.float32
    assert len(boxes) == 3 and boxes[0].shape[1] == 4 and lms[0] is None and lms[1].shape[1:] == (5, 2)
    assert ign[2].dtype == torch.bool
    assert torch.equal(torch.isnan(lms[1]), torch.from_numpy(np.isnan(batch[1][2])))
    with pytest.raises(ValueError, match="at least one"):
        collate([])
    with pytest.raises(ValueError, match="one shape"):
        collate([batch[0], (np.zeros((3, 8, 8), np.float32),) + batch[1][1:]])


def test_collate_in_a_dataloader_worker_equals_in_process(tmp_path):
    torch = pytest.importorskip("torch")
    from pyddsar.data import FaceDataset
    from pyddsar.data.synthetic import write_dataset

    write_dataset(str(tmp_path), 6, 0, seed=1, image_size=(160, 120))
    ds = FaceDataset.from_folder(str(tmp_path), "train", transform=TrainAugment(size=64))
    got = list(torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1, collate_fn=collate))
    want = [collate([ds[i] for i in range(k, k + 3)]) for k in (0, 3)]
    for g, w in zip(got, want):
        assert torch.equal(g[0], w[0])
        for part in (1, 2, 3):
            for a, b in zip(g[part], w[part]):
                assert torch.equal(torch.nan_to_num(a, nan=-7.0), torch.nan_to_num(b, nan=-7.0))
