"""Shared RetinaFace head: conv+BN blocks, the FPN merge, SSH detection modules and
the per-stride outputs of the deploy and the training symbols.

The heads' tensors, the deploy outputs and the training labels are those of
``rcnn.contract``, which names them.

Training outputs, in this order for every stride (the training metrics index them;
the order of the original ``get_out``):

====  ==========================================  =============================
 k    output                                      shape
====  ==========================================  =============================
 0    ``face_rpn_cls_prob_stride{s}``             (B, 2, A*H*W) SoftmaxOutput
 1    ``face_rpn_label_stride{s}``                (B, A*H*W) label after OHEM
 2    ``face_rpn_bbox_loss_stride{s}``            (B, 4A, H*W) smooth L1
 3    ``face_rpn_bbox_weight_stride{s}``          (B, 4A, H*W) weight after OHEM
 4    ``face_rpn_landmark_loss_stride{s}``        (B, 10A, H*W) smooth L1
 5    ``face_rpn_landmark_weight_stride{s}``      (B, 10A, H*W) weight after OHEM
====  ==========================================  =============================

1, 3 and 5 are BlockGrad copies; 4 and 5 exist only with ``FACE_LANDMARK``.
"""
import re

import mxnet as mx

from rcnn.contract import BBOX_PRED_LEN, LANDMARK_PRED_LEN, anchor_attr, tensor_name
from rcnn.symbol import rpn_fpn_ohem3

__all__ = ['FEATURE_STRIDES', 'conv_bn', 'conv_only', 'ssh_detection_module', 'fpn_ssh_features', 'deploy_outputs',
           'stride_train_outputs', 'train_outputs', 'get_fixed_params']

# The strides whose features the FPN of every network gives (fpn_ssh_features).
FEATURE_STRIDES = (32, 16, 8)

# Smooth L1 sigma of the original losses: quadratic below |x| < 1/9.
SMOOTH_L1_SCALAR = 3.0


def conv_bn(data, name, num_filter, kernel=(1, 1), pad=(0, 0), stride=(1, 1), act=True, bias_wd_mult=0.0):
    """Convolution with a bias, BatchNorm ``{name}_bn`` and, if ``act``, ReLU ``{name}_relu``.

    The weight is initialised Normal(0.01); the bias is zero with lr_mult 2 and
    wd_mult ``bias_wd_mult`` (1 for the FPN convolutions, 0 for the SSH modules).
    """
    weight = mx.sym.Variable('%s_weight' % name, init=mx.init.Normal(0.01), attr={'__lr_mult__': '1.0'})
    bias = mx.sym.Variable('%s_bias' % name, init=mx.init.Constant(0.0),
                           attr={'__lr_mult__': '2.0', '__wd_mult__': str(bias_wd_mult)})
    body = mx.sym.Convolution(data=data, weight=weight, bias=bias, kernel=kernel, pad=pad, stride=stride,
                              num_filter=num_filter, name=name)
    body = mx.sym.BatchNorm(data=body, fix_gamma=False, eps=2e-5, momentum=0.9, name=name + '_bn')
    if act:
        body = mx.sym.Activation(data=body, act_type='relu', name=name + '_relu')
    return body


def conv_only(data, name, num_filter, weight_attr=None):
    """1x1 prediction convolution: Normal(0.01) weight (with ``weight_attr`` added to its
    attributes), zero bias (lr_mult 2, wd_mult 0)."""
    weight = mx.sym.Variable('%s_weight' % name, init=mx.init.Normal(0.01),
                             attr=dict({'__lr_mult__': '1.0'}, **(weight_attr or {})))
    bias = mx.sym.Variable('%s_bias' % name, init=mx.init.Constant(0.0),
                           attr={'__lr_mult__': '2.0', '__wd_mult__': '0.0'})
    return mx.sym.Convolution(data=data, weight=weight, bias=bias, kernel=(1, 1), pad=(0, 0), stride=(1, 1),
                              num_filter=num_filter, name=name)


