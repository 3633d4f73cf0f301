"""Anchor assignment ``AA.assign_anchor_fpn``, against the original algorithm written plainly."""

import numpy as np
import pytest

from support import make_cfg, require_shared
from rcnn.contract import label_names
from rcnn.io.rpn import AA
from rcnn.processing.bbox_transform import bbox_overlaps, landmark_transform, nonlinear_transform
from rcnn.processing.generate_anchor import anchors_plane, generate_anchors_fpn

FEAT_640 = [(1, 64, 20, 20), (1, 64, 40, 40), (1, 64, 80, 80)]
IM_INFO = [[640, 640, 1.0]]


def dense_reference(cfg, feat_shapes, gt_boxes, gt_landmarks):
    """The original algorithm, written plainly: dense IoU of every anchor (h, w, a order) with
    every gt, then the original's per-stride reshape / transpose."""
    anchors, inside, dims = [], [], []
    for stride, base, (h, w) in zip(cfg.RPN_FEAT_STRIDE, generate_anchors_fpn(cfg=cfg.RPN_ANCHOR_CFG), feat_shapes):
        plane = anchors_plane(h, w, stride, base).reshape(-1, 4)
        border = cfg.RPN_ANCHOR_CFG[str(stride)]['ALLOWED_BORDER']
        size = cfg.SCALES[0][1]
        inside.append((plane[:, 0] >= -border) & (plane[:, 1] >= -border)
                      & (plane[:, 2] < size + border) & (plane[:, 3] < size + border))
        anchors.append(plane)
        dims.append((stride, h, w, len(base)))
    anchors, inside = np.concatenate(anchors), np.concatenate(inside)
    ins = np.flatnonzero(inside)
    a_in = anchors[ins]
    train = cfg.TRAIN
    labels = np.full(len(ins), -1, np.float32)
    bbox_t = np.zeros((len(ins), 4), np.float32)
    lmk_t = np.zeros((len(ins), 10), np.float32)
    if len(gt_boxes):
        overlaps = bbox_overlaps(a_in.astype(np.float64), gt_boxes.astype(np.float64))
        argmax = overlaps.argmax(axis=1)
        max_ov = overlaps[np.arange(len(ins)), argmax]
        gt_max = overlaps[overlaps.argmax(axis=0), np.arange(overlaps.shape[1])]
        forced = np.where(overlaps == gt_max)[0]
        if not train.RPN_CLOBBER_POSITIVES:
            labels[max_ov < train.RPN_NEGATIVE_OVERLAP] = 0
        if train.RPN_FORCE_POSITIVE:
            labels[forced] = 1
        labels[max_ov >= train.RPN_POSITIVE_OVERLAP] = 1
        if train.RPN_CLOBBER_POSITIVES:
            labels[max_ov < train.RPN_NEGATIVE_OVERLAP] = 0
        bbox_t[:] = nonlinear_transform(a_in, gt_boxes[argmax])
        lmk_t[:] = landmark_transform(a_in, gt_landmarks[argmax])
    else:
        labels[:] = 0
    bbox_w = np.zeros_like(bbox_t)
    bbox_w[labels == 1] = 1
    lmk_w = np.zeros_like(lmk_t)
    lmk_w[labels == 1] = 1
    if len(gt_boxes):
        lmk_w[gt_landmarks[argmax][:, 0, 2] < 0] = 0

    def unmap(values, fill):
        out = np.full((len(anchors),) + values.shape[1:], fill, np.float32)
        out[ins] = values
        return out

    labels, bbox_t, bbox_w = unmap(labels, -1), unmap(bbox_t, 0), unmap(bbox_w, 0)
    lmk_t, lmk_w = unmap(lmk_t, 0), unmap(lmk_w, 0)
    bbox_t /= np.array(train.BBOX_STDS, np.float32)
    lmk_t /= train.LANDMARK_STD
    out, start = {}, 0
    for stride, h, w, a in dims:
        span = slice(start, start + h * w * a)
        start += h * w * a
        out['face_label_stride%d' % stride] = labels[span].reshape(1, h, w, a).transpose(0, 3, 1, 2).reshape(1, -1)
        for name, values in (('bbox_target', bbox_t), ('bbox_weight', bbox_w),
                             ('landmark_target', lmk_t), ('landmark_weight', lmk_w)):
            out['face_%s_stride%d' % (name, stride)] = values[span].reshape(1, h * w, -1).transpose(0, 2, 1)
    return out


def random_faces(rng, n, extent=640):
    """n gt boxes (class 1) with landmarks: mostly small faces, some large, some crossing the border."""
    size = np.exp(rng.uniform(np.log(4), np.log(400), n))
    x1 = rng.uniform(-0.2 * extent, extent, n)
    y1 = rng.uniform(-0.2 * extent, extent, n)
    boxes = np.stack([x1, y1, x1 + size, y1 + size * rng.uniform(0.8, 1.4, n), np.ones(n)], axis=1)
    landmarks = np.concatenate([rng.uniform(-50, extent + 50, (n, 5, 2)),
                                rng.choice([-1.0, 0.0, 1.0], (n, 5, 1))], axis=2)
    return boxes.astype(np.float32), landmarks.astype(np.float32)


