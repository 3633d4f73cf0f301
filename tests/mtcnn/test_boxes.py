"""The cascade's box arithmetic (``mtcnn.boxes``): NMS against a greedy reference, +1 areas."""
import numpy as np
import pytest

from mtcnn import boxes as B


def _reference_nms(dets, thresh, mode):
    """Plain greedy NMS in the original's order (highest score first, argsort()[::-1])."""
    order = list(dets[:, 4].argsort()[::-1])
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        survivors = []
        for j in order:
            w = max(0.0, min(dets[i, 2], dets[j, 2]) - max(dets[i, 0], dets[j, 0]) + 1)
            h = max(0.0, min(dets[i, 3], dets[j, 3]) - max(dets[i, 1], dets[j, 1]) + 1)
            area_i = (dets[i, 2] - dets[i, 0] + 1) * (dets[i, 3] - dets[i, 1] + 1)
            area_j = (dets[j, 2] - dets[j, 0] + 1) * (dets[j, 3] - dets[j, 1] + 1)
            inter = w * h
            overlap = inter / (area_i + area_j - inter) if mode == 'Union' else inter / min(area_i, area_j)
            if overlap <= thresh:
                survivors.append(j)
        order = survivors
    return np.array(keep, np.int64)


@pytest.mark.parametrize('mode', ['Union', 'Minimum'])
@pytest.mark.parametrize('count', [1, 7, 300, 700])
def test_nms_equals_greedy_reference(mode, count):
    """Same kept indices in the same order, with tied scores too."""
    rng = np.random.default_rng(count)
    xy = rng.uniform(0, 300, (count, 2))
    dets = np.concatenate([xy, xy + rng.uniform(5, 60, (count, 2)),
                           rng.choice([0.5, 0.9, 1.0], (count, 1))], axis=1)
    np.testing.assert_array_equal(B.nms(dets, 0.5, mode), _reference_nms(dets, 0.5, mode))


def test_nms_rejects_unknown_mode():
    with pytest.raises(ValueError, match='mode'):
        B.nms(np.zeros((1, 5)), 0.5, 'IoU')


def test_iou_uses_plus_one_areas():
    # [0, 9] and [5, 14]: 10-pixel sides, a 5 x 10 intersection -> 50 / 150.
    assert B.iou([0, 0, 9, 9], np.array([[5, 0, 14, 9]]))[0] == pytest.approx(1 / 3)


def test_square_and_calibrate():
    box = np.array([[10.0, 20.0, 19.0, 59.0, 0.9]])   # 10 x 40
    sq = B.square(box)
    np.testing.assert_allclose(sq, [[-5.0, 20.0, 34.0, 59.0, 0.9]])  # 40 x 40, same centre
    calibrated = B.calibrate(box, np.array([[0.1, -0.1, 0.2, 0.0]]))
    np.testing.assert_allclose(calibrated, [[11.0, 16.0, 21.0, 59.0, 0.9]])  # offsets * (w, h) with +1


def test_pad_windows():
    boxes = np.array([[-3.0, 2.0, 6.0, 11.0], [95.0, 90.0, 104.0, 99.0]])
    src, dst, size = B.pad(boxes, 100, 95)
    np.testing.assert_array_equal(size, [[10, 10], [10, 10]])
    np.testing.assert_array_equal(src, [[0, 2, 6, 11], [95, 90, 99, 94]])
    np.testing.assert_array_equal(dst, [[3, 0, 9, 9], [0, 0, 4, 4]])