def ssh_detection_module(body, name, conv1_filter, context_filter):
    """SSH module: a 3x3 branch and two context branches (5x5 and 7x7 receptive fields).

    ``{name}_conv1`` (3x3, ``conv1_filter``, no ReLU) is concatenated with
    ``{name}_context_conv2`` and ``{name}_context_conv3_2`` (``context_filter`` each,
    no ReLU), both on ``{name}_context_conv1`` (+ReLU; conv3_2 after conv3_1 +ReLU);
    the concatenation goes through ReLU ``{name}_concat_relu``.
    Output channels: conv1_filter + 2 * context_filter.
    """
    kw = dict(kernel=(3, 3), pad=(1, 1))
    conv3x3 = conv_bn(body, name + '_conv1', conv1_filter, act=False, **kw)
    dimred = conv_bn(body, name + '_context_conv1', context_filter, **kw)
    conv5x5 = conv_bn(dimred, name + '_context_conv2', context_filter, act=False, **kw)
    conv7x7 = conv_bn(dimred, name + '_context_conv3_1', context_filter, **kw)
    conv7x7 = conv_bn(conv7x7, name + '_context_conv3_2', context_filter, act=False, **kw)
    out = mx.sym.concat(conv3x3, conv5x5, conv7x7, dim=1, name=name + '_concat')
    return mx.sym.Activation(data=out, act_type='relu', name=name + '_concat_relu')


def _upsample_add(top, lateral, up_name):
    """lateral + nearest x2 upsampling of ``top`` cropped to the lateral's size (odd inputs)."""
    up = mx.sym.UpSampling(top, scale=2, sample_type='nearest', workspace=512, num_args=1, name=up_name)
    up = mx.sym.Crop(up, lateral)
    return lateral + up


def fpn_ssh_features(c8, c16, c32, names, num_filter, det_conv1_filter, det_context_filter):
    """The FPN merge of C3/C4/C5 and one SSH module per stride.

    Args:
        c8, c16, c32: backbone activations at strides 8, 16, 32.
        names: layer names, keys ``c3_lateral, c3_up, c2_lateral, c2_aggr, c1_lateral,
            c2_up, c1_aggr, det8, det16, det32`` (the released models differ: ``rf_*``
            for mnet, ``ssh_*`` for ResNet-50).
        num_filter: channels of the lateral and aggregation convolutions.
        det_conv1_filter, det_context_filter: SSH branch widths.

    Returns:
        {stride: SSH output symbol} for strides 8, 16, 32.
    """
    conv_kw = dict(bias_wd_mult=1.0)
    c3 = conv_bn(c32, names['c3_lateral'], num_filter, **conv_kw)
    c2 = conv_bn(c16, names['c2_lateral'], num_filter, **conv_kw)
    c2 = _upsample_add(c3, c2, names['c3_up'])
    c2 = conv_bn(c2, names['c2_aggr'], num_filter, kernel=(3, 3), pad=(1, 1), **conv_kw)
    c1 = conv_bn(c8, names['c1_lateral'], num_filter, **conv_kw)
    c1 = _upsample_add(c2, c1, names['c2_up'])
    c1 = conv_bn(c1, names['c1_aggr'], num_filter, kernel=(3, 3), pad=(1, 1), **conv_kw)
    return {stride: ssh_detection_module(feat, names['det%d' % stride], det_conv1_filter, det_context_filter)
            for stride, feat in zip(FEATURE_STRIDES, (c3, c2, c1))}


def _check_strides(feats, cfg):
    missing = [s for s in cfg.RPN_FEAT_STRIDE if s not in feats]
    if missing:
        raise ValueError('the network has no features for strides %s (RPN_FEAT_STRIDE %s)'
                         % (missing, cfg.RPN_FEAT_STRIDE))


def _num_anchors(cfg, stride):
    return cfg.RPN_ANCHOR_CFG[str(stride)]['NUM_ANCHORS']


def _prediction_convs(feat, stride, cfg):
    """The three 1x1 heads of one stride; the class head's weight records the stride's anchors."""
    anchors = cfg.RPN_ANCHOR_CFG[str(stride)]
    num_anchors, landmark = anchors['NUM_ANCHORS'], cfg.FACE_LANDMARK
    cls_score = conv_only(feat, tensor_name('rpn_cls_score', stride), 2 * num_anchors,
                          weight_attr=anchor_attr(stride, anchors))
    bbox_pred = conv_only(feat, tensor_name('rpn_bbox_pred', stride), BBOX_PRED_LEN * num_anchors)
    landmark_pred = None
    if landmark:
        landmark_pred = conv_only(feat, tensor_name('rpn_landmark_pred', stride), LANDMARK_PRED_LEN * num_anchors)
    return cls_score, bbox_pred, landmark_pred


