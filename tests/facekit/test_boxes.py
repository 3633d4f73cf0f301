"""facekit.boxes: overlaps and NMS for both pixel conventions."""
import numpy as np
import pytest

from facekit.cython.bbox import bbox_overlaps_cython
from facekit.boxes import areas, matched_pairs, nms, pairwise_overlap, widths_centres
from reference import overlaps_reference, random_boxes


def continuous_reference(boxes, query):
    """IoU with continuous areas (width x2 - x1), by broadcasting."""
    b, q = boxes[:, None, :4], query[None, :, :4]
    iw = np.clip(np.minimum(b[..., 2], q[..., 2]) - np.maximum(b[..., 0], q[..., 0]), 0, None)
    ih = np.clip(np.minimum(b[..., 3], q[..., 3]) - np.maximum(b[..., 1], q[..., 1]), 0, None)
    inter = iw * ih
    union = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) + (q[..., 2] - q[..., 0]) * (q[..., 3] - q[..., 1])
    return np.where(inter > 0, inter / np.where(inter > 0, union - inter, 1), 0.0)


def test_plus_one_iou_equals_the_cython_kernel_and_the_reference():
    rng = np.random.default_rng(0)
    boxes, query = random_boxes(rng, 300), random_boxes(rng, 40)
    got = pairwise_overlap(boxes, query)
    np.testing.assert_allclose(got, overlaps_reference(boxes, query), rtol=1e-12, atol=0)
    np.testing.assert_allclose(got, bbox_overlaps_cython(boxes, query), rtol=1e-12, atol=0)


def test_continuous_iou():
    rng = np.random.default_rng(1)
    boxes, query = np.abs(random_boxes(rng, 200)) + [0, 0, 1, 1], np.abs(random_boxes(rng, 30)) + [0, 0, 1, 1]
    np.testing.assert_allclose(pairwise_overlap(boxes, query, plus_one=False), continuous_reference(boxes, query),
                               rtol=1e-12, atol=0)
    assert pairwise_overlap([0, 0, 10, 10], [[5, 0, 15, 10]], plus_one=False)[0, 0] == pytest.approx(1 / 3)
    assert pairwise_overlap([0, 0, 9, 9], [[5, 0, 14, 9]])[0, 0] == pytest.approx(1 / 3)


def test_minimum_mode_divides_by_the_smaller_area():
    # [0, 0, 9, 9] (100 px) and [5, 5, 24, 24] (400 px) share 25 px.
    assert pairwise_overlap([0, 0, 9, 9], [[5, 5, 24, 24]], mode='Minimum')[0, 0] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="'Union' or 'Minimum'"):
        pairwise_overlap([0, 0, 9, 9], [[5, 5, 24, 24]], mode='IoU')


def test_widths_centres_and_areas():
    w, h, cx, cy = widths_centres([[0, 0, 15, 7]])
    assert (w[0], h[0], cx[0], cy[0]) == (16, 8, 7.5, 3.5)
    w, h, cx, cy = widths_centres([[0, 0, 16, 8]], plus_one=False)
    assert (w[0], h[0], cx[0], cy[0]) == (16, 8, 8, 4)
    assert areas([[0, 0, 15, 7]])[0] == 128 and areas([[0, 0, 16, 8]], plus_one=False)[0] == 128


@pytest.mark.parametrize('mode', ['Union', 'Minimum'])
@pytest.mark.parametrize('plus_one', [True, False])
def test_nms_equals_the_greedy_definition(mode, plus_one):
    rng = np.random.default_rng(2)
    boxes = np.abs(random_boxes(rng, 400, max_size=60)) + [0, 0, 2, 2]
    dets = np.hstack([boxes, rng.uniform(0, 1, (400, 1))])
    keep = []
    for i in np.argsort(dets[:, 4])[::-1]:
        if not keep or (pairwise_overlap(dets[i], dets[keep], mode, plus_one)[0] <= 0.4).all():
            keep.append(i)
    np.testing.assert_array_equal(nms(dets, 0.4, mode, plus_one), keep)


def test_matched_pairs_are_one_to_one_by_descending_iou():
    reference = np.array([[0, 0, 9, 9], [20, 20, 29, 29], [50, 50, 59, 59]], np.float64)
    boxes = np.array([[1, 1, 10, 10],      # IoU 0.68 with reference 0
                      [0, 0, 9, 8],        # IoU 0.9 with reference 0: taken first
                      [21, 20, 30, 29],    # IoU 0.82 with reference 1
                      [100, 100, 110, 110]], np.float64)
    assert sorted(matched_pairs(boxes, reference)) == [(1, 0), (2, 1)]
    assert matched_pairs(boxes, reference, threshold=0.95) == []
    assert matched_pairs(boxes[:0], reference) == [] and matched_pairs(boxes, reference[:0]) == []
