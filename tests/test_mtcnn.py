"""MTCNN: symbols vs the released weights, box arithmetic, the detector against the
original's outputs, the OHEM loss op, training sample generation, data loading
and checkpoints."""
import logging
import math
import os
import re
import signal
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

from conftest import REPO, require_shared
from mtcnn import boxes as B
from mtcnn.detector import MtcnnDetector, transform
from mtcnn.evaluate import match
from mtcnn.loader import ImageListIter, read_sample_list
from mtcnn.ohem import LOSS_WEIGHTS, ohem_masks, register_ohem
from mtcnn.predictor import Predictor
from mtcnn.samples import (FLIP_ORDER, SampleWriter, classify_iou, hard_samples,
                           landmark_samples, merge_lists, mirror_sample, normalise_landmarks,
                           pnet_samples, rotate_crop)
from mtcnn.symbol import INPUT_SIZE, _prelu, get_symbol
from mtcnn.train import init_params, save_checkpoint, train_net
from rcnn.core.checkpoint import load_param_file

MODELS = 'assets/models/mtcnn-mxnet'
NETS = ('pnet', 'rnet', 'onet')


def released(net):
    return str(require_shared('%s/%s-0016.params' % (MODELS, net)))


# ---------------------------------------------------------------- symbols

@pytest.mark.parametrize('net', NETS)
def test_test_symbol_matches_released_parameters(net):
    """Every parameter of the test symbol has the released name and shape, and vice versa."""
    arg_params, aux_params = load_param_file(released(net))
    size = INPUT_SIZE[net]
    symbol = get_symbol(net, 'test')
    shapes, _, _ = symbol.infer_shape(data=(2, 3, size, size))
    declared = {n: s for n, s in zip(symbol.list_arguments(), shapes) if n != 'data'}
    assert declared == {n: v.shape for n, v in arg_params.items()}
    assert aux_params == {}


@pytest.mark.parametrize('net', NETS)
def test_landmark_branch_adds_only_new_names(net):
    size = INPUT_SIZE[net]
    plain = get_symbol(net, 'test')
    branch = get_symbol(net, 'test', with_landmark=True)
    extra = set(branch.list_arguments()) - set(plain.list_arguments())
    head = 'conv4_3' if net == 'pnet' else 'fc4'
    assert extra == {head + '_weight', head + '_bias'}
    _, out_shapes, _ = branch.infer_shape(data=(2, 3, size, size))
    assert out_shapes[2] == ((2, 10, 1, 1) if net == 'pnet' else (2, 10))


@pytest.mark.parametrize('height', [12, 13, 24, 37, 240])
def test_pnet_map_size(height):
    """P-Net maps are ceil((H - 4) / 2) - 3 cells for an H-pixel input (pooling 'full')."""
    _, out_shapes, _ = get_symbol('pnet', 'test').infer_shape(data=(1, 3, height, 50))
    assert out_shapes[0][2] == math.ceil((height - 4) / 2) - 3


@pytest.mark.parametrize('net', NETS)
def test_train_symbol_outputs(net):
    size = INPUT_SIZE[net]
    symbol = get_symbol(net, 'train', with_landmark=True, prelu='decomposed')
    _, out_shapes, _ = symbol.infer_shape(data=(4, 3, size, size), label=(4,), bbox_target=(4, 4),
                                          landmark_target=(4, 10))
    assert out_shapes == [(4, 2), (4, 4), (4, 10), (4,), (4,), (4,)]
    leaky = get_symbol(net, 'train', with_landmark=True)
    assert symbol.list_arguments() == leaky.list_arguments()


