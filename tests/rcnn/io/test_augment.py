"""Training crops, colour jitter and the input transform of RetinaFace (``rcnn.io.augment``)."""
import cv2
import numpy as np
import pytest

from rcnn.io.augment import (CROP_RETRIES, brightness_aug, color_aug, contrast_aug, get_crop_image1, load_image,
                             saturation_aug, transform)
from rcnn.io.rpn import get_crop_batch
from support import asymmetric_image, make_cfg, oriented_file, random_image, write_image


def face_entry(path, height, width, boxes, landmarks=None, flipped=False):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if landmarks is None:
        landmarks = np.full((len(boxes), 5, 3), -1, np.float32)
    return {'image': path, 'height': height, 'width': width, 'boxes': boxes,
            'landmarks': np.asarray(landmarks, np.float32), 'gt_classes': np.ones(len(boxes), np.int32),
            'flipped': flipped}


def test_transform_is_rgb_planes_with_bgr_ordered_means_and_stds():
    im = np.random.default_rng(0).uniform(0, 255, (5, 7, 3)).astype(np.float32)
    means, stds, scale = np.array([10.0, 20.0, 30.0]), np.array([2.0, 3.0, 4.0]), 0.5
    tensor = transform(im, means, stds, scale)
    assert tensor.shape == (1, 3, 5, 7) and tensor.dtype == np.float32
    for i in range(3):
        expected = (im[:, :, 2 - i] / scale - means[2 - i]) / stds[2 - i]
        np.testing.assert_allclose(tensor[0, i], expected, rtol=1e-6)
    # The mnet/resnet presets feed raw 0..255 RGB.
    raw = transform(im.astype(np.uint8), np.zeros(3), np.ones(3), 1.0)
    np.testing.assert_array_equal(raw[0], im.astype(np.uint8)[:, :, ::-1].transpose(2, 0, 1))


def test_color_mode_1_is_brightness_only():
    im = np.random.default_rng(1).uniform(0, 255, (8, 8, 3)).astype(np.float32)
    out = color_aug(im.copy(), 0.125, 1, np.random.default_rng(5))
    alpha = 1.0 + np.random.default_rng(5).uniform(-0.125, 0.125)
    np.testing.assert_allclose(out, im * np.float32(alpha), rtol=1e-6)


def test_color_mode_2_applies_three_jitters_in_random_order():
    im = np.random.default_rng(2).uniform(0, 255, (8, 8, 3)).astype(np.float32)
    orders = set()
    for seed in range(12):
        out = color_aug(im.copy(), 0.125, 2, np.random.default_rng(seed))
        replay = np.random.default_rng(seed)
        augs = [brightness_aug, contrast_aug, saturation_aug]
        order = replay.permutation(3)
        orders.add(tuple(order))
        expected = im.copy()
        for i in order:
            expected = augs[i](expected, 0.125, replay)
        np.testing.assert_allclose(out, expected, rtol=1e-5)
    assert len(orders) > 1


def test_contrast_and_saturation_formulas():
    im = np.random.default_rng(3).uniform(0, 255, (4, 6, 3)).astype(np.float32)
    coef = np.array([0.299, 0.587, 0.114])  # applied to channels in B, G, R order, as the original
    alpha = 1.0 + np.random.default_rng(9).uniform(-0.3, 0.3)
    gray_mean = 3.0 * (1.0 - alpha) / im.size * (im * coef).sum()
    np.testing.assert_allclose(contrast_aug(im.copy(), 0.3, np.random.default_rng(9)), im * alpha + gray_mean,
                               rtol=1e-5)
    gray = (im * coef).sum(axis=2, keepdims=True)
    np.testing.assert_allclose(saturation_aug(im.copy(), 0.3, np.random.default_rng(9)),
                               im * alpha + gray * (1.0 - alpha), rtol=1e-5)


