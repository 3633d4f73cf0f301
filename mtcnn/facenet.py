"""The canonical MTCNN weights (Zhang et al., as shipped by facenet-pytorch) as ``.params`` files.

``python -m mtcnn.convert --facenet DIR_OR_WHEEL --output model/mtcnn-canonical``
(``mtcnn/commands/convert.py``) reads ``pnet.pt``, ``rnet.pt`` and ``onet.pt`` from a folder, or from
``facenet_pytorch/data/`` inside a facenet-pytorch wheel
(``pip download facenet-pytorch==2.6.0 --no-deps``), with the restricted reader
of :mod:`mtcnn.torchfile` (no torch, no arbitrary unpickling), and writes
``pnet-0000.params``, ``rnet-0000.params`` and ``onet-0000.params`` for the
symbols of :mod:`mtcnn.symbol`, O-Net with its landmark branch ``fc4``. The
detector and the command lines load them like the MXNet weights::

    python -m mtcnn.demo --image photo.jpg --output result.jpg --pnet model/mtcnn-canonical/pnet-0000.params \\
        --rnet model/mtcnn-canonical/rnet-0000.params --onet model/mtcnn-canonical/onet-0000.params

The weights were trained under other conventions, which the conversion folds
into them so that the nets take our input and give our outputs (each net then
reproduces facenet-pytorch's outputs on the same pixels to ~1e-6):

- input RGB, our input BGR: conv1's input channels are reversed;
- R-Net's ``dense4`` and O-Net's ``dense5`` read the last (N, C, H, W) map
  permuted to (N, W, H, C) and flattened; MXNet's ``FullyConnected`` flattens
  (C, H, W), so their columns are reordered;
- O-Net's ``dense6_3`` emits x1..x5 then y1..y5; its rows are interleaved to
  our (x1, y1, ..., x5, y5), still relative to the square crop;
- layer names: ``dense4`` / ``dense5`` -> ``fc1``, ``dense*_1`` -> ``fc2``,
  ``dense*_2`` -> ``fc3``, ``dense6_3`` -> ``fc4``, ``prelu{k}.weight`` ->
  ``prelu{k}_gamma``. Box offsets (dx1, dy1, dx2, dy2) relative to the box
  width and height, the (x - 127.5) * 0.0078125 scaling, the softmax heads and
  the ceil-mode pooling are the same in both.

Our :class:`~mtcnn.detector.MtcnnDetector` keeps the MXNet original's
pyramid and box arithmetic; facenet-pytorch's ``detect_face`` follows the
Matlab original, so the same weights find slightly different boxes:

- pyramid: it resizes to ``int(h * s + 1)`` x ``int(w * s + 1)``, one pixel more
  each way than ours (``int(h * s)`` x ``int(w * s)``), and keeps a level while
  ``min(h, w) * s >= 12`` (ours: ``int(min(h, w) * s) > 12``);
- resize interpolation: area averaging (``F.interpolate(mode='area')``) for the
  pyramid and the 24 / 48 crops, kept in float, against our
  ``cv2.INTER_LINEAR`` on uint8, which samples rather than averages when
  shrinking; the nets see different pixels, and probabilities near a
  threshold fall on either side;
- boxes are 1-based: a P-Net cell gives ``floor((2 j + 1) / s)`` ..
  ``floor((2 j + 12) / s)`` (ours ``round(2 j / s)`` .. ``round((2 j + 12) / s)``,
  0-based), and the final boxes keep that offset of about one pixel;
- widths: squaring makes a side of ``max(w, h)`` with w = x2 - x1 and
  x2 = x1 + side, P-Net calibration uses x2 - x1, the R-Net / O-Net ones
  x2 - x1 + 1 (ours x2 - x1 + 1 throughout); crops truncate the box
  coordinates (ours round them);
- crops of boxes reaching outside the image: it resizes the part inside the
  image alone (ours pads the outside with zeros, as the MXNet and Matlab
  originals do), so it stretches border faces and their landmarks;
- NMS: ``torchvision.ops.batched_nms`` (areas without +1) for the P-Net and
  R-Net stages, ours +1 areas throughout; P-Net keeps probabilities ``>=`` the
  threshold (ours ``>``).

How the two agree on the shared photos: mtcnn/README.md.
"""
import contextlib
import logging
import os
import zipfile

import mxnet as mx
import numpy as np

from facekit.files import atomic_path
from mtcnn.defaults import INPUT_SIZE
from mtcnn.symbol import get_symbol
from mtcnn.torchfile import TorchFileError, load_state_dict

__all__ = ['NETS', 'WHEEL_DATA', 'read_facenet', 'convert_net', 'convert_facenet', 'output_paths', 'save_params']

logger = logging.getLogger(__name__)

NETS = ('pnet', 'rnet', 'onet')
# Where the weights lie inside a facenet-pytorch wheel.
WHEEL_DATA = 'facenet_pytorch/data/%s.pt'

# facenet-pytorch layer -> our layer, per net (the PReLU layers keep their names).
_LAYERS = {
    'pnet': {'conv1': 'conv1', 'conv2': 'conv2', 'conv3': 'conv3', 'conv4_1': 'conv4_1', 'conv4_2': 'conv4_2'},
    'rnet': {'conv1': 'conv1', 'conv2': 'conv2', 'conv3': 'conv3', 'dense4': 'fc1', 'dense5_1': 'fc2',
             'dense5_2': 'fc3'},
    'onet': {'conv1': 'conv1', 'conv2': 'conv2', 'conv3': 'conv3', 'conv4': 'conv4', 'dense5': 'fc1',
             'dense6_1': 'fc2', 'dense6_2': 'fc3', 'dense6_3': 'fc4'},
}
# The fully-connected layer after the last convolution, and that convolution's (C, H, W) output map.
_FIRST_FC = {'rnet': ('dense4', (64, 3, 3)), 'onet': ('dense5', (128, 3, 3))}
# Rows of (x1..x5, y1..y5) taken in the order (x1, y1, ..., x5, y5).
_LANDMARK_ROWS = np.arange(10).reshape(2, 5).T.ravel()


