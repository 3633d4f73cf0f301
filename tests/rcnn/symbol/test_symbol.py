"""RetinaFace symbols: the released mnet.25 graph rebuilt from code, ResNet-50 names and
shapes, training outputs and their gradients, LAYER_FIX."""
import json

import mxnet as mx
import numpy as np
import pytest
from support import make_cfg, require_shared

from rcnn.symbol import get_fixed_params, get_symbol_test, get_symbol_train, label_names
from rcnn.symbol.symbol_common import stride_train_outputs

MNET_PREFIX = 'assets/models/retinaface-mnet025/mnet.25'
STRIDES = (32, 16, 8)
# Attributes the released JSON (exported by Gluon) spells out at their MXNet default values.
DEFAULT_ATTRS = {'Convolution': {'dilate': '(1, 1)', 'layout': 'NCHW'},
                 'BatchNorm': {'axis': '1', 'use_global_stats': 'False'}}


def named_shapes(symbol, **shapes):
    args, outs, aux = symbol.infer_shape(**shapes)
    return (dict(zip(symbol.list_arguments(), args)), dict(zip(symbol.list_auxiliary_states(), aux)),
            list(zip(symbol.list_outputs(), outs)))


def released_mnet_symbol():
    return mx.sym.load(str(require_shared(MNET_PREFIX + '-symbol.json')))


def test_mnet_deploy_has_the_released_parameters():
    ours = named_shapes(get_symbol_test('mnet', make_cfg()), data=(1, 3, 640, 640))
    released = named_shapes(released_mnet_symbol(), data=(1, 3, 640, 640))
    assert set(ours[0]) == set(released[0])
    assert set(ours[1]) == set(released[1])
    assert ours[0] == released[0]
    assert ours[1] == released[1]
    assert ours[2] == released[2]
    assert [name for name, _ in ours[2]] == ['face_rpn_%s_stride%d_output' % (kind, s) for s in STRIDES
                                             for kind in ('cls_prob_reshape', 'bbox_pred', 'landmark_pred')]


def test_mnet_deploy_layers_match_the_released_json():
    """Same op and attributes (eps, momentum, fix_gamma, softmax axis, upsampling, ...) per named layer."""
    ours = {n['name']: n for n in json.loads(get_symbol_test('mnet', make_cfg()).tojson())['nodes']
            if n['op'] not in ('null', 'Crop', 'elemwise_add')}
    released = {n['name']: n for n in json.loads(released_mnet_symbol().tojson())['nodes']
                if n['op'] not in ('null', 'Crop', 'elemwise_add')}
    assert set(ours) == set(released)
    for name, node in released.items():
        defaults = DEFAULT_ATTRS.get(node['op'], {})
        expected = {k: v for k, v in node.get('attrs', {}).items() if defaults.get(k) != v}
        assert ours[name]['op'] == node['op'], name
        assert ours[name].get('attrs', {}) == expected, name
    assert released['mobilenet0_batchnorm0_fwd']['attrs']['eps'] == '1e-05'
    assert released['rf_c1_det_conv1_bn']['attrs']['eps'] == '2e-05'
    assert released['face_rpn_cls_prob_stride8']['op'] == 'softmax'


def test_mnet_deploy_computes_the_released_outputs():
    params = str(require_shared(MNET_PREFIX + '-0000.params'))
    symbol, arg_params, aux_params = mx.model.load_checkpoint(params[:-len('-0000.params')], 0)
    data = mx.nd.array(np.random.RandomState(0).uniform(0, 255, (1, 3, 96, 160)))
    outputs = []
    for sym in (get_symbol_test('mnet', make_cfg()), symbol):
        exe = sym.bind(mx.cpu(), args=dict(arg_params, data=data), aux_states=aux_params, grad_req='null')
        exe.forward(is_train=False)
        outputs.append([o.asnumpy() for o in exe.outputs])
    for ours, released in zip(*outputs):
        np.testing.assert_array_equal(ours, released)


@pytest.mark.parametrize('network', ['mnet', 'resnet'])
@pytest.mark.parametrize('height,width', [(640, 640), (333, 517)])
def test_deploy_output_shapes(network, height, width):
    _, _, outputs = named_shapes(get_symbol_test(network, make_cfg(network)), data=(1, 3, height, width))
    shapes = [shape for _, shape in outputs]
    expected = []
    for stride in STRIDES:
        # Each stride-2 layer halves with rounding up (padding 1, kernel 3 or 1).
        h, w = height, width
        for _ in range(int(np.log2(stride))):
            h, w = (h + 1) // 2, (w + 1) // 2
        expected += [(1, 4, h, w), (1, 8, h, w), (1, 20, h, w)]
    assert shapes == expected