def _prelu_after_conv(form, x, weight, gamma, out_grad):
    """Forward / backward of conv -> PReLU; returns output, d gamma, d data, conv output."""
    data = mx.sym.Variable('data')
    conv = mx.sym.Convolution(data, kernel=(3, 3), num_filter=4, no_bias=True, name='conv')
    sym = mx.sym.Group([_prelu(conv, 'p', 4, form), mx.sym.BlockGrad(conv)])
    grads = {'data': mx.nd.zeros(x.shape), 'p_gamma': mx.nd.zeros(4)}
    args = {'data': mx.nd.array(x), 'conv_weight': mx.nd.array(weight), 'p_gamma': mx.nd.array(gamma)}
    executor = sym.bind(mx.cpu(), args, args_grad=grads, grad_req={'data': 'write', 'conv_weight': 'null',
                                                                    'p_gamma': 'write'})
    executor.forward(is_train=True)
    executor.backward([mx.nd.array(out_grad), mx.nd.zeros(out_grad.shape)])
    return (executor.outputs[0].asnumpy(), grads['p_gamma'].asnumpy(), grads['data'].asnumpy(),
            executor.outputs[1].asnumpy())


def test_decomposed_prelu_is_exact_and_has_the_true_slope_gradient():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 9, 9)).astype(np.float32)
    weight = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    gamma = np.array([0.25, -0.5, 1.5, 0.8], np.float32)
    out_grad = rng.normal(size=(3, 4, 7, 7)).astype(np.float32)
    leaky_out, leaky_dgamma, leaky_ddata, conv = _prelu_after_conv('leaky', x, weight, gamma, out_grad)
    out, dgamma, ddata, _ = _prelu_after_conv('decomposed', x, weight, gamma, out_grad)
    expected = np.where(conv > 0, conv, conv * gamma[None, :, None, None])
    np.testing.assert_array_equal(out, expected)          # bit-exact
    np.testing.assert_array_equal(out, leaky_out)
    np.testing.assert_allclose(ddata, leaky_ddata, rtol=1e-5, atol=1e-5)
    true_dgamma = (out_grad * np.minimum(conv, 0)).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(dgamma, true_dgamma, rtol=1e-4, atol=1e-4)
    # The reason the trainer avoids the plain op: MXNet 1.9.1 scales this gradient by gamma.
    np.testing.assert_allclose(leaky_dgamma, gamma * true_dgamma, rtol=1e-4, atol=1e-4)


def _random_params(symbol, data_shape, seed):
    """init_params with random biases and PReLU slopes of both signs (as in the released nets)."""
    params = init_params(symbol, {'data': data_shape})
    rng = np.random.default_rng(seed)
    for name, value in params.items():
        if name.endswith(('_bias', '_gamma')):
            value[:] = rng.uniform(-1, 1.5, value.shape)
    return params


@pytest.mark.parametrize('net', NETS)
@pytest.mark.parametrize('with_landmark', [False, True])
def test_onednn_graph_is_bit_identical_to_the_stock_graph(net, with_landmark):
    """prelu='onednn' (the detector's graph, both PReLU layouts, P-Net's merged heads) takes the
    stock graph's parameters and returns exactly its outputs, here on a P-Net map of odd size."""
    stock = get_symbol(net, 'test', with_landmark)
    onednn = get_symbol(net, 'test', with_landmark, prelu='onednn')
    assert sorted(onednn.list_arguments()) == sorted(stock.list_arguments())
    assert onednn.list_outputs() == stock.list_outputs()
    size = INPUT_SIZE[net]
    params = _random_params(stock, (1, 3, size, size), seed=2 * NETS.index(net) + with_landmark)
    shape = (1, 3, 61, 47) if net == 'pnet' else (5, 3, size, size)
    data = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    got, want = Predictor(onednn, params)(data), Predictor(stock, params)(data)
    assert len(got) == len(want) == 2 + with_landmark
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_predictor_chunks_rows_without_changing_outputs():
    """Rows run in chunks, the last one padded to the batch multiple: the same outputs as one
    batch, and every chunk reuses one executor."""
    symbol = get_symbol('rnet', 'test', prelu='onednn')
    params = _random_params(symbol, (1, 3, 24, 24), seed=3)
    data = np.random.default_rng(2).uniform(-1, 1, (37, 3, 24, 24)).astype(np.float32)
    chunked = Predictor(symbol, params, batch_multiple=16, chunk=16)
    for a, b in zip(chunked(data), Predictor(symbol, params)(data)):
        assert a.shape[0] == 37
        np.testing.assert_array_equal(a, b)
    assert list(chunked.forward._slots) == [(16, 3, 24, 24)]
    with pytest.raises(ValueError, match='at least one row'):
        chunked(data[:0])