def read_facenet(source):
    """The three state dicts ``{'pnet': OrderedDict, ...}`` from a folder or a facenet-pytorch wheel.

    Raises FileNotFoundError for a missing ``.pt`` file or wheel member, and
    TorchFileError (a ValueError) naming the file for a malformed or refused one.
    """
    source = os.fspath(source)
    states = {}
    if os.path.isdir(source):
        for net in NETS:
            path = os.path.join(source, net + '.pt')
            if not os.path.isfile(path):
                raise FileNotFoundError('%s not found in %s' % (net + '.pt', source))
            with open(path, 'rb') as f:
                states[net] = load_state_dict(f.read(), path)
            logger.info('read %s: %d tensors', path, len(states[net]))
        return states
    if not zipfile.is_zipfile(source):
        raise TorchFileError('%s is neither a folder nor a wheel (zip) file' % source)
    with zipfile.ZipFile(source) as wheel:
        members = set(wheel.namelist())
        for net in NETS:
            member = WHEEL_DATA % net
            if member not in members:
                raise FileNotFoundError('%s has no %s (not a facenet-pytorch wheel?)' % (source, member))
            name = '%s:%s' % (source, member)
            states[net] = load_state_dict(wheel.read(member), name)
            logger.info('read %s: %d tensors', name, len(states[net]))
    return states


def _expected_shapes(net):
    """Parameter name -> shape of our test symbol (O-Net with the landmark branch)."""
    symbol = get_symbol(net, 'test', with_landmark=net == 'onet')
    size = INPUT_SIZE[net]
    shapes, _, _ = symbol.infer_shape(data=(1, 3, size, size))
    return {n: tuple(s) for n, s in zip(symbol.list_arguments(), shapes) if n != 'data'}


def convert_net(net, state, name=None):
    """Our arg params (name -> float32 ndarray) of one net from its facenet-pytorch state dict.

    Args:
        net: 'pnet', 'rnet' or 'onet'.
        state: parameter name (``conv1.weight``, ``prelu1.weight``, ...) -> ndarray.
        name: how errors name the source (default: the net).

    Raises:
        ValueError naming the source and the parameters for missing, extra or
        wrongly shaped parameters.
    """
    name = name or net
    renamed = {}
    for key, value in state.items():
        layer, _, kind = key.rpartition('.')
        if layer.startswith('prelu') and kind == 'weight':
            renamed[layer + '_gamma'] = (key, value)
        elif layer in _LAYERS[net] and kind in ('weight', 'bias'):
            renamed['%s_%s' % (_LAYERS[net][layer], kind)] = (key, value)
        else:
            raise ValueError('%s: unexpected parameter %s for %s' % (name, key, net))
    expected = _expected_shapes(net)
    missing = sorted(set(expected) - set(renamed))
    if missing:
        raise ValueError('%s: no parameters for %s (%s)' % (name, ', '.join(missing), net))
    for target, (key, value) in renamed.items():
        if target not in expected:
            raise ValueError('%s: unexpected parameter %s for %s' % (name, key, net))
        if value.shape != expected[target]:
            raise ValueError('%s: %s has shape %s, %s needs %s' % (name, key, value.shape, target,
                                                                   expected[target]))
    params = {target: np.array(value, np.float32) for target, (_, value) in renamed.items()}
    params['conv1_weight'] = params['conv1_weight'][:, ::-1]           # RGB -> BGR input channels
    if net in _FIRST_FC:
        # Column w * H * C + h * C + c of the (W, H, C) flatten becomes column c * H * W + h * W + w.
        channels, height, width = _FIRST_FC[net][1]
        weight = params['fc1_weight']
        params['fc1_weight'] = weight.reshape(-1, width, height, channels).transpose(0, 3, 2, 1).reshape(
            len(weight), -1)
    if net == 'onet':
        params['fc4_weight'] = params['fc4_weight'][_LANDMARK_ROWS]
        params['fc4_bias'] = params['fc4_bias'][_LANDMARK_ROWS]
    return {k: np.ascontiguousarray(v) for k, v in params.items()}


def convert_facenet(source):
    """``{'pnet': arg params, 'rnet': ..., 'onet': ...}`` converted from a folder or wheel."""
    states = read_facenet(source)
    return {net: convert_net(net, states[net], '%s (%s)' % (source, net + '.pt')) for net in NETS}


def output_paths(output):
    """Where the converted nets go: ``{'pnet': output/pnet-0000.params, ...}``."""
    return {net: os.path.join(output, '%s-0000.params' % net) for net in NETS}


def save_params(paths, nets):
    """Write each net's arg params (name -> ndarray) to ``paths[net]`` as an MXNet ``.params`` file
    (``arg:`` keys), all or nothing: every file goes to a temporary first, and they replace their
    targets only when all were written."""
    with contextlib.ExitStack() as stack:
        for net, params in nets.items():
            tmp = stack.enter_context(atomic_path(paths[net]))
            mx.nd.save(tmp, {'arg:' + k: mx.nd.array(v, dtype=np.float32) for k, v in sorted(params.items())})
    for net in nets:
        logger.info('wrote %s', paths[net])