def deploy_outputs(feats, cfg):
    """Group of the deploy outputs (``rcnn.contract``) for ``cfg.RPN_FEAT_STRIDE``."""
    _check_strides(feats, cfg)
    outputs = []
    for stride in cfg.RPN_FEAT_STRIDE:
        num_anchors = _num_anchors(cfg, stride)
        cls_score, bbox_pred, landmark_pred = _prediction_convs(feats[stride], stride, cfg)
        # (B, 2A, H, W) -> (B, 2, A*H, W): softmax over the class axis, then back.
        cls_score = mx.sym.Reshape(cls_score, shape=(0, 2, -1, 0), name=tensor_name('rpn_cls_score_reshape', stride))
        cls_prob = mx.sym.softmax(cls_score, axis=1, name=tensor_name('rpn_cls_prob', stride))
        cls_prob = mx.sym.Reshape(cls_prob, shape=(0, 2 * num_anchors, -1, 0),
                                  name=tensor_name('rpn_cls_prob_reshape', stride))
        outputs += [cls_prob, bbox_pred] + ([landmark_pred] if cfg.FACE_LANDMARK else [])
    return mx.sym.Group(outputs)


def _anchor_weight_to_channels(anchor_weight, num_anchors, pred_len):
    """(B, H*W*A, 1) per-anchor weight -> (B, pred_len*A, H*W), the regression target layout."""
    weight = mx.sym.tile(anchor_weight, reps=(1, 1, pred_len))
    weight = mx.sym.reshape(weight, shape=(0, -1, num_anchors * pred_len))
    return mx.sym.transpose(weight, axes=(0, 2, 1))


def _regression_loss(pred, target, weight, name, grad_scale, loss_norm):
    diff = (pred - target) * weight
    loss = mx.sym.smooth_l1(data=diff, scalar=SMOOTH_L1_SCALAR, name=name + '_')
    if loss_norm is not None:
        loss = mx.sym.broadcast_div(loss, loss_norm)
    return mx.sym.MakeLoss(data=loss, grad_scale=grad_scale, name=name)


def _loss_scales(cfg, num_devices=1):
    """(bbox, landmark) MakeLoss grad scales; with LR_MODE 1 the loss is also divided by the kept positives.

    Training rescales gradients by 1 / num_devices, which averages the per-device
    normalised losses (softmax over valid anchors, LR_MODE 1). The LR_MODE 0
    regression losses are plain sums over the images, so they are multiplied by
    ``num_devices`` here: the update is then the same whether a batch runs on one
    device or is split over several, and k devices train exactly like the
    original on one device with the total batch. (The original left this factor
    out, so its regression weight followed the per-device batch instead.)
    """
    if cfg.LR_MODE == 0:
        batch = float(cfg.TRAIN.RPN_BATCH_SIZE) / num_devices
        return 1.0 / batch, 0.4 * cfg.LANDMARK_LR_MULT / batch
    if cfg.LR_MODE == 1:
        if cfg.TRAIN.RPN_ENABLE_OHEM < 2:
            raise ValueError('LR_MODE 1 normalises by the OHEM positive count; it needs TRAIN.RPN_ENABLE_OHEM 2')
        return 0.25, 0.1 * cfg.LANDMARK_LR_MULT
    raise ValueError('LR_MODE must be 0 or 1, got %r' % (cfg.LR_MODE,))