# ---------------------------------------------------------------- boxes

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


# ---------------------------------------------------------------- detector

@pytest.fixture(scope='module')
def released_detector():
    return MtcnnDetector(released('pnet'), released('rnet'), released('onet'))


def test_stages_match_original_outputs(released_detector):
    """Each stage's calibrated boxes on test01.jpg equal the original MXNet implementation's
    (default settings): same count and order, boxes within 0.01 px, scores within 1e-4."""
    golden = np.load(require_shared('golden/mtcnn_mxnet_test01.npz'))
    img = cv2.imread(str(require_shared('assets/images/test01.jpg')))
    detector = released_detector
    pnet = detector.detect_pnet(img)
    rnet = detector.detect_rnet(img, pnet)
    onet, landmarks = detector.detect_onet(img, rnet)
    assert landmarks is None
    for name, got in (('pnet', pnet), ('rnet', rnet), ('onet', onet)):
        want = golden['test01_' + name]
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got[:, :4], want[:, :4], rtol=0, atol=0.01, err_msg=name)
        np.testing.assert_allclose(got[:, 4], want[:, 4], rtol=0, atol=1e-4, err_msg=name)
    boxes, _ = detector.detect(img)
    np.testing.assert_array_equal(boxes, onet)


def test_detector_graphs_give_the_stock_graphs_boxes(released_detector):
    """The detector's nets (oneDNN PReLU form, crops in chunks) find exactly the boxes of the
    stock test graphs run one batch at a time on test01.jpg."""
    img = cv2.imread(str(require_shared('assets/images/test01.jpg')))
    stock = MtcnnDetector(*[Predictor(get_symbol(net, 'test'), load_param_file(released(net))[0])
                            for net in NETS])
    np.testing.assert_array_equal(released_detector.detect(img)[0], stock.detect(img)[0])


def test_detect_on_blank_image_finds_nothing(released_detector):
    boxes, landmarks = released_detector.detect(np.full((100, 120, 3), 127, np.uint8))
    assert boxes.shape == (0, 5) and landmarks is None


def test_detect_rejects_non_images(released_detector):
    with pytest.raises(ValueError, match='BGR uint8'):
        released_detector.detect(np.zeros((10, 10), np.uint8))


def test_pyramid_scales():
    detector = MtcnnDetector(Predictor(get_symbol('pnet', 'test'), init_params(
        get_symbol('pnet', 'test'), {'data': (1, 3, 12, 12)})), min_face_size=24)
    scales = detector.scales(100, 200)
    assert scales[0] == 0.5 and scales[1] == pytest.approx(0.5 * 0.709)
    assert min(int(100 * scales[-1]), int(200 * scales[-1])) > 12
    assert min(int(100 * scales[-1] * 0.709), int(200 * scales[-1] * 0.709)) <= 12


def test_onet_landmarks_are_relative_to_the_square_crop():
    """With a landmark branch that always outputs the same normalised points,
    landmarks are box_x1 + r * side of the squared (unclipped) R-Net box."""
    points = np.array([0.3, 0.35, 0.7, 0.35, 0.5, 0.55, 0.35, 0.75, 0.65, 0.75], np.float32)
    symbol = get_symbol('onet', 'test', with_landmark=True)
    params = init_params(symbol, {'data': (1, 3, 48, 48)})
    params['fc2_weight'][:] = 0
    params['fc2_bias'][:] = mx.nd.array([-5, 5])       # every crop is a face
    params['fc3_weight'][:] = 0
    params['fc3_bias'][:] = 0
    params['fc4_weight'][:] = 0
    params['fc4_bias'][:] = mx.nd.array(points)
    pnet = Predictor(get_symbol('pnet', 'test'), init_params(get_symbol('pnet', 'test'),
                                                             {'data': (1, 3, 12, 12)}))
    detector = MtcnnDetector(pnet, onet=Predictor(symbol, params))
    img = np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8)
    dets = np.array([[10.0, 20.0, 29.0, 59.0, 0.9]])   # 20 x 40 -> square [0, 20, 39, 59]
    boxes, landmarks = detector.detect_onet(img, dets)
    np.testing.assert_allclose(boxes[:, :4], [[0, 20, 39, 59]])
    expected = np.array([0.0, 20.0]) + points.reshape(5, 2).astype(np.float64) * 40
    np.testing.assert_allclose(landmarks[0], expected, atol=1e-5)


