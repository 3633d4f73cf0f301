"""Anchors, box/landmark transforms and NMS wrappers."""

import numpy as np
import pytest

from rcnn.config import get_config
from rcnn.processing.bbox_transform import (bbox_overlaps, clip_boxes, landmark_pred, landmark_transform,
                                            nonlinear_pred, nonlinear_transform)
from rcnn.processing.generate_anchor import anchors_plane, generate_anchors, generate_anchors_fpn
from facekit.boxes import cpu_nms_wrapper
from reference import nms_reference, overlaps_reference, random_boxes


def test_base_anchors_of_the_ssh_config():
    stride32, stride16, stride8 = generate_anchors_fpn(cfg=get_config('mnet', 'retinaface')[0].RPN_ANCHOR_CFG)
    np.testing.assert_array_equal(stride8, [[-8, -8, 23, 23], [0, 0, 15, 15]])
    np.testing.assert_array_equal(stride16, [[-56, -56, 71, 71], [-24, -24, 39, 39]])
    np.testing.assert_array_equal(stride32, [[-248, -248, 263, 263], [-120, -120, 135, 135]])


def test_ratio_enumeration_rounds_as_faster_rcnn():
    anchors = generate_anchors(16, ratios=(0.5, 1, 2), scales=(8,))
    np.testing.assert_array_equal(anchors, [[-84, -40, 99, 55], [-56, -56, 71, 71], [-36, -80, 51, 95]])


def test_dense_anchors_add_a_half_stride_copy():
    plain = generate_anchors(16, (1.0,), (2, 1), stride=8)
    dense = generate_anchors(16, (1.0,), (2, 1), stride=8, dense_anchor=True)
    np.testing.assert_array_equal(dense, np.vstack([plain, plain + 4]))
    with pytest.raises(ValueError, match='even stride'):
        generate_anchors(16, (1.0,), (1,), stride=7, dense_anchor=True)


def test_640_input_has_16800_anchors_in_h_w_a_order():
    config, _ = get_config('mnet', 'retinaface')
    total = 0
    for stride, base in zip(config.RPN_FEAT_STRIDE, generate_anchors_fpn(cfg=config.RPN_ANCHOR_CFG)):
        size = 640 // stride
        plane = anchors_plane(size, size, stride, base.astype(np.float32))
        assert plane.shape == (size, size, 2, 4)
        np.testing.assert_array_equal(plane[1, 2, 1], base[1] + [2 * stride, stride, 2 * stride, stride])
        total += plane.reshape(-1, 4).shape[0]
    assert total == 800 + 3200 + 12800 == 16800


def test_nonlinear_pred_inverts_nonlinear_transform():
    rng = np.random.RandomState(0)
    anchors = np.abs(random_boxes(rng, 500)) + [0, 0, 20, 20]
    gt = np.abs(random_boxes(rng, 500)) + [0, 0, 20, 20]
    deltas = nonlinear_transform(anchors, np.hstack([gt, np.ones((500, 1))]))
    assert deltas.shape == (500, 4)
    np.testing.assert_allclose(nonlinear_pred(anchors, deltas), gt, atol=1e-8)


def test_nonlinear_transform_values():
    anchor = np.array([[0, 0, 15, 15]], dtype=np.float64)  # 16 x 16, centre 7.5
    gt = np.array([[8, 0, 39, 15]], dtype=np.float64)      # 32 x 16, centre 23.5
    np.testing.assert_allclose(nonlinear_transform(anchor, gt), [[1.0, 0.0, np.log(2), 0.0]])


def test_landmark_pred_inverts_landmark_transform_in_both_layouts():
    rng = np.random.RandomState(1)
    anchors = np.abs(random_boxes(rng, 50)) + [0, 0, 20, 20]
    points = rng.uniform(0, 640, (50, 5, 2))
    landmarks = np.concatenate([points, np.ones((50, 5, 1))], axis=2)
    deltas = landmark_transform(anchors, landmarks)
    assert deltas.shape == (50, 10)
    np.testing.assert_allclose(landmark_pred(anchors, deltas), points.reshape(50, 10), atol=1e-8)
    as_points = landmark_pred(anchors, deltas.reshape(50, 5, 2).astype(np.float32))
    assert as_points.shape == (50, 5, 2) and as_points.dtype == np.float32
    np.testing.assert_allclose(as_points, points, atol=1e-3)


def test_landmark_pred_formula():
    box = np.array([[10, 20, 29, 59]], dtype=np.float32)  # w 20, h 40, centre (19.5, 39.5)
    np.testing.assert_allclose(landmark_pred(box, np.array([[0.5, -0.25] * 5])), [[29.5, 29.5] * 5])


def test_empty_inputs_give_empty_outputs():
    assert nonlinear_pred(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0, 4)
    assert landmark_pred(np.zeros((0, 4)), np.zeros((0, 5, 2), dtype=np.float32)).shape == (0, 5, 2)


def test_clip_boxes_to_image():
    boxes = np.array([[-5, -5, 700, 500], [10, 20, 30, 40]], dtype=np.float64)
    np.testing.assert_array_equal(clip_boxes(boxes, (480, 640, 3)), [[0, 0, 639, 479], [10, 20, 30, 40]])


def test_bbox_overlaps_wraps_the_kernel():
    rng = np.random.RandomState(2)
    a, b = random_boxes(rng, 30), random_boxes(rng, 7)
    np.testing.assert_allclose(bbox_overlaps(a, b), overlaps_reference(a, b), atol=1e-12)


def test_nms_wrapper_equals_the_reference():
    rng = np.random.RandomState(3)
    dets = np.hstack([random_boxes(rng, 100, 200, 60), rng.uniform(0, 1, (100, 1))]).astype(np.float32)
    assert cpu_nms_wrapper(0.4)(dets) == nms_reference(dets, 0.4)