def test_crop_moves_boxes_and_landmarks_with_the_pixels(tmp_path):
    """No jitter: the crop is a window of the resized image; boxes/landmarks are scaled and shifted
    by the same window; every kept box has its centre inside; the dropped ones outside."""
    rng = np.random.default_rng(0)
    height, width = 900, 1300
    im = random_image(rng, height, width)
    path = write_image(tmp_path / 'a.png', im)
    xy = rng.uniform(0, [width - 60, height - 60], (40, 2))
    boxes = np.hstack([xy, xy + rng.uniform(8, 60, (40, 2))])
    landmarks = np.concatenate([xy[:, None, :] + rng.uniform(0, 8, (40, 5, 2)), np.ones((40, 5, 1))], axis=2)
    landmarks[3] = -1  # a face without landmarks
    entry = face_entry(path, height, width, boxes, landmarks)
    entry['gt_classes'] = np.arange(1, 41, dtype=np.int32)  # to identify the kept faces
    cfg = make_cfg(COLOR_MODE=0)
    for seed in range(6):
        ims, recs = get_crop_image1([entry], rng=np.random.default_rng(seed), cfg=cfg)
        tensor, rec = ims[0], recs[0]
        assert tensor.shape == (1, 3, 640, 640) and tensor.dtype == np.float32
        scale = rec['im_info'][2]
        assert rec['im_info'][:2].tolist() == [640, 640]
        assert any(np.isclose(scale, 640.0 / int(height * p), rtol=1e-6) for p in cfg.PRE_SCALES)
        kept = rec['gt_classes'] - 1
        assert len(kept) > 0
        offset = boxes[kept[0], :2] * scale - rec['boxes'][0, :2]
        left, up = np.round(offset).astype(int)
        np.testing.assert_allclose(rec['boxes'], boxes[kept] * scale - [left, up, left, up], atol=1e-3)
        resized = cv2.resize(im, None, None, fx=float(scale), fy=float(scale), interpolation=cv2.INTER_LINEAR)
        window = resized[up:up + 640, left:left + 640]
        np.testing.assert_array_equal(tensor[0], window[:, :, ::-1].transpose(2, 0, 1))
        # Centre-inside filter, both ways.
        shifted = boxes * scale - [left, up, left, up]
        centres = (shifted[:, :2] + shifted[:, 2:]) / 2
        inside = ((centres >= 0) & (centres < 640)).all(axis=1)
        assert sorted(kept) == list(np.flatnonzero(inside))
        # Present landmarks move with the crop, missing ones stay -1.
        for row, face in zip(rec['landmarks'], kept):
            if face == 3:
                assert (row == -1).all()
            else:
                np.testing.assert_allclose(row[:, :2], landmarks[face, :, :2] * scale - [left, up], atol=1e-3)
                assert (row[:, 2] == 1).all()


def test_min_box_size_drops_small_faces_from_the_crop(tmp_path):
    path = write_image(tmp_path / 'a.png', random_image(np.random.default_rng(1), 640, 640))
    entry = face_entry(path, 640, 640, [[100, 100, 110, 108], [300, 300, 400, 420]])
    # PRE_SCALES 1.0 on a 640 image: scale 1, the window is the whole image.
    small_ok = make_cfg(PRE_SCALES=[1.0], COLOR_MODE=0)
    _, recs = get_crop_image1([entry], rng=np.random.default_rng(0), cfg=small_ok)
    assert len(recs[0]['boxes']) == 2
    no_small = make_cfg(PRE_SCALES=[1.0], COLOR_MODE=0, MIN_BOX_SIZE=20)
    _, recs = get_crop_image1([entry], rng=np.random.default_rng(0), cfg=no_small)
    np.testing.assert_array_equal(recs[0]['boxes'], [[300, 300, 400, 420]])


def test_retries_until_a_face_is_in_the_window(tmp_path):
    """One face near the left edge: a single random window misses it most of the time, the
    LIMIT-25 retry loop keeps it; an image without faces still gives a 640 x 640 crop."""
    path = write_image(tmp_path / 'a.png', random_image(np.random.default_rng(2), 1000, 1000))
    entry = face_entry(path, 1000, 1000, [[40, 490, 60, 510]])
    # Scale 640 / 600: a 1067 px image, windows start at 0..427; the face centre (53 px) needs left <= 53.
    cfg = make_cfg(PRE_SCALES=[0.6], COLOR_MODE=0)
    first_window_hits = 0
    for seed in range(10):
        _, recs = get_crop_image1([entry], rng=np.random.default_rng(seed), cfg=cfg)
        assert len(recs[0]['boxes']) == 1
        replay = np.random.default_rng(seed)
        replay.integers(1)  # the PRE_SCALES choice, then (up, left) of the first window
        _, left = replay.integers(0, 428), replay.integers(0, 428)
        first_window_hits += left <= 53
    assert first_window_hits <= 4
    empty = face_entry(path, 1000, 1000, np.zeros((0, 4)))
    ims, recs = get_crop_image1([empty], rng=np.random.default_rng(0), cfg=cfg)
    assert ims[0].shape == (1, 3, 640, 640)
    assert recs[0]['boxes'].shape == (0, 4) and recs[0]['landmarks'].shape == (0, 5, 3)
    assert CROP_RETRIES == 25


