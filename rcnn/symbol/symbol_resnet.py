"""RetinaFace-R50: MXNet model-zoo ResNet-50 (v2, pre-activation) + the ``ssh_*`` head.

Backbone names follow the model zoo's ``resnet-50`` so its ImageNet weights and the
released RetinaFace-R50 load unchanged: ``bn_data`` (fixed gamma), ``conv0`` 7x7/2,
``bn0``, ``relu0``, ``pooling0`` 3x3/2 max, ``stage{1..4}_unit{k}_{bn1,conv1,bn2,conv2,
bn3,conv3,sc}`` with (3, 4, 6, 3) bottleneck units, then ``bn1``, ``relu1``.

As in the released model the FPN taps are ``stage3_unit1_relu2`` (stride 8, 256
channels), ``stage4_unit1_relu2`` (stride 16, 512) and ``relu1`` (stride 32, 2048),
the lateral/aggregation convolutions have ``HEAD_FILTER_NUM`` (256) filters and the
SSH modules are wider than mnet's: conv1 F and two context branches of F/2 (F = 256 *
CONTEXT_FILTER_RATIO), so every ``face_rpn_*`` convolution sees 2F = 512 channels.
"""
import mxnet as mx

from rcnn.symbol.symbol_common import deploy_outputs, fpn_ssh_features, train_outputs

_UNITS = (3, 4, 6, 3)
_FILTERS = (256, 512, 1024, 2048)
_BN = dict(fix_gamma=False, eps=2e-5, momentum=0.9)

HEAD_NAMES = {
    'c3_lateral': 'ssh_c3_lateral', 'c3_up': 'ssh_c3_up',
    'c2_lateral': 'ssh_c2_lateral', 'c2_aggr': 'ssh_c2_aggr',
    'c1_lateral': 'ssh_m1_red_conv', 'c2_up': 'ssh_m2_red_up', 'c1_aggr': 'ssh_c1_aggr',
    'det8': 'ssh_m1_det', 'det16': 'ssh_m2_det', 'det32': 'ssh_m3_det',
}


def _conv(data, name, num_filter, kernel, stride):
    pad = (kernel // 2, kernel // 2)
    return mx.sym.Convolution(data=data, num_filter=num_filter, kernel=(kernel, kernel), stride=(stride, stride),
                              pad=pad, no_bias=True, name=name)


def _bottleneck(data, name, num_filter, stride, dim_match):
    """Pre-activation bottleneck; returns (output, relu2) (relu2 is the FPN tap of unit 1)."""
    mid = num_filter // 4
    act1 = mx.sym.Activation(mx.sym.BatchNorm(data, name=name + '_bn1', **_BN), act_type='relu', name=name + '_relu1')
    body = _conv(act1, name + '_conv1', mid, 1, 1)
    act2 = mx.sym.Activation(mx.sym.BatchNorm(body, name=name + '_bn2', **_BN), act_type='relu', name=name + '_relu2')
    body = _conv(act2, name + '_conv2', mid, 3, stride)
    body = mx.sym.Activation(mx.sym.BatchNorm(body, name=name + '_bn3', **_BN), act_type='relu', name=name + '_relu3')
    body = _conv(body, name + '_conv3', num_filter, 1, 1)
    shortcut = data if dim_match else _conv(act1, name + '_sc', num_filter, 1, stride)
    return body + shortcut, act2


def resnet50_features(data):
    """Stride-8, 16 and 32 taps of ResNet-50 (256, 512 and 2048 channels)."""
    body = mx.sym.BatchNorm(data, fix_gamma=True, eps=2e-5, momentum=0.9, name='bn_data')
    body = _conv(body, 'conv0', 64, 7, 2)
    body = mx.sym.Activation(mx.sym.BatchNorm(body, name='bn0', **_BN), act_type='relu', name='relu0')
    body = mx.sym.Pooling(body, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='max', name='pooling0')
    taps = {}
    for stage, (units, num_filter) in enumerate(zip(_UNITS, _FILTERS), start=1):
        for unit in range(1, units + 1):
            stride = 2 if unit == 1 and stage > 1 else 1
            body, relu2 = _bottleneck(body, 'stage%d_unit%d' % (stage, unit), num_filter, stride, dim_match=unit > 1)
            if unit == 1:
                taps[stage] = relu2
    body = mx.sym.Activation(mx.sym.BatchNorm(body, name='bn1', **_BN), act_type='relu', name='relu1')
    return taps[3], taps[4], body


def _features(cfg):
    data = mx.sym.Variable('data')
    c8, c16, c32 = resnet50_features(data)
    num_filter = cfg.HEAD_FILTER_NUM
    det_filter = num_filter * cfg.CONTEXT_FILTER_RATIO
    return fpn_ssh_features(c8, c16, c32, HEAD_NAMES, num_filter, det_filter, det_filter // 2)


def get_resnet_test(cfg):
    """Deploy symbol: input ``data`` (1, 3, H, W) RGB 0..255, outputs per stride 32, 16, 8."""
    return deploy_outputs(_features(cfg), cfg)


def get_resnet_train(cfg, num_devices=1):
    """Training symbol: ``data`` plus the label variables of ``symbol_common.label_names``.

    ``num_devices``: contexts the batch is split over (see ``symbol_common.train_outputs``).
    """
    return train_outputs(_features(cfg), cfg, num_devices)