def stride_train_outputs(cls_score, bbox_pred, landmark_pred, stride, cfg, num_devices=1):
    """Losses of one stride from its prediction maps (module docstring for the layout).

    Args:
        cls_score: (B, 2A, H, W); bbox_pred: (B, 4A, H, W); landmark_pred: (B, 10A, H, W)
            or None without ``cfg.FACE_LANDMARK``.

    Returns:
        list of the 6 (4 without landmarks) output symbols in metric order.
    """
    if cfg.TRAIN.RPN_ENABLE_OHEM not in (0, 2):
        raise ValueError('TRAIN.RPN_ENABLE_OHEM must be 0 (off) or 2 (rpn_fpn_ohem3), got %r'
                         % (cfg.TRAIN.RPN_ENABLE_OHEM,))
    bbox_scale, landmark_scale = _loss_scales(cfg, num_devices)
    num_anchors = _num_anchors(cfg, stride)
    names = {kind: tensor_name(kind, stride) for kind in
             ('label', 'bbox_target', 'bbox_weight', 'landmark_target', 'landmark_weight')}
    label = mx.sym.Variable(names['label'])
    bbox_target = mx.sym.Variable(names['bbox_target'])
    bbox_weight = mx.sym.Variable(names['bbox_weight'])
    if cfg.FACE_LANDMARK:
        landmark_target = mx.sym.Variable(names['landmark_target'])
        landmark_weight = mx.sym.Variable(names['landmark_weight'])

    cls_score = mx.sym.Reshape(cls_score, shape=(0, 2, -1), name=tensor_name('rpn_cls_score_reshape', stride))
    bbox_pred = mx.sym.Reshape(bbox_pred, shape=(0, 0, -1), name=tensor_name('rpn_bbox_pred_reshape', stride))

    valid_count = None
    if cfg.TRAIN.RPN_ENABLE_OHEM == 2:
        if cfg.TRAIN.OHEM_MODE != 1:
            raise ValueError('only TRAIN.OHEM_MODE 1 (hardest examples) is implemented, got %r'
                             % (cfg.TRAIN.OHEM_MODE,))
        rpn_fpn_ohem3.register()
        label, anchor_weight, valid_count = mx.sym.Custom(
            cls_score=cls_score, labels=label, op_type=rpn_fpn_ohem3.OP_TYPE, num_anchors=num_anchors,
            rpn_batch_size=cfg.TRAIN.RPN_BATCH_SIZE, fg_fraction=cfg.TRAIN.RPN_FG_FRACTION,
            name=tensor_name('rpn_ohem', stride))
        bbox_weight = mx.sym.elemwise_mul(
            bbox_weight, _anchor_weight_to_channels(anchor_weight, num_anchors, BBOX_PRED_LEN),
            name=tensor_name('bbox_weight_mul', stride))
        if cfg.FACE_LANDMARK:
            landmark_weight = mx.sym.elemwise_mul(
                landmark_weight, _anchor_weight_to_channels(anchor_weight, num_anchors, LANDMARK_PRED_LEN),
                name=tensor_name('landmark_weight_mul', stride))
    # LR_MODE 1 divides the regression losses by the kept positives of the whole batch
    # (``_loss_scales`` checked that OHEM is on); the epsilon avoids 0/0 without faces.
    loss_norm = mx.sym.sum(valid_count) + 0.001 if cfg.LR_MODE == 1 else None

    cls_prob = mx.sym.SoftmaxOutput(data=cls_score, label=label, multi_output=True, normalization='valid',
                                    use_ignore=True, ignore_label=-1, grad_scale=1.0,
                                    name=tensor_name('rpn_cls_prob', stride))
    outputs = [cls_prob, mx.sym.BlockGrad(label, name=tensor_name('rpn_label', stride))]
    outputs.append(_regression_loss(bbox_pred, bbox_target, bbox_weight,
                                    tensor_name('rpn_bbox_loss', stride), bbox_scale, loss_norm))
    outputs.append(mx.sym.BlockGrad(bbox_weight, name=tensor_name('rpn_bbox_weight', stride)))
    if cfg.FACE_LANDMARK:
        landmark_pred = mx.sym.Reshape(landmark_pred, shape=(0, 0, -1),
                                       name=tensor_name('rpn_landmark_pred_reshape', stride))
        outputs.append(_regression_loss(landmark_pred, landmark_target, landmark_weight,
                                        tensor_name('rpn_landmark_loss', stride), landmark_scale,
                                        loss_norm))
        outputs.append(mx.sym.BlockGrad(landmark_weight, name=tensor_name('rpn_landmark_weight', stride)))
    return outputs


def train_outputs(feats, cfg, num_devices=1):
    """Group of the training outputs of every stride in ``cfg.RPN_FEAT_STRIDE`` order.

    ``num_devices``: contexts one batch is split over (``_loss_scales``).
    """
    _check_strides(feats, cfg)
    outputs = []
    for stride in cfg.RPN_FEAT_STRIDE:
        preds = _prediction_convs(feats[stride], stride, cfg)
        outputs += stride_train_outputs(*preds, stride=stride, cfg=cfg, num_devices=num_devices)
    return mx.sym.Group(outputs)


def get_fixed_params(symbol, cfg):
    """Parameter names kept fixed during training (LAYER_FIX).

    With ``cfg.LAYER_FIX`` these are the arguments matching one of the
    ``cfg.FIXED_PARAMS`` regular expressions (the first backbone layers) plus any
    upsampling weights; otherwise none. Only meaningful on pretrained weights.
    """
    if not cfg.LAYER_FIX:
        return []
    patterns = [re.compile(p) for p in cfg.FIXED_PARAMS]
    return [name for name in symbol.list_arguments()
            if name != 'data' and ('upsampling' in name or any(p.search(name) for p in patterns))]