def test_transform_is_exact():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    data = transform(pixels)
    assert data.shape == (1, 3, 16, 16) and data.dtype == np.float32 and data.flags.c_contiguous
    np.testing.assert_array_equal(data[0, 0].ravel(), (np.arange(256) - 127.5) * 0.0078125)


# ---------------------------------------------------------------- OHEM loss

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


# ---------------------------------------------------------------- samples

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


# ---------------------------------------------------------------- loader, training

@pytest.mark.parametrize('line, message', [('a.jpg 1 0.1 0.2', 'label 1 needs 4'),
                                           ('a.jpg -2 0.1', 'label -2 needs 10'),
                                           ('a.jpg 3', 'label must be 1, 0, -1 or -2, got 3'), ('a.jpg', 'expected')])
def test_sample_list_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / 'list.txt'
    path.write_text('ok.jpg 0\n' + line + '\n')
    with pytest.raises(ValueError, match=r'list\.txt:2: .*%s' % message):
        read_sample_list(str(path))


def _tiny_list(tmp_path, size, count=8):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(count):
        img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / ('%d.png' % i)), img)
        label = [1, 0, -1, -2][i % 4]
        target = {1: [0.1, 0.2, -0.1, 0.05], 0: [], -1: [0.3, 0.1, 0.2, 0.0],
                  -2: list(np.linspace(0.2, 0.8, 10))}[label]
        lines.append(' '.join(['%d.png' % i, str(label)] + ['%.4f' % v for v in target]))
    path = tmp_path / 'train.txt'
    path.write_text('\n'.join(lines) + '\n')
    return read_sample_list(str(path))


def test_iterator_batches_and_mirror(tmp_path):
    samples = _tiny_list(tmp_path, 12)
    plain = ImageListIter(samples, 12, 8, shuffle=False, mirror=False, with_landmark=True)
    batch = plain.next()
    assert [d.shape for d in batch.data + batch.label] == [(8, 3, 12, 12), (8,), (8, 4), (8, 10)]
    img0 = cv2.imread(samples.paths[0])
    np.testing.assert_array_equal(batch.data[0].asnumpy()[0], transform(img0))
    mirrored = ImageListIter(samples, 12, 8, shuffle=False, mirror=True, with_landmark=True, seed=1).next()
    flips = 0
    for i in range(8):
        label = int(samples.labels[i])
        image = cv2.imread(samples.paths[i])
        got = mirrored.data[0].asnumpy()[i]
        if np.array_equal(got, transform(image)):
            continue
        flips += 1
        target = samples.landmark_targets[i] if label == -2 else samples.bbox_targets[i]
        flipped_image, flipped_target = mirror_sample(image, label, target)
        np.testing.assert_array_equal(got, transform(flipped_image))
        head = 2 if label == -2 else 1
        np.testing.assert_allclose(mirrored.label[head].asnumpy()[i], flipped_target, rtol=1e-6)
    assert 0 < flips < 8


