"""P-Net, R-Net and O-Net of Zhang et al. (MTCNN) with the MXNet symbol API.

Layer and parameter names are those of the released MXNet MTCNN weights
(``pnet/rnet/onet-0016.params``), so they load unchanged. The optional landmark
branch (10 values x1, y1, ..., x5, y5 relative to the box) adds
``conv4_3`` to P-Net and ``fc4`` to R-Net / O-Net, names the released weights
do not use.

``mode='test'`` outputs ``cls_prob`` (softmax over {background, face}), the box
offsets and, with the branch, the landmarks. For P-Net these are maps over the
input, (1, 2, H', W'), (1, 4, H', W'), (1, 10, H', W') with
H' = ceil((H - 4) / 2) - 3 (stride 2, 12x12 cell); R-Net and O-Net give
(B, 2), (B, 4), (B, 10).

``mode='train'`` takes ``data`` (B, 3, S, S), ``label`` (B,) in {1, 0, -1, -2},
``bbox_target`` (B, 4) and, with the branch, ``landmark_target`` (B, 10), and ends
in the ``mtcnn_ohem`` loss op (see ``mtcnn.ohem``), whose outputs are
cls_prob (B, 2), bbox_pred (B, 4), [landmark_pred (B, 10),] cls_keep (B,),
bbox_keep (B,)[, landmark_keep (B,)].

PReLU is ``LeakyReLU(act_type='prelu')`` named ``prelu{k}`` (parameter
``prelu{k}_gamma``). Two other forms compute the same function after a
convolution from the same parameters, bit for bit (each output is x or the one
product gamma * x), as ``relu(x) + gamma * min(x, 0)``, the per-channel product
a 1x1 depthwise convolution whose weight is ``prelu{k}_gamma``:

- ``prelu='decomposed'``, used by the trainer: MXNet 1.9.1's ``prelu``
  backward after a convolution returns gamma times the true slope gradient (it
  reads its output where it needs its input; see tests/test_mtcnn.py), and its
  broadcast kernels make up about 60 % of a CPU training step.
- ``prelu='onednn'``, used by the detector (test mode): built from oneDNN
  kernels (``Activation``, depthwise convolutions that the MKLDNN subgraph
  backend fuses with relu and with the final sum), which keep the maps in
  oneDNN's layouts; the stock op runs its broadcast kernels on a reordered copy
  and takes most of an R-Net / O-Net forward. In this form P-Net's heads are
  one 1x1 convolution (see ``_pnet_heads``).
"""
import mxnet as mx

from mtcnn.defaults import INPUT_SIZE
from mtcnn.ohem import LOSS_WEIGHTS, register_ohem

__all__ = ['P_Net', 'R_Net', 'O_Net', 'get_symbol', 'INPUT_SIZE', 'PRELU_FORMS']

PRELU_FORMS = ('leaky', 'decomposed', 'onednn')


def _channel_scale(data, scale, channels, name):
    """data (B, C, H, W) times scale (C,) per channel by a 1x1 depthwise convolution (one product each)."""
    return mx.sym.Convolution(data=data, weight=mx.sym.reshape(scale, (channels, 1, 1, 1)), kernel=(1, 1),
                              num_filter=channels, num_group=channels, no_bias=True, name=name)


def _prelu(data, name, channels, form):
    """PReLU over axis 1 of a 4-D feature map (see the module docstring for ``form``)."""
    if form == 'leaky':
        return mx.sym.LeakyReLU(data=data, act_type='prelu', name=name)
    gamma = mx.sym.Variable(name + '_gamma', shape=(channels,))
    if form == 'decomposed':
        scaled = _channel_scale(mx.sym.minimum(data, 0), gamma, channels, name + '_negative')
        return mx.sym.elemwise_add(mx.sym.relu(data), scaled, name=name)
    positive = mx.sym.Activation(data=data, act_type='relu', name=name + '_positive')
    if channels % 16:
        # oneDNN leaves such maps in the plain layout: the elementwise minimum
        # needs no reorder there, and depthwise convolutions run as one small
        # GEMM per channel, so one of them is enough.
        scaled = _channel_scale(mx.sym.minimum(data, 0), gamma, channels, name + '_negative')
    else:
        # Blocked layout, where an elementwise op would first reorder the map:
        # gamma * min(x, 0) = -gamma * relu(-x), the negation a depthwise
        # convolution by -1 that the subgraph backend fuses with the relu.
        minus_one = mx.sym.full(shape=(channels,), val=-1)
        flipped = mx.sym.Activation(data=_channel_scale(data, minus_one, channels, name + '_flip'),
                                    act_type='relu', name=name + '_flipped')
        scaled = _channel_scale(flipped, mx.sym.negative(gamma), channels, name + '_negative')
    return mx.sym.elemwise_add(scaled, positive, name=name)