def assert_same(out, expected, where, rtol=0.0):
    """Labels equal; targets and weights within 1e-5 absolute (+ ``rtol`` for float32 rounding)."""
    assert set(out) == set(expected), where
    for key, value in expected.items():
        assert out[key].shape == value.shape and out[key].dtype == np.float32, (where, key)
        if 'label' in key:
            np.testing.assert_array_equal(out[key], value, err_msg='%s %s' % (where, key))
        else:
            np.testing.assert_allclose(out[key], value, rtol=rtol, atol=1e-5, err_msg='%s %s' % (where, key))


def test_golden_cases_of_the_original():
    """Every case of golden/assign_anchor_fpn_mnet640.npz: labels equal, targets/weights within 1e-5."""
    golden = np.load(require_shared('golden/assign_anchor_fpn_mnet640.npz'))
    aa = AA(FEAT_640, make_cfg())
    cases = sorted({key.split('_')[0] for key in golden.files})
    assert len(cases) >= 6
    for case in cases:
        gt = {'gt_boxes': golden[case + '_gt_boxes'], 'gt_landmarks': golden[case + '_gt_landmarks']}
        out = aa.assign_anchor_fpn(gt, IM_INFO, landmark=True)
        expected = {key[len(case) + 1:]: golden[key] for key in golden.files
                    if key.startswith(case + '_face_')}
        assert_same(out, expected, case)


