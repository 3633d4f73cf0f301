"""The ``mtcnn_ohem`` loss op: the hardest 70 % kept, gradients equal to the numerical ones."""
import mxnet as mx
import numpy as np
import pytest

from mtcnn.ohem import LOSS_WEIGHTS, ohem_masks, register_ohem


def _run_ohem(net, cls_score, bbox_pred, landmark_pred, label, bbox_target, landmark_target):
    register_ohem()
    det_w, box_w, lmk_w = LOSS_WEIGHTS[net]
    names = ['cls_score', 'bbox_pred', 'landmark_pred', 'label', 'bbox_target', 'landmark_target']
    variables = {n: mx.sym.Variable(n) for n in names}
    sym = mx.sym.Custom(op_type='mtcnn_ohem', with_landmark=True, det_weight=det_w, box_weight=box_w,
                        landmark_weight=lmk_w, **variables)
    values = [cls_score, bbox_pred, landmark_pred, label, bbox_target, landmark_target]
    args = {n: mx.nd.array(v) for n, v in zip(names, values)}
    grads = {n: mx.nd.zeros(v.shape) for n, v in zip(names, values)}
    executor = sym.bind(mx.cpu(), args, args_grad=grads)
    executor.forward(is_train=True)
    executor.backward()
    return [o.asnumpy() for o in executor.outputs], {n: g.asnumpy() for n, g in grads.items()}


def _ohem_loss(net, cls_score, bbox_pred, landmark_pred, label, bbox_target, landmark_target, masks):
    det_w, box_w, lmk_w = LOSS_WEIGHTS[net]
    cls_keep, bbox_keep, landmark_keep = masks
    e = np.exp(cls_score - cls_score.max(axis=1, keepdims=True))
    prob = e / e.sum(axis=1, keepdims=True)
    rows = np.flatnonzero(cls_keep)
    det = -np.log(prob[rows, label[rows].astype(int)]).sum() / max(len(rows), 1)
    box = (bbox_keep[:, None] * (bbox_pred - bbox_target) ** 2).sum() / max(bbox_keep.sum(), 1)
    lmk = (landmark_keep[:, None] * (landmark_pred - landmark_target) ** 2).sum() / max(landmark_keep.sum(), 1)
    return det_w * det + box_w * box + lmk_w * lmk


def _ohem_inputs(seed=0):
    rng = np.random.default_rng(seed)
    label = np.array([1, 0, 0, 1, -1, -2, 0, 1, -2, -1, 0, 0], np.float64)
    n = len(label)
    return (rng.normal(size=(n, 2)), rng.normal(size=(n, 4)) * 0.2, rng.normal(size=(n, 10)) * 0.2 + 0.5,
            label, rng.normal(size=(n, 4)) * 0.1, rng.uniform(0.2, 0.8, (n, 10)))


def test_ohem_masks_keep_hardest_seventy_percent():
    cls_score, _, _, label, _, _ = _ohem_inputs()
    e = np.exp(cls_score)
    prob = e / e.sum(axis=1, keepdims=True)
    cls_keep, bbox_keep, landmark_keep = ohem_masks(prob, label)
    valid = np.flatnonzero(label >= 0)                    # 8 positives + negatives
    assert cls_keep.sum() == int(0.7 * len(valid)) == 5
    assert set(np.flatnonzero(cls_keep)) <= set(valid)
    loss = -np.log(prob[valid, label[valid].astype(int)])
    kept_loss = loss[np.isin(valid, np.flatnonzero(cls_keep))]
    dropped_loss = loss[~np.isin(valid, np.flatnonzero(cls_keep))]
    assert kept_loss.min() >= dropped_loss.max()
    np.testing.assert_array_equal(np.flatnonzero(bbox_keep), np.flatnonzero(np.abs(label) == 1))
    np.testing.assert_array_equal(np.flatnonzero(landmark_keep), np.flatnonzero(label == -2))


@pytest.mark.parametrize('net', ['pnet', 'onet'])
def test_ohem_gradients_match_numerical_gradient_of_the_loss(net):
    inputs = _ohem_inputs(1)
    outputs, grads = _run_ohem(net, *inputs)
    masks = outputs[3:6]
    e = np.exp(inputs[0] - inputs[0].max(axis=1, keepdims=True))
    np.testing.assert_allclose(outputs[0], e / e.sum(axis=1, keepdims=True), rtol=1e-5)
    for position, name in ((0, 'cls_score'), (1, 'bbox_pred'), (2, 'landmark_pred')):
        value = inputs[position]
        numeric = np.zeros_like(value)
        for index in np.ndindex(*value.shape):
            for sign in (1, -1):
                shifted = [v.copy() for v in inputs]
                shifted[position][index] += sign * 1e-5
                numeric[index] += sign * _ohem_loss(net, *shifted, masks) / 2e-5
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-3, atol=1e-5, err_msg=name)
    for name in ('label', 'bbox_target', 'landmark_target'):
        assert not grads[name].any()