def _conv_prelu(data, index, kernel, num_filter, prelu):
    conv = mx.sym.Convolution(data=data, kernel=kernel, num_filter=num_filter, name='conv%d' % index)
    return _prelu(conv, 'prelu%d' % index, num_filter, prelu)


def _max_pool(data, name, kernel):
    # 'full' (ceil) convention: 24 -> 22 -> 11 -> 9 -> 4 -> 3 gives R-Net's fc1 its 64*3*3 inputs.
    return mx.sym.Pooling(data=data, pool_type='max', kernel=kernel, stride=(2, 2),
                          pooling_convention='full', name=name)


def _fc(data, name, num_hidden):
    return mx.sym.FullyConnected(data=data, num_hidden=num_hidden, name=name)


def _heads(net, mode, with_landmark, cls_score, bbox_pred, landmark_pred):
    """Group the test outputs, or attach the training loss to (B, k) heads."""
    if mode == 'test':
        axis = 1  # classes are the channel axis both for P-Net maps and for R/O-Net rows
        outputs = [mx.sym.softmax(cls_score, axis=axis, name='cls_prob'), bbox_pred]
        if with_landmark:
            outputs.append(landmark_pred)
        return mx.sym.Group(outputs)
    if mode != 'train':
        raise ValueError("mode must be 'train' or 'test', got %r" % (mode,))
    register_ohem()
    det_weight, box_weight, landmark_weight = LOSS_WEIGHTS[net]
    inputs = {'cls_score': mx.sym.flatten(cls_score),
              'bbox_pred': mx.sym.flatten(bbox_pred),
              'label': mx.sym.Variable('label'),
              'bbox_target': mx.sym.Variable('bbox_target')}
    if with_landmark:
        inputs['landmark_pred'] = mx.sym.flatten(landmark_pred)
        inputs['landmark_target'] = mx.sym.Variable('landmark_target')
    return mx.sym.Custom(op_type='mtcnn_ohem', name='ohem', with_landmark=with_landmark,
                         det_weight=det_weight, box_weight=box_weight,
                         landmark_weight=landmark_weight, **inputs)


def _pnet_heads(body, with_landmark):
    """P-Net's test outputs with conv4_1, conv4_2 [and conv4_3] run as one 1x1 convolution.

    Their weights (k, 32, 1, 1) are stacked, zero-padded to 16 output channels
    (2 + 4 + 10 with the landmark branch) and the (1, 16, H', W') result is
    sliced into the heads. With 16 channels oneDNN keeps the heads in its
    blocked layout instead of reordering the 32-channel map once per head; its
    blocked kernel sums the 32 products in the same order as the plain one
    (bit-identical outputs, checked in tests/test_mtcnn.py).
    """
    heads = [('conv4_1', 2), ('conv4_2', 4)] + ([('conv4_3', 10)] if with_landmark else [])
    weights = [mx.sym.Variable(name + '_weight', shape=(k, 32, 1, 1)) for name, k in heads]
    biases = [mx.sym.Variable(name + '_bias', shape=(k,)) for name, k in heads]
    padding = 16 - sum(k for _, k in heads)
    if padding:
        weights.append(mx.sym.zeros((padding, 32, 1, 1)))
        biases.append(mx.sym.zeros((padding,)))
    out = mx.sym.Convolution(data=body, weight=mx.sym.concat(*weights, dim=0),
                             bias=mx.sym.concat(*biases, dim=0), kernel=(1, 1), num_filter=16, name='conv4')
    outputs, begin = [], 0
    for name, k in heads:  # slices named after the heads: the stock graph's output names
        outputs.append(mx.sym.slice_axis(out, axis=1, begin=begin, end=begin + k, name=name))
        begin += k
    outputs[0] = mx.sym.softmax(outputs[0], axis=1, name='cls_prob')
    return mx.sym.Group(outputs)