def test_train_checkpoint_and_resume(tmp_path):
    samples = _tiny_list(tmp_path, 24, count=16)
    prefix = str(tmp_path / 'model' / 'rnet')
    first = train_net('rnet', samples, prefix, end_epoch=1, batch_size=8, with_landmark=True, frequent=1)
    resumed = train_net('rnet', samples, prefix, begin_epoch=1, end_epoch=2, batch_size=8,
                        with_landmark=True, frequent=1)
    assert os.path.basename(first) == 'rnet-0001.params' and os.path.basename(resumed) == 'rnet-0002.params'
    saved = mx.sym.load(prefix + '-symbol.json')
    assert saved.list_arguments() == get_symbol('rnet', 'test', with_landmark=True).list_arguments()
    before, _ = load_param_file(first)
    after, _ = load_param_file(resumed)
    assert set(before) == set(after) and any((before[k] != after[k]).asnumpy().any() for k in before)
    detector = MtcnnDetector(released('pnet'), resumed)
    assert detector.rnet.symbol.list_outputs()[-1] == 'fc4_output'


def test_save_checkpoint_is_loadable(tmp_path):
    symbol = get_symbol('pnet', 'test')
    params = init_params(symbol, {'data': (1, 3, 12, 12)})
    path = save_checkpoint(str(tmp_path / 'pnet'), 3, params, {})
    loaded, aux = load_param_file(path)
    assert set(loaded) == set(params) and aux == {}
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp') or p.startswith('.')]


def test_training_that_diverges_stops_naming_the_batch_and_saves_nothing_more(tmp_path, capsys):
    from mtcnn import train
    samples = _tiny_list(tmp_path, 24, count=16)
    prefix = str(tmp_path / 'model' / 'rnet')
    train_net('rnet', samples, prefix, end_epoch=1, batch_size=8, with_landmark=True)
    kept = open(prefix + '-0001.params', 'rb').read()
    with pytest.raises(SystemExit) as exit_:
        train.main(['--net', 'rnet', '--samples', str(tmp_path / 'train.txt'), '--prefix', prefix, '--with-landmark',
                    '--begin-epoch', '1', '--end-epoch', '3', '--batch-size', '8', '--lr', '1e6'])
    error = str(exit_.value.code)
    assert error.startswith('mtcnn.train: error: rnet diverged in epoch 1, batch '), error
    assert re.search(r'NaN or infinity in (loss output|gradient of|parameter) \w+', error), error
    assert error.endswith('nothing after it was saved (last checkpoint: %s-0001.params)' % prefix), error
    assert 'trained' not in capsys.readouterr().out
    assert open(prefix + '-0001.params', 'rb').read() == kept
    assert sorted(os.listdir(tmp_path / 'model')) == ['rnet-0001.params', 'rnet-symbol.json']


@pytest.mark.parametrize('argv, message', [
    (['--lr', 'nan'], "argument --lr: must be a finite number > 0, got 'nan'"),
    (['--lr', '0'], 'argument --lr: must be a finite number > 0'),
    (['--batch-size', '0'], 'argument --batch-size: must be >= 1'),
    (['--end-epoch', '2', '--begin-epoch', '2'], '--end-epoch (2) must be greater than --begin-epoch (2)'),
    (['--lr-epochs', '14,8'], 'argument --lr-epochs: expected increasing epochs'),
    (['--wd', '-1'], 'argument --wd: must be a finite number >= 0'),
    (['--frequent', '0'], 'argument --frequent: must be >= 1'),
    (['--gpus', 'x'], 'argument --gpus: expected comma-separated integers'),
    (['--begin-epoch', '3'], '--begin-epoch 3: no checkpoint {tmp}/m/pnet-0003.params to resume from'),
    (['--samples', '{tmp}/none.txt'], '--samples: no such file: {tmp}/none.txt'),
    (['--prefix', '{tmp}/file/pnet'], '--prefix: {tmp}/file is not a folder'),
])
def test_train_arguments_are_checked_before_any_work(argv, message, tmp_path, capsys):
    from mtcnn import train
    (tmp_path / 'file').write_text('')
    (tmp_path / 'list.txt').write_text('')
    base = {'--samples': str(tmp_path / 'list.txt'), '--prefix': str(tmp_path / 'm' / 'pnet')}
    for flag in argv[::2]:
        base.pop(flag, None)
    argv = ['--net', 'pnet'] + [a for pair in base.items() for a in pair] + \
        [a.replace('{tmp}', str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as exit_:
        train.main(argv)
    assert exit_.value.code == 2
    assert 'error: ' + message.replace('{tmp}', str(tmp_path)) in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ['file', 'list.txt']


def test_train_device_is_gpu_0_when_mxnet_sees_one_else_the_cpu(tmp_path, monkeypatch):
    from mtcnn import train
    from rcnn import runtime
    (tmp_path / 'list.txt').write_text('')
    argv = ['--net', 'pnet', '--samples', str(tmp_path / 'list.txt'), '--prefix', str(tmp_path / 'pnet')]
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 2)
    assert train.parse_args(argv).gpus == [0]
    assert train.parse_args(argv + ['--gpus', '1']).gpus == [1]
    assert train.parse_args(argv + ['--gpus', '']).gpus == []
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 0)
    assert train.parse_args(argv).gpus == []
    with pytest.raises(SystemExit):
        train.parse_args(argv + ['--gpus', '0'])


