"""P-Net, R-Net and O-Net (SPEC section 8) with the MXNet symbol API.

Layer and parameter names are those of the released MXNet MTCNN weights
(``pnet/rnet/onet-0016.params``), so they load unchanged. The optional landmark
branch (seed 001; 10 values x1, y1, ..., x5, y5 relative to the box) adds
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
``prelu{k}_gamma``). ``prelu='decomposed'`` computes the same function after a
convolution as ``relu(x) + gamma * min(x, 0)``, the per-channel product done by
a 1x1 depthwise convolution whose weight is ``prelu{k}_gamma``: outputs are
bit-identical (each is x or the one product gamma * x) and parameter names and
shapes are unchanged. The trainer uses it because MXNet 1.9.1's ``prelu``
backward after a convolution returns gamma times the true slope gradient (it
reads its output where it needs its input; see tests/test_mtcnn.py), and its
broadcast kernels make up about 60 % of a CPU training step.
"""
import mxnet as mx

from mtcnn.ohem import LOSS_WEIGHTS, register_ohem

__all__ = ['P_Net', 'R_Net', 'O_Net', 'get_symbol', 'INPUT_SIZE', 'PRELU_FORMS']

INPUT_SIZE = {'pnet': 12, 'rnet': 24, 'onet': 48}
PRELU_FORMS = ('leaky', 'decomposed')


def _prelu(data, name, channels, form):
    """PReLU over axis 1 of a 4-D feature map (see the module docstring for ``form``)."""
    if form == 'leaky':
        return mx.sym.LeakyReLU(data=data, act_type='prelu', name=name)
    gamma = mx.sym.Variable(name + '_gamma', shape=(channels,))
    scaled = mx.sym.Convolution(data=mx.sym.minimum(data, 0), weight=mx.sym.reshape(gamma, (channels, 1, 1, 1)),
                                kernel=(1, 1), num_filter=channels, num_group=channels, no_bias=True,
                                name=name + '_negative')
    return mx.sym.elemwise_add(mx.sym.relu(data), scaled, name=name)


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