@pytest.mark.parametrize('flags', [
    {},
    {'RPN_CLOBBER_POSITIVES': True},
    {'RPN_FORCE_POSITIVE': True},
    {'RPN_FORCE_POSITIVE': True, 'RPN_CLOBBER_POSITIVES': True},
    {'BBOX_STDS': (0.1, 0.1, 0.2, 0.2), 'LANDMARK_STD': 0.2, 'RPN_POSITIVE_OVERLAP': 0.4,
     'RPN_NEGATIVE_OVERLAP': 0.2},
])
def test_tiled_overlaps_equal_the_dense_original(flags):
    """Random gt sets (small, large, outside the crop, ties) against the plain dense algorithm."""
    cfg = make_cfg(**flags)
    aa = AA(FEAT_640, cfg)
    rng = np.random.default_rng(7)
    for n in (1, 3, 20, 120):
        boxes, landmarks = random_faces(rng, n)
        boxes[0] = boxes[n // 2]  # a duplicated gt: ties broken towards the first
        out = aa.assign_anchor_fpn({'gt_boxes': boxes, 'gt_landmarks': landmarks}, IM_INFO, landmark=True)
        # Targets divided by small stds reach ~200: allow float32 rounding (1e-6 relative) there.
        assert_same(out, dense_reference(cfg, [(20, 20), (40, 40), (80, 80)], boxes, landmarks), (flags, n),
                    rtol=1e-6)


def test_force_positive_with_a_gt_that_meets_no_anchor():
    """The original compares the full IoU matrix with each gt's best IoU: a gt outside every
    anchor has best IoU 0, so every anchor becomes positive."""
    cfg = make_cfg(RPN_FORCE_POSITIVE=True)
    boxes = np.array([[100, 100, 150, 150, 1], [-5000, -5000, -4990, -4990, 1]], np.float32)
    landmarks = np.full((2, 5, 3), -1, np.float32)
    out = AA(FEAT_640, cfg).assign_anchor_fpn({'gt_boxes': boxes, 'gt_landmarks': landmarks}, IM_INFO, True)
    assert_same(out, dense_reference(cfg, [(20, 20), (40, 40), (80, 80)], boxes, landmarks), 'outside gt')
    assert all((out['face_label_stride%d' % s] == 1).all() for s in (32, 16, 8))


def test_allowed_border_ignores_anchors_beyond_it():
    """With ALLOWED_BORDER 0, anchors crossing the 640 crop are -1 with zero targets, as in the original."""
    cfg = make_cfg()
    for stride in cfg.RPN_ANCHOR_CFG.values():
        stride['ALLOWED_BORDER'] = 0
    aa = AA(FEAT_640, cfg)
    assert not aa.inside.all()
    boxes, landmarks = random_faces(np.random.default_rng(3), 15)
    out = aa.assign_anchor_fpn({'gt_boxes': boxes, 'gt_landmarks': landmarks}, IM_INFO, landmark=True)
    assert_same(out, dense_reference(cfg, [(20, 20), (40, 40), (80, 80)], boxes, landmarks), 'border 0')
    # Stride 32's 512 px anchors of the first cell start at -248: outside, ignored.
    assert out['face_label_stride32'][0, 0] == -1
    assert not out['face_bbox_target_stride32'][0, :4, 0].any()


def test_no_faces_means_all_negative():
    aa = AA(FEAT_640, make_cfg())
    gt = {'gt_boxes': np.zeros((0, 5), np.float32), 'gt_landmarks': np.zeros((0, 5, 3), np.float32)}
    out = aa.assign_anchor_fpn(gt, IM_INFO, landmark=True)
    for key, value in out.items():
        assert (value == 0).all(), key
    assert sum(out['face_label_stride%d' % s].size for s in (32, 16, 8)) == 16800


def test_rows_with_class_minus_one_are_ignored():
    aa = AA(FEAT_640, make_cfg())
    boxes, landmarks = random_faces(np.random.default_rng(5), 6)
    padded = np.concatenate([boxes, [[0, 0, 640, 640, -1]]]).astype(np.float32)
    padded_landmarks = np.concatenate([landmarks, np.zeros((1, 5, 3), np.float32)])
    out = aa.assign_anchor_fpn({'gt_boxes': padded, 'gt_landmarks': padded_landmarks}, IM_INFO, True)
    assert_same(out, aa.assign_anchor_fpn({'gt_boxes': boxes, 'gt_landmarks': landmarks}, IM_INFO, True),
                'ignored row')


def test_shapes_and_landmark_switch():
    aa = AA(FEAT_640, make_cfg())
    boxes, landmarks = random_faces(np.random.default_rng(1), 4)
    out = aa.assign_anchor_fpn({'gt_boxes': boxes}, IM_INFO, landmark=False, prefix='head')
    assert sorted(out) == sorted('head_%s_stride%d' % (k, s) for s in (32, 16, 8)
                                 for k in ('label', 'bbox_target', 'bbox_weight'))
    for stride, size in ((32, 20), (16, 40), (8, 80)):
        assert out['head_label_stride%d' % stride].shape == (1, 2 * size * size)
        assert out['head_bbox_target_stride%d' % stride].shape == (1, 8, size * size)
    full = aa.assign_anchor_fpn({'gt_boxes': boxes, 'gt_landmarks': landmarks}, IM_INFO, landmark=True)
    assert full['face_landmark_weight_stride8'].shape == (1, 20, 6400)
    with pytest.raises(ValueError, match='finite'):
        aa.assign_anchor_fpn({'gt_boxes': np.array([[0, 0, np.nan, 5, 1]], np.float32)}, IM_INFO)


def test_select_stride_ignores_the_other_strides():
    aa = AA(FEAT_640, make_cfg())
    boxes, landmarks = random_faces(np.random.default_rng(2), 30)
    gt = {'gt_boxes': boxes, 'gt_landmarks': landmarks}
    full = aa.assign_anchor_fpn(gt, IM_INFO, landmark=True)
    only16 = aa.assign_anchor_fpn(gt, IM_INFO, landmark=True, select_stride=16)
    np.testing.assert_array_equal(only16['face_label_stride16'], full['face_label_stride16'])
    assert (only16['face_label_stride32'] == -1).all() and (only16['face_label_stride8'] == -1).all()
    np.testing.assert_array_equal(only16['face_bbox_weight_stride8'], full['face_bbox_weight_stride8'])


def test_without_ohem_labels_are_subsampled_to_the_rpn_batch():
    """RPN_ENABLE_OHEM 0: at most 25% of 256 positives, negatives fill up to 256, drawn from ``rng``."""
    cfg = make_cfg(RPN_ENABLE_OHEM=0)
    aa = AA(FEAT_640, cfg)
    boxes, landmarks = random_faces(np.random.default_rng(4), 120)
    gt = {'gt_boxes': boxes, 'gt_landmarks': landmarks}
    dense = AA(FEAT_640, make_cfg()).assign_anchor_fpn(gt, IM_INFO, landmark=True)
    dense_labels = np.concatenate([dense['face_label_stride%d' % s][0] for s in (32, 16, 8)])
    assert (dense_labels == 1).sum() > 64

    def labels(seed):
        out = aa.assign_anchor_fpn(gt, IM_INFO, landmark=True, rng=np.random.default_rng(seed))
        return np.concatenate([out['face_label_stride%d' % s][0] for s in (32, 16, 8)])

    first = labels(0)
    assert (first == 1).sum() == 64 and (first == 0).sum() == 256 - 64
    assert ((first == 1) <= (dense_labels == 1)).all() and ((first == 0) <= (dense_labels == 0)).all()
    np.testing.assert_array_equal(first, labels(0))
    assert (first != labels(1)).any()


def test_label_names_follow_the_original_order():
    cfg = make_cfg()
    names = label_names(cfg)
    assert names[:5] == ['face_label_stride32', 'face_bbox_target_stride32', 'face_bbox_weight_stride32',
                         'face_landmark_target_stride32', 'face_landmark_weight_stride32']
    assert len(names) == 15 and names[-1] == 'face_landmark_weight_stride8'
    cfg.FACE_LANDMARK = False
    assert label_names(cfg) == ['face_%s_stride%d' % (k, s) for s in (32, 16, 8)
                                for k in ('label', 'bbox_target', 'bbox_weight')]
