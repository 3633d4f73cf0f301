"""RetinaFace-mnet: MobileNet-0.25 (GluonCV ``mobilenet0.25`` names) + the ``rf_*`` head.

The deploy symbol reproduces the released ``mnet.25-symbol.json`` parameter for
parameter: backbone ``mobilenet0_conv{0..26}`` (no bias) with
``mobilenet0_batchnorm{0..26}`` (eps 1e-5 as Gluon exports it), C3/C4/C5 =
``mobilenet0_relu{10,22,26}_fwd`` (strides 8/16/32, 64/128/256 channels), FPN with
``HEAD_FILTER_NUM`` (64) filters and SSH modules of F/2 + 2 * F/4 channels.
"""
import mxnet as mx

from rcnn.symbol.symbol_common import deploy_outputs, fpn_ssh_features, train_outputs

_MULTIPLIER = 0.25
# (depthwise channels, pointwise channels, stride) of MobileNet v1's 13 separable blocks.
_BLOCKS = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)] \
    + [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
# Indices of the ReLUs feeding the FPN: last activations at strides 8, 16, 32.
_C3, _C4, _C5 = 10, 22, 26

HEAD_NAMES = {
    'c3_lateral': 'rf_c3_lateral', 'c3_up': 'rf_c3_upsampling',
    'c2_lateral': 'rf_c2_lateral', 'c2_aggr': 'rf_c2_aggr',
    'c1_lateral': 'rf_c1_red_conv', 'c2_up': 'rf_c2_upsampling', 'c1_aggr': 'rf_c1_aggr',
    'det8': 'rf_c1_det', 'det16': 'rf_c2_det', 'det32': 'rf_c3_det',
}


def _conv_bn_relu(data, index, num_filter, kernel, stride, num_group=1):
    prefix = 'mobilenet0_'
    pad = (kernel // 2, kernel // 2)
    weight = mx.sym.Variable('%sconv%d_weight' % (prefix, index))
    body = mx.sym.Convolution(data=data, weight=weight, kernel=(kernel, kernel), stride=(stride, stride), pad=pad,
                              num_filter=num_filter, num_group=num_group, no_bias=True,
                              name='%sconv%d_fwd' % (prefix, index))
    bn = '%sbatchnorm%d' % (prefix, index)
    body = mx.sym.BatchNorm(data=body,
                            gamma=mx.sym.Variable(bn + '_gamma', init=mx.init.One()),
                            beta=mx.sym.Variable(bn + '_beta', init=mx.init.Zero()),
                            moving_mean=mx.sym.Variable(bn + '_running_mean', init=mx.init.Zero()),
                            moving_var=mx.sym.Variable(bn + '_running_var', init=mx.init.One()),
                            fix_gamma=False, eps=1e-5, momentum=0.9, name=bn + '_fwd')
    return mx.sym.Activation(data=body, act_type='relu', name='%srelu%d_fwd' % (prefix, index))


def mobilenet025_features(data):
    """C3, C4, C5 of MobileNet-0.25: strides 8, 16, 32 with 64, 128, 256 channels."""
    body = _conv_bn_relu(data, 0, int(32 * _MULTIPLIER), 3, 2)
    feats = {}
    for block, (dw_channels, channels, stride) in enumerate(_BLOCKS):
        dw_channels, channels = int(dw_channels * _MULTIPLIER), int(channels * _MULTIPLIER)
        # Block k holds layers 2k + 1 (depthwise 3x3) and 2k + 2 (pointwise 1x1).
        body = _conv_bn_relu(body, 2 * block + 1, dw_channels, 3, stride, num_group=dw_channels)
        body = _conv_bn_relu(body, 2 * block + 2, channels, 1, 1)
        feats[2 * block + 2] = body
    return feats[_C3], feats[_C4], feats[_C5]


def _features(cfg):
    data = mx.sym.Variable('data')
    c8, c16, c32 = mobilenet025_features(data)
    num_filter = cfg.HEAD_FILTER_NUM
    det_filter = num_filter * cfg.CONTEXT_FILTER_RATIO
    return fpn_ssh_features(c8, c16, c32, HEAD_NAMES, num_filter, det_filter // 2, det_filter // 4)


def get_mnet_test(cfg):
    """Deploy symbol: input ``data`` (1, 3, H, W) RGB 0..255, outputs per stride 32, 16, 8."""
    return deploy_outputs(_features(cfg), cfg)


def get_mnet_train(cfg, num_devices=1):
    """Training symbol: ``data`` plus the label variables of ``symbol_common.label_names``.

    ``num_devices``: contexts the batch is split over (see ``symbol_common.train_outputs``).
    """
    return train_outputs(_features(cfg), cfg, num_devices)