def test_flipped_entry_crops_the_mirrored_image(tmp_path):
    im = random_image(np.random.default_rng(3), 640, 700)
    path = write_image(tmp_path / 'a.png', im)
    entry = face_entry(path, 640, 700, [[10, 10, 600, 600]], flipped=True)
    cfg = make_cfg(PRE_SCALES=[1.0], COLOR_MODE=0)
    rng = np.random.default_rng(0)
    ims, recs = get_crop_image1([entry], rng=rng, cfg=cfg)
    left = int(round(10 - recs[0]['boxes'][0, 0]))
    np.testing.assert_array_equal(ims[0][0], im[:, ::-1][:, left:left + 640, ::-1].transpose(2, 0, 1))


def test_boxes_mask_is_painted_grey(tmp_path):
    im = np.zeros((50, 60, 3), np.uint8)
    path = write_image(tmp_path / 'a.png', im)
    entry = face_entry(path, 50, 60, [[1, 1, 20, 20]])
    entry['boxes_mask'] = np.array([[10.7, 5.2, 30.9, 25.0], [-3, 40, 5, 45]])
    out = load_image(entry)
    assert (out[5:25, 10:30] == 127).all()
    assert (out[40:45, 0:5] == 127).all()  # negative start clipped, not wrapped around
    assert out.sum() == 127 * 3 * (20 * 20 + 5 * 5)


def test_jitter_changes_pixels_only_when_enabled(tmp_path):
    path = write_image(tmp_path / 'a.png', random_image(np.random.default_rng(4), 640, 640))
    entry = face_entry(path, 640, 640, [[100, 100, 200, 200]])
    plain = get_crop_image1([entry], np.random.default_rng(0), make_cfg(PRE_SCALES=[1.0], COLOR_MODE=0))[0][0]
    off = get_crop_image1([entry], np.random.default_rng(0),
                          make_cfg(PRE_SCALES=[1.0], COLOR_JITTERING=0.0))[0][0]
    np.testing.assert_array_equal(off, plain)
    for mode in (1, 2):
        jittered = get_crop_image1([entry], np.random.default_rng(0), make_cfg(PRE_SCALES=[1.0], COLOR_MODE=mode))
        assert not np.array_equal(jittered[0][0], plain)


def test_crop_is_reproducible_from_the_generator(tmp_path):
    path = write_image(tmp_path / 'a.jpg', random_image(np.random.default_rng(5), 500, 800))
    entry = face_entry(path, 500, 800, [[100, 100, 160, 170], [400, 200, 420, 230]])
    cfg = make_cfg()
    a = get_crop_batch([entry], rng=np.random.default_rng(11), cfg=cfg)
    b = get_crop_batch([entry], rng=np.random.default_rng(11), cfg=cfg)
    np.testing.assert_array_equal(a[0][0]['data'], b[0][0]['data'])
    np.testing.assert_array_equal(a[1][0]['gt_boxes'], b[1][0]['gt_boxes'])
    assert a[1][0]['gt_boxes'].shape[1] == 5 and (a[1][0]['gt_boxes'][:, 4] == 1).all()
    assert a[0][0]['im_info'].shape == (1, 3)


def test_bad_images_name_the_file(tmp_path):
    missing = face_entry(str(tmp_path / 'missing.jpg'), 10, 10, [[1, 1, 5, 5]])
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        load_image(missing)
    corrupt = tmp_path / 'corrupt.jpg'
    corrupt.write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    with pytest.raises(ValueError, match='corrupt.jpg'):
        load_image(face_entry(str(corrupt), 10, 10, [[1, 1, 5, 5]]))
    path = write_image(tmp_path / 'small.png', np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(ValueError, match='small.png is 30x20 but the roidb says 40x20'):
        load_image(face_entry(path, 20, 40, [[1, 1, 5, 5]]))


def test_training_reads_the_upright_frame(tmp_path):
    """An image stored landscape with Orientation 6 (rotate 90 degrees clockwise) is portrait for
    load_image; a roidb size taken in the stored frame is refused."""
    path = oriented_file(tmp_path / 'r.jpg', asymmetric_image(), 6, quality=95)
    im = load_image(face_entry(path, 40, 24, [[1, 1, 5, 5]]))
    assert im.shape == (40, 24, 3)
    assert im[:10, 18:].min() > 200  # the white block is now at the top right
    with pytest.raises(ValueError, match='r.jpg is 24x40 but the roidb says 40x24'):
        load_image(face_entry(path, 24, 40, [[1, 1, 5, 5]]))