def test_resnet_parameter_names_follow_the_model_zoo_and_released_head():
    args, aux, _ = named_shapes(get_symbol_test('resnet', make_cfg('resnet')), data=(1, 3, 640, 640))
    expected = {
        'bn_data_gamma': (3,), 'conv0_weight': (64, 3, 7, 7), 'bn0_gamma': (64,),
        'stage1_unit1_conv1_weight': (64, 64, 1, 1), 'stage1_unit1_sc_weight': (256, 64, 1, 1),
        'stage2_unit1_conv2_weight': (128, 128, 3, 3), 'stage3_unit6_conv3_weight': (1024, 256, 1, 1),
        'stage4_unit3_bn3_beta': (512,), 'bn1_gamma': (2048,),
        'ssh_c3_lateral_weight': (256, 2048, 1, 1), 'ssh_c2_lateral_weight': (256, 512, 1, 1),
        'ssh_c2_aggr_weight': (256, 256, 3, 3), 'ssh_m1_red_conv_weight': (256, 256, 1, 1),
        'ssh_c1_aggr_bias': (256,), 'ssh_m3_det_conv1_weight': (256, 256, 3, 3),
        'ssh_m2_det_context_conv1_weight': (128, 256, 3, 3), 'ssh_m1_det_context_conv3_2_weight': (128, 128, 3, 3),
        'face_rpn_cls_score_stride32_weight': (4, 512, 1, 1), 'face_rpn_bbox_pred_stride16_weight': (8, 512, 1, 1),
        'face_rpn_landmark_pred_stride8_weight': (20, 512, 1, 1),
    }
    assert {k: args[k] for k in expected} == expected
    assert aux['bn_data_moving_var'] == (3,) and aux['bn1_moving_mean'] == (2048,)
    units = {name.split('_')[0] + '_' + name.split('_')[1] for name in args if name.startswith('stage')}
    assert len(units) == 3 + 4 + 6 + 3
    prefixes = ('data', 'bn_data', 'conv0', 'bn0', 'bn1', 'stage', 'ssh_c3_lateral', 'ssh_c2_lateral', 'ssh_c2_aggr',
                'ssh_m1_red_conv', 'ssh_c1_aggr', 'ssh_m1_det', 'ssh_m2_det', 'ssh_m3_det', 'face_rpn_')
    assert [name for name in args if not name.startswith(prefixes)] == []