def _check_prelu(prelu):
    if prelu not in PRELU_FORMS:
        raise ValueError('prelu must be one of %s, got %r' % (PRELU_FORMS, prelu))


def P_Net(mode='train', with_landmark=False, prelu='leaky'):
    """Proposal net: fully convolutional, 12x12 receptive field, stride 2."""
    _check_prelu(prelu)
    data = mx.sym.Variable('data')
    body = _conv_prelu(data, 1, (3, 3), 10, prelu)
    body = _max_pool(body, 'pool1', (2, 2))
    body = _conv_prelu(body, 2, (3, 3), 16, prelu)
    body = _conv_prelu(body, 3, (3, 3), 32, prelu)
    if mode == 'test' and prelu == 'onednn':
        return _pnet_heads(body, with_landmark)
    cls_score = mx.sym.Convolution(data=body, kernel=(1, 1), num_filter=2, name='conv4_1')
    bbox_pred = mx.sym.Convolution(data=body, kernel=(1, 1), num_filter=4, name='conv4_2')
    landmark_pred = None
    if with_landmark:
        landmark_pred = mx.sym.Convolution(data=body, kernel=(1, 1), num_filter=10, name='conv4_3')
    return _heads('pnet', mode, with_landmark, cls_score, bbox_pred, landmark_pred)


def R_Net(mode='train', with_landmark=False, prelu='leaky'):
    """Refine net: 24x24 crops."""
    _check_prelu(prelu)
    data = mx.sym.Variable('data')
    body = _conv_prelu(data, 1, (3, 3), 28, prelu)
    body = _max_pool(body, 'pool1', (3, 3))
    body = _conv_prelu(body, 2, (3, 3), 48, prelu)
    body = _max_pool(body, 'pool2', (3, 3))
    body = _conv_prelu(body, 3, (2, 2), 64, prelu)
    # On (B, 128) rows the broadcast prelu is cheap: always the plain op.
    body = mx.sym.LeakyReLU(data=_fc(body, 'fc1', 128), act_type='prelu', name='prelu4')
    landmark_pred = _fc(body, 'fc4', 10) if with_landmark else None
    return _heads('rnet', mode, with_landmark, _fc(body, 'fc2', 2), _fc(body, 'fc3', 4), landmark_pred)


def O_Net(mode='train', with_landmark=False, prelu='leaky'):
    """Output net: 48x48 crops."""
    _check_prelu(prelu)
    data = mx.sym.Variable('data')
    body = _conv_prelu(data, 1, (3, 3), 32, prelu)
    body = _max_pool(body, 'pool1', (3, 3))
    body = _conv_prelu(body, 2, (3, 3), 64, prelu)
    body = _max_pool(body, 'pool2', (3, 3))
    body = _conv_prelu(body, 3, (3, 3), 64, prelu)
    body = _max_pool(body, 'pool3', (2, 2))
    body = _conv_prelu(body, 4, (2, 2), 128, prelu)
    body = mx.sym.LeakyReLU(data=_fc(body, 'fc1', 256), act_type='prelu', name='prelu5')
    landmark_pred = _fc(body, 'fc4', 10) if with_landmark else None
    return _heads('onet', mode, with_landmark, _fc(body, 'fc2', 2), _fc(body, 'fc3', 4), landmark_pred)


def get_symbol(net, mode='train', with_landmark=False, prelu='leaky'):
    """``net`` is 'pnet', 'rnet' or 'onet'."""
    builders = {'pnet': P_Net, 'rnet': R_Net, 'onet': O_Net}
    if net not in builders:
        raise ValueError('net must be one of %s, got %r' % (sorted(builders), net))
    return builders[net](mode=mode, with_landmark=with_landmark, prelu=prelu)