def test_interrupted_training_does_not_exit_0(tmp_path):
    _tiny_list(tmp_path, 12, count=16)
    command = [sys.executable, '-m', 'mtcnn.train', '--net', 'pnet', '--samples', str(tmp_path / 'train.txt'),
               '--prefix', str(tmp_path / 'pnet'), '--batch-size', '8', '--end-epoch', '100000', '--frequent', '1']
    proc = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if 'Batch [' in line:
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    assert proc.returncode != 0, rest
    assert 'KeyboardInterrupt' in rest


def test_metrics_with_nothing_to_count_are_logged_n_a(tmp_path, caplog):
    """P-Net without landmarks: a batch of negatives only has no box rows (0/0)."""
    rng = np.random.default_rng(0)
    for i in range(8):
        cv2.imwrite(str(tmp_path / ('%d.png' % i)), rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
    (tmp_path / 'train.txt').write_text(''.join('%d.png 0\n' % i for i in range(8)))
    with caplog.at_level(logging.INFO, logger='mtcnn.train'):
        train_net('pnet', read_sample_list(str(tmp_path / 'train.txt')), str(tmp_path / 'pnet'), end_epoch=1,
                  batch_size=8, mirror=False)
    assert 'Epoch[0] Train-BBoxMSE=n/a' in caplog.text
    assert re.search(r'Epoch\[0\] Train-LogLoss=\d+\.\d+', caplog.text)


def test_init_params_prelu_and_fc_scale():
    symbol = get_symbol('rnet', 'train', prelu='decomposed')
    params = init_params(symbol, {'data': (4, 3, 24, 24), 'label': (4,), 'bbox_target': (4, 4)})
    assert (params['prelu1_gamma'].asnumpy() == 0.25).all()
    assert not params['conv1_bias'].asnumpy().any()
    assert params['fc2_weight'].asnumpy().std() < params['conv1_weight'].asnumpy().std()


# ---------------------------------------------------------------- evaluation

def test_match_counts_each_face_once():
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0], [100.0, 100.0, 104.0, 104.0]])
    dets = np.array([[0, 0, 10, 10, 0.9], [1, 1, 10, 10, 0.8], [200, 200, 210, 210, 0.7],
                     [100, 100, 104, 104, 0.6]], np.float64)
    counts = match(dets, boxes, ignore=np.array([False, False, True]))
    assert (counts.faces, counts.detections, counts.true_positives) == (2, 3, 1)
    assert counts.recall == 0.5 and counts.precision == pytest.approx(1 / 3)


# ---------------------------------------------------------------- command lines

