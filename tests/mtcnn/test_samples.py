"""Training samples (``mtcnn.samples``): IoU classes, offsets, landmarks, mirror, lists."""
import os

import cv2
import numpy as np
import pytest

from mtcnn import boxes as B
from mtcnn.loader import read_sample_list
from mtcnn.samples import (FLIP_ORDER, SampleWriter, classify_iou, hard_samples, landmark_samples, merge_lists,
                           mirror_sample, normalise_landmarks, pnet_samples, rotate_crop)


class RecordingWriter:
    """Stands in for SampleWriter: keeps (kind, un-resized patch, target)."""

    def __init__(self):
        self.samples = []

    def add(self, kind, patch, target=()):
        self.samples.append((kind, patch.copy(), np.asarray(target, np.float64)))


def coordinate_image(height=240, width=250):
    """Blue = x, green = y, so a patch tells where it was cut from."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:, :, 0] = np.arange(width)[None, :]
    img[:, :, 1] = np.arange(height)[:, None]
    return img


def crop_of(patch):
    """x1, y1, x2, y2 (x2 = x1 + side) of a square patch of coordinate_image."""
    nx, ny = int(patch[0, 0, 0]), int(patch[0, 0, 1])
    side = patch.shape[0]
    assert patch.shape[1] == side
    return np.array([nx, ny, nx + side, ny + side], np.float64)


@pytest.mark.parametrize('overlap, kind', [(0.65, 'positive'), (0.9, 'positive'), (0.64, 'part'),
                                           (0.4, 'part'), (0.35, None), (0.3, None), (0.29, 'negative')])
def test_iou_classes(overlap, kind):
    assert classify_iou(overlap) == kind


def test_pnet_samples_follow_iou_rules_and_offsets():
    img = coordinate_image()
    faces = np.array([[40.0, 50.0, 100.0, 120.0], [150.0, 30.0, 200.0, 90.0]])
    writer = RecordingWriter()
    pnet_samples(img, faces, writer, np.random.default_rng(0), min_face=40)
    kinds = [s[0] for s in writer.samples]
    assert kinds.count('negative') >= 50 and kinds.count('positive') > 5 and kinds.count('part') > 5
    for kind, patch, target in writer.samples:
        crop = crop_of(patch)
        side = crop[2] - crop[0]
        overlaps = B.iou(crop, faces)
        if kind == 'negative':
            assert overlaps.max() < 0.3 and len(target) == 0 and side >= 12
            continue
        face = faces[np.argmax(overlaps)]
        assert classify_iou(B.iou(crop, face[None])[0]) == kind
        # offsets: (x1 - nx1) / size, ..., (y2 - ny2) / size with nx2 = nx1 + size
        np.testing.assert_allclose(target, (face - crop) / side)


def test_hard_samples_use_inclusive_boxes():
    img = coordinate_image()
    faces = np.array([[40.0, 50.0, 100.0, 120.0]])
    dets = np.array([[42.0, 52.0, 99.0, 118.0, 0.9],     # positive
                     [55.0, 50.0, 115.0, 120.0, 0.8],    # part
                     [150.0, 150.0, 190.0, 190.0, 0.7],  # negative
                     [0.0, 0.0, 10.0, 10.0, 0.7],        # too small
                     [220.0, 200.0, 260.0, 240.0, 0.7]])  # outside the image
    writer = RecordingWriter()
    hard_samples(img, dets, faces, writer)
    assert [s[0] for s in writer.samples] == ['positive', 'part', 'negative']
    for (kind, patch, target), det in zip(writer.samples, dets):
        square = B.square(det[None])[0]
        square[:4] = np.round(square[:4])
        x1, y1 = patch[0, 0, 0], patch[0, 0, 1]
        assert (x1, y1) == (square[0], square[1])
        side = square[2] - square[0] + 1
        assert patch.shape[:2] == (side, side)
        if kind != 'negative':
            np.testing.assert_allclose(target, (faces[0] - square[:4]) / side)


def test_landmark_normalisation_mirror_and_order():
    points = np.array([[30, 40], [60, 41], [45, 55], [33, 70], [58, 69]], np.float64)
    crop = [20, 30, 80, 90]
    target = normalise_landmarks(points, crop, 60)
    np.testing.assert_allclose(target[0], [10 / 60, 10 / 60])
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    mirrored, flipped = mirror_sample(image, -2, target.reshape(10))
    np.testing.assert_array_equal(mirrored, image[:, ::-1])
    flipped = flipped.reshape(5, 2)
    # the right eye of the mirror image is the left eye of the original, x -> 1 - x
    np.testing.assert_allclose(flipped, np.stack([1 - target[FLIP_ORDER, 0], target[FLIP_ORDER, 1]], 1))
    assert flipped[0, 0] < flipped[1, 0]  # left eye still left of the right eye
    _, twice = mirror_sample(mirrored, -2, flipped.reshape(10))
    np.testing.assert_allclose(twice, target.reshape(10))


def test_mirror_box_offsets():
    _, flipped = mirror_sample(np.zeros((2, 2, 3), np.uint8), 1, [0.1, 0.2, -0.3, 0.4])
    np.testing.assert_allclose(flipped, [0.3, 0.2, -0.1, 0.4])


@pytest.mark.parametrize('angle', [5.0, -5.0])
def test_rotation_moves_landmarks_with_the_image(angle):
    img = np.zeros((120, 120, 3), np.uint8)
    point = np.array([[70.0, 50.0]])
    cv2.circle(img, (70, 50), 2, (255, 255, 255), -1)
    patch, moved = rotate_crop(img, [30, 30, 90, 90], 60, point, angle)
    assert patch.shape == (60, 60, 3)
    ys, xs = np.nonzero(patch[:, :, 0] > 128)
    np.testing.assert_allclose([xs.mean() + 30, ys.mean() + 30], moved[0], atol=0.6)
    # counter-clockwise on screen: a point right of and above the centre moves up / left
    assert (moved[0, 1] < 50) == (angle > 0)


def test_landmark_samples_targets_inside_unit_square():
    rng = np.random.default_rng(3)
    img = coordinate_image()
    faces = np.array([[60.0, 60.0, 140.0, 150.0]])
    points = np.array([[[85, 90], [115, 90], [100, 110], [88, 130], [112, 130]]], np.float64)
    writer = RecordingWriter()
    landmark_samples(img, faces, points, writer, rng, min_face=40, num_jitter=20)
    assert len(writer.samples) > 10
    unrotated = 0
    for kind, patch, target in writer.samples:
        assert kind == 'landmark' and target.shape == (10,)
        assert ((target > 0) & (target < 1)).all()
        crop = crop_of(patch)
        if np.array_equal(patch[0, -1, :2], [crop[2] - 1, crop[1]]):   # neither mirrored nor rotated
            unrotated += 1
            np.testing.assert_allclose(target, normalise_landmarks(points[0], crop, patch.shape[0]).ravel())
    assert unrotated > 0
    missing = np.full((1, 5, 2), np.nan)
    writer = RecordingWriter()
    landmark_samples(img, faces, missing, writer, rng)
    assert not writer.samples


def test_sample_writer_and_merge(tmp_path):
    writer = SampleWriter(str(tmp_path), 12)
    patch = np.zeros((30, 30, 3), np.uint8)
    for _ in range(4):
        writer.add('positive', patch, [0.1, 0.2, -0.1, 0.0])
    for _ in range(20):
        writer.add('negative', patch)
    writer.add('landmark', patch, np.linspace(0.1, 0.9, 10))
    lists = writer.close()
    assert cv2.imread(str(tmp_path / '12' / 'positive' / '0.jpg')).shape == (12, 12, 3)
    assert open(lists['positive']).readline() == '12/positive/0.jpg 1 0.10 0.20 -0.10 0.00\n'
    merged = tmp_path / 'train_12.txt'
    counts = merge_lists(lists, str(merged), np.random.default_rng(0))
    assert counts == {'positive': 4, 'negative': 12, 'part': 0, 'landmark': 1}
    samples = read_sample_list(str(merged))
    assert len(samples) == 17 and os.path.isfile(samples.paths[0])
    np.testing.assert_allclose(samples.landmark_targets[-1], np.round(np.linspace(0.1, 0.9, 10), 4))