@pytest.mark.parametrize('network', ['mnet', 'resnet'])
def test_train_symbol_inputs_and_output_order(network):
    cfg = make_cfg(network)
    symbol = get_symbol_train(network, cfg)
    batch, anchors = 2, cfg.NUM_ANCHORS
    shapes = {'data': (batch, 3, 640, 640)}
    for stride in STRIDES:
        hw = (640 // stride) ** 2
        shapes.update({'face_label_stride%d' % stride: (batch, anchors * hw),
                       'face_bbox_target_stride%d' % stride: (batch, 4 * anchors, hw),
                       'face_bbox_weight_stride%d' % stride: (batch, 4 * anchors, hw),
                       'face_landmark_target_stride%d' % stride: (batch, 10 * anchors, hw),
                       'face_landmark_weight_stride%d' % stride: (batch, 10 * anchors, hw)})
    assert [n for n in symbol.list_arguments() if n in shapes] == ['data'] + label_names(cfg)
    assert label_names(cfg) == [n for n in shapes if n != 'data']
    _, _, outputs = named_shapes(symbol, **shapes)
    expected = []
    for stride in STRIDES:
        hw = (640 // stride) ** 2
        expected += [('face_rpn_cls_prob_stride%d_output' % stride, (batch, 2, anchors * hw)),
                     ('face_rpn_label_stride%d_output' % stride, (batch, anchors * hw)),
                     ('face_rpn_bbox_loss_stride%d_output' % stride, (batch, 4 * anchors, hw)),
                     ('face_rpn_bbox_weight_stride%d_output' % stride, (batch, 4 * anchors, hw)),
                     ('face_rpn_landmark_loss_stride%d_output' % stride, (batch, 10 * anchors, hw)),
                     ('face_rpn_landmark_weight_stride%d_output' % stride, (batch, 10 * anchors, hw))]
    assert outputs == expected
    # The deploy symbol is the training symbol's parameters without the losses.
    deploy_args = set(get_symbol_test(network, cfg).list_arguments())
    assert deploy_args == set(symbol.list_arguments()) - set(label_names(cfg))


def test_train_symbol_without_landmarks_has_four_outputs_per_stride():
    cfg = make_cfg(FACE_LANDMARK=False)
    symbol = get_symbol_train('mnet', cfg)
    assert len(symbol.list_outputs()) == 4 * len(STRIDES)
    assert not any('landmark' in name for name in symbol.list_arguments())
    assert len(get_symbol_test('mnet', cfg).list_outputs()) == 2 * len(STRIDES)


def test_invalid_settings_raise():
    with pytest.raises(ValueError, match='unknown network'):
        get_symbol_test('vgg', make_cfg())
    with pytest.raises(ValueError, match='LR_MODE'):
        get_symbol_train('mnet', make_cfg(LR_MODE=2))
    with pytest.raises(ValueError, match='LR_MODE 1'):
        get_symbol_train('mnet', make_cfg(LR_MODE=1, RPN_ENABLE_OHEM=0))
    with pytest.raises(ValueError, match='OHEM_MODE'):
        get_symbol_train('mnet', make_cfg(OHEM_MODE=0))


def test_fixed_params_follow_the_config_regexes():
    cfg = make_cfg('mnet', FIXED_PARAMS=['^mobilenet0_conv[01]_', '^mobilenet0_batchnorm0_'])
    symbol = get_symbol_train('mnet', cfg)
    assert get_fixed_params(symbol, cfg) == ['mobilenet0_conv0_weight', 'mobilenet0_batchnorm0_gamma',
                                             'mobilenet0_batchnorm0_beta', 'mobilenet0_conv1_weight']
    # The mnet preset fixes some first backbone layers, nothing of the head.
    preset = get_fixed_params(symbol, make_cfg('mnet'))
    assert preset and all(name.startswith('mobilenet0_') for name in preset)
    # Without LAYER_FIX (the resnet preset) nothing is fixed.
    assert get_fixed_params(get_symbol_train('resnet', make_cfg('resnet')), make_cfg('resnet')) == []
    # Upsampling weights are always fixed under LAYER_FIX.
    up = mx.sym.Deconvolution(mx.sym.Variable('data'), num_filter=2, kernel=(4, 4), name='x_upsampling')
    assert get_fixed_params(up, make_cfg(FIXED_PARAMS=[])) == ['x_upsampling_weight']


# ---- losses of one stride, on small hand-made inputs --------------------------------------

A, H, W, BATCH = 2, 8, 8, 2
N = A * H * W
SIGMA2 = 9.0  # smooth_l1 scalar 3.0 squared


def smooth_l1_grad(x):
    return np.where(np.abs(x) < 1.0 / SIGMA2, SIGMA2 * x, np.sign(x))


def run_losses(cfg, labels, seed=0):
    """Forward/backward of one stride's losses; returns (inputs, outputs, gradients) as NumPy."""
    rng = np.random.RandomState(seed)
    inputs = {
        'cls_score': rng.normal(0, 1, (BATCH, 2 * A, H, W)),
        'bbox_pred': rng.normal(0, 0.2, (BATCH, 4 * A, H, W)),
        'landmark_pred': rng.normal(0, 0.2, (BATCH, 10 * A, H, W)),
        'face_label_stride8': labels,
        'face_bbox_target_stride8': rng.normal(0, 0.2, (BATCH, 4 * A, H * W)),
        'face_landmark_target_stride8': rng.normal(0, 0.2, (BATCH, 10 * A, H * W)),
    }
    # Regression weights as the loader writes them: 1 on positives only, (a, k) channels.
    positive = (labels > 0).reshape(BATCH, A, 1, H * W)
    inputs['face_bbox_weight_stride8'] = np.broadcast_to(positive, (BATCH, A, 4, H * W)).reshape(BATCH, 4 * A, -1) * 1.0
    inputs['face_landmark_weight_stride8'] = np.broadcast_to(positive, (BATCH, A, 10, H * W)).reshape(
        BATCH, 10 * A, -1) * 1.0
    symbols = [mx.sym.Variable(n) for n in ('cls_score', 'bbox_pred', 'landmark_pred')]
    group = mx.sym.Group(stride_train_outputs(*symbols, stride=8, cfg=cfg))
    args = {k: mx.nd.array(v) for k, v in inputs.items()}
    grads = {k: mx.nd.zeros(v.shape) for k, v in inputs.items() if k in ('cls_score', 'bbox_pred', 'landmark_pred')}
    exe = group.bind(mx.cpu(), args=args, args_grad=grads,
                     grad_req={k: ('write' if k in grads else 'null') for k in inputs})
    exe.forward(is_train=True)
    exe.backward()
    return inputs, [o.asnumpy() for o in exe.outputs], {k: v.asnumpy() for k, v in grads.items()}


def make_labels(num_pos, num_ignored, seed=1):
    rng = np.random.RandomState(seed)
    labels = np.zeros((BATCH, N))
    for b in range(BATCH):
        idx = rng.permutation(N)
        labels[b, idx[:num_pos]] = 1
        labels[b, idx[num_pos:num_pos + num_ignored]] = -1
    return labels


def cls_grad_per_anchor(grad):
    """(B, 2A, H, W) score gradient -> (B, 2, A*H*W) in the label order."""
    return grad.reshape(BATCH, 2, N)


@pytest.mark.parametrize('ohem', [0, 2])
def test_losses_ignore_labels_and_zero_weights(ohem):
    cfg = make_cfg(RPN_ENABLE_OHEM=ohem)
    labels = make_labels(num_pos=10, num_ignored=30)
    inputs, outputs, grads = run_losses(cfg, labels)
    used = outputs[1]  # labels after OHEM (BlockGrad)
    cls_grad = cls_grad_per_anchor(grads['cls_score'])
    assert np.all(cls_grad[np.broadcast_to((used == -1)[:, None, :], cls_grad.shape)] == 0)
    # Softmax gradient (p - onehot) / number of valid labels in the batch.
    prob = outputs[0]
    onehot = np.stack([used == 0, used == 1], axis=1)
    valid = used != -1
    expected = (prob - onehot) * valid[:, None, :] / valid.sum()
    np.testing.assert_allclose(cls_grad, expected, rtol=1e-4, atol=1e-7)
    if ohem == 0:
        np.testing.assert_array_equal(used, labels)
    # Regression: smooth L1 gradient times the weight, scaled 1/256 (landmarks 0.4 * 2.5 / 256).
    for kind, scale in (('bbox', 1.0 / 256), ('landmark', 0.4 * cfg.LANDMARK_LR_MULT / 256)):
        weight = inputs['face_%s_weight_stride8' % kind]
        diff = (inputs['%s_pred' % kind].reshape(weight.shape) - inputs['face_%s_target_stride8' % kind]) * weight
        expected = smooth_l1_grad(diff) * weight * scale
        np.testing.assert_allclose(grads['%s_pred' % kind].reshape(weight.shape), expected, rtol=1e-4, atol=1e-8)
        assert np.all(grads['%s_pred' % kind].reshape(weight.shape)[weight == 0] == 0)
        assert np.abs(expected).sum() > 0


def test_ohem_in_the_symbol_drops_regression_of_unkept_positives():
    cfg = make_cfg(RPN_ENABLE_OHEM=2)
    labels = make_labels(num_pos=100, num_ignored=0)
    inputs, outputs, grads = run_losses(cfg, labels)
    used, bbox_weight = outputs[1], outputs[3]
    assert np.all((used == 1).sum(axis=1) == 64)
    assert np.all((used != -1).sum(axis=1) == 64 + (N - 100))  # every negative: 28 < 256 - 64
    # bbox weight (B, 4A, HW) is 1 exactly on the kept positives, channel a * 4 + k.
    kept = (used == 1).reshape(BATCH, A, 1, H * W)
    np.testing.assert_array_equal(bbox_weight, np.broadcast_to(kept, (BATCH, A, 4, H * W)).reshape(BATCH, 4 * A, -1))
    dropped = ((labels == 1) & (used == -1)).reshape(BATCH, A, 1, H, W)
    bbox_grad = grads['bbox_pred'].reshape(BATCH, A, 4, H, W)
    assert np.all(bbox_grad[np.broadcast_to(dropped, bbox_grad.shape)] == 0)
    assert np.all(np.abs(bbox_grad).sum(axis=2)[kept.reshape(BATCH, A, H, W)] > 0)


def test_lr_mode_1_divides_regression_by_the_kept_positives():
    cfg = make_cfg(RPN_ENABLE_OHEM=2, LR_MODE=1)
    labels = make_labels(num_pos=100, num_ignored=0)
    inputs, outputs, grads = run_losses(cfg, labels)
    count = (outputs[1] == 1).sum() + 0.001
    weight = outputs[3]
    diff = (inputs['bbox_pred'].reshape(weight.shape) - inputs['face_bbox_target_stride8']) * weight
    np.testing.assert_allclose(grads['bbox_pred'].reshape(weight.shape),
                               smooth_l1_grad(diff) * weight * 0.25 / count, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(outputs[2], np.where(np.abs(diff) < 1 / SIGMA2, 0.5 * SIGMA2 * diff ** 2,
                                                    np.abs(diff) - 0.5 / SIGMA2) / count, rtol=1e-4, atol=1e-9)