def _tiny_dataset(root):
    """Two 120x160 noise images with two 40-px faces each, in the label.txt layout."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(2):
        name = 'e/%d.jpg' % i
        os.makedirs(os.path.join(root, 'images', 'e'), exist_ok=True)
        cv2.imwrite(os.path.join(root, 'images', name), rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
        lines.append('# ' + name)
        for x, y in ((20, 30), (90, 40)):
            points = ' '.join('%d %d 0' % (x + dx, y + dy) for dx, dy in
                              ((12, 14), (28, 14), (20, 22), (14, 30), (26, 30)))
            lines.append('%d %d 40 40 %s 0.1' % (x, y, points))
    with open(os.path.join(root, 'label.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return os.path.join(root, 'label.txt')


def test_command_lines(tmp_path, capsys):
    from mtcnn import evaluate, prepare, train
    label = _tiny_dataset(str(tmp_path / 'data'))
    samples, model = str(tmp_path / 'samples'), str(tmp_path / 'model')
    prepare.main(['--net', 'pnet', '--label', label, '--output', samples, '--min-face', '20', '--no-landmark'])
    assert not os.path.exists(os.path.join(samples, '12', 'landmark_12.txt'))
    crops = {}
    for seed in ('0', '1'):   # --seed chooses the random crops; 0 is the default
        out = str(tmp_path / ('samples-seed%s' % seed))
        prepare.main(['--net', 'pnet', '--label', label, '--output', out, '--min-face', '20', '--no-landmark',
                      '--seed', seed])
        crops[seed] = open(os.path.join(out, '12', 'positive_12.txt')).read()
    assert crops['0'] == open(os.path.join(samples, '12', 'positive_12.txt')).read() != crops['1']
    weights = {}
    for seed in ('0', '1'):   # --seed chooses the initial weights
        train.main(['--net', 'pnet', '--samples', os.path.join(samples, 'train_12.txt'), '--prefix',
                    os.path.join(model, 'seed%s' % seed, 'pnet'), '--end-epoch', '1', '--batch-size', '16',
                    '--lr-epochs', '', '--no-mirror', '--seed', seed])
        weights[seed] = load_param_file(os.path.join(model, 'seed%s' % seed, 'pnet-0001.params'))[0]
    pnet = os.path.join(model, 'seed0', 'pnet-0001.params')
    assert not np.array_equal(weights['0']['conv1_weight'].asnumpy(), weights['1']['conv1_weight'].asnumpy())
    prepare.main(['--net', 'rnet', '--label', label, '--output', samples, '--min-face', '20', '--pnet', pnet,
                  '--min-face-size', '20', '--threshold', '0,0,0'])
    assert read_sample_list(os.path.join(samples, 'train_24.txt')).labels.tolist().count(-2) > 0
    evaluate.main(['--label', label, '--pnet', pnet, '--min-face-size', '20', '--min-gt', '0'])
    assert 'faces 4 detections' in capsys.readouterr().out


def test_demo_writes_annotated_image(tmp_path, capsys, cpu_runtime_requests):
    from mtcnn import demo
    out = tmp_path / 'out.jpg'
    demo.main(['--image', str(require_shared('assets/images/test01.jpg')), '--out', str(out),
               '--pnet', released('pnet'), '--rnet', released('rnet'), '--onet', released('onet')])
    assert '8 faces' in capsys.readouterr().out
    assert cpu_runtime_requests == ['cpu']
    assert cv2.imread(str(out)).shape == (480, 640, 3)


def test_boxes_outside_the_image_give_zero_crops(released_detector):
    img = np.full((60, 80, 3), 200, np.uint8)
    dets = np.array([[100.0, 10.0, 130.0, 40.0, 0.9],    # right of the image
                     [10.0, 10.0, 5.0, 4.0, 0.9],        # degenerate (x2 < x1)
                     [-10.0, -10.0, 19.0, 19.0, 0.9]])   # partly inside
    clipped, squared, data = released_detector._crops(img, dets, 24)
    assert data.shape == (3, 3, 24, 24)
    zero = (0 - 127.5) * 0.0078125
    assert (data[0] == zero).all() and (data[1] == zero).all()
    assert (data[2, :, :7] == zero).all() and (data[2, :, :, :7] == zero).all()  # 10 of 30 px outside
    assert (data[2, :, -6:, -6:] != zero).all()
    np.testing.assert_array_equal(clipped[2, :4], [0, 0, 19, 19])
    np.testing.assert_array_equal(squared[2, :4], [-10, -10, 19, 19])
    released_detector.detect_rnet(img, dets)
