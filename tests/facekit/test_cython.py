"""The Cython kernels agree with NumPy references and reject bad arguments by name."""
import numpy as np
import pytest

from rcnn.cython.anchors import anchors_cython
from facekit.cython.bbox import bbox_overlaps_cython
from facekit.cython.cpu_nms import cpu_nms
from reference import nms_reference, overlaps_reference, random_boxes


def test_anchors_shift_each_base_anchor_by_cell_position():
    base = np.array([[-8, -8, 23, 23], [0, 0, 15, 15]], dtype=np.float32)
    out = anchors_cython(3, 5, 8, base)
    assert out.shape == (3, 5, 2, 4) and out.dtype == np.float32
    ih, iw = np.meshgrid(np.arange(3), np.arange(5), indexing='ij')
    shift = np.stack([iw, ih, iw, ih], axis=-1)[:, :, None, :] * 8
    np.testing.assert_array_equal(out, base[None, None] + shift)


def test_anchors_accept_float64_and_empty_plane():
    base = np.array([[0, 0, 15, 15]], dtype=np.float64)
    assert anchors_cython(0, 4, 16, base).shape == (0, 4, 1, 4)
    np.testing.assert_array_equal(anchors_cython(1, 2, 16, base)[0, 1, 0], [16, 0, 31, 15])


def test_overlaps_match_reference_on_random_and_degenerate_boxes():
    rng = np.random.RandomState(0)
    boxes = random_boxes(rng, 300)
    query = random_boxes(rng, 40)
    query[:3] = [[10, 10, 10, 10], [5, 5, 4, 4], [0, 0, 0, 0]]  # 1x1, empty, 1x1 at the origin
    got = bbox_overlaps_cython(boxes, query)
    assert got.shape == (300, 40) and got.dtype == np.float64
    np.testing.assert_allclose(got, overlaps_reference(boxes, query), rtol=0, atol=1e-12)


def test_overlaps_of_identical_and_zero_boxes():
    zeros = np.zeros((4, 4))
    np.testing.assert_array_equal(bbox_overlaps_cython(zeros, zeros), np.ones((4, 4)))
    box = np.array([[0, 0, 9, 9]], dtype=np.float32)
    half = np.array([[5, 0, 14, 9]], dtype=np.float32)  # 50 px shared of 150 px union
    assert bbox_overlaps_cython(box, half)[0, 0] == pytest.approx(50 / 150)


def test_overlaps_at_scale_and_extra_columns_ignored():
    rng = np.random.RandomState(1)
    boxes = random_boxes(rng, 100000)
    query = np.hstack([random_boxes(rng, 50), np.ones((50, 1))])  # (K, 5) gt boxes with a class
    got = bbox_overlaps_cython(boxes, query)
    np.testing.assert_allclose(got, overlaps_reference(boxes, query[:, :4]), rtol=0, atol=1e-12)


def test_overlaps_with_no_boxes():
    assert bbox_overlaps_cython(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    assert bbox_overlaps_cython(np.zeros((3, 4)), np.zeros((0, 4))).shape == (3, 0)


@pytest.mark.parametrize('seed', range(5))
@pytest.mark.parametrize('thresh', [0.0, 0.3, 0.5, 0.9])
def test_nms_matches_brute_force(seed, thresh):
    rng = np.random.RandomState(seed)
    boxes = random_boxes(rng, 200, extent=300, max_size=80)
    dets = np.hstack([boxes, rng.uniform(0, 1, (200, 1))]).astype(np.float32)
    assert cpu_nms(dets, thresh) == nms_reference(dets, thresh)


def test_nms_keeps_all_disjoint_and_one_of_duplicates():
    dets = np.array([[0, 0, 9, 9, 0.9], [20, 20, 29, 29, 0.8], [0, 0, 9, 9, 0.95]], dtype=np.float32)
    assert cpu_nms(dets, 0.4) == [2, 1]
    assert cpu_nms(np.zeros((0, 5), dtype=np.float32), 0.4) == []


def test_nms_suppresses_only_above_threshold():
    # IoU of these two boxes is exactly 50 / 150 = 1/3.
    dets = np.array([[0, 0, 9, 9, 0.9], [5, 0, 14, 9, 0.8]], dtype=np.float32)
    assert cpu_nms(dets, 0.34) == [0, 1]
    assert cpu_nms(dets, 0.33) == [0]


@pytest.mark.parametrize('call, name', [
    (lambda: bbox_overlaps_cython(np.zeros((3, 3)), np.zeros((2, 4))), 'boxes'),
    (lambda: bbox_overlaps_cython(np.zeros((3, 4)), np.zeros(4)), 'query_boxes'),
    (lambda: bbox_overlaps_cython(np.array([['a'] * 4]), np.zeros((2, 4))), 'boxes'),
    (lambda: bbox_overlaps_cython(np.zeros((3, 4)), np.zeros((2, 4), dtype=complex)), 'query_boxes'),
    (lambda: bbox_overlaps_cython(None, np.zeros((2, 4))), 'boxes'),
    (lambda: cpu_nms(np.zeros((3, 4), dtype=np.float32), 0.5), 'dets'),
    (lambda: cpu_nms(np.zeros((3, 5), dtype=object), 0.5), 'dets'),
    (lambda: cpu_nms(np.zeros((3, 5), dtype=np.float32), '0.5'), 'thresh'),
    (lambda: anchors_cython(2, 2, 8, np.zeros((2, 3), dtype=np.float32)), 'base_anchors'),
    (lambda: anchors_cython(2, 2, 8, np.zeros((2, 4), dtype=bool)), 'base_anchors'),
    (lambda: anchors_cython(2.5, 2, 8, np.zeros((2, 4), dtype=np.float32)), 'height'),
    (lambda: anchors_cython(2, -1, 8, np.zeros((2, 4), dtype=np.float32)), 'width'),
    (lambda: anchors_cython(2, 2, 0, np.zeros((2, 4), dtype=np.float32)), 'stride'),
])
def test_bad_arguments_raise_an_error_naming_the_argument(call, name):
    with pytest.raises((TypeError, ValueError), match=name):
        call()
