"""What an MTCNN net exports to ONNX: its input and the shapes it is checked on.

The conversion and the check against MXNet are ``facekit.mx.onnx_export``'s; the cascade
takes the results as ``MtcnnDetector`` nets (``.onnx`` paths).
"""
import os

from facekit.image import MAX_MEGAPIXELS
from facekit.mx.checkpoint import load_param_file
from facekit.mx.onnx_convert import InputSpec, check_params, check_static_shape
from facekit.mx.onnx_export import export
from mtcnn.defaults import INPUT_SIZE, LANDMARK_PARAM
from mtcnn.symbol import get_symbol

__all__ = ['INPUT', 'PNET_CHECK_SHAPES', 'CROP_BATCHES', 'input_spec', 'load_mtcnn', 'export_mtcnn']

INPUT = 'BGR (x - 127.5) * 0.0078125 float32, (batch, 3, height, width)'
# Seeded inputs of dynamic exports: shapes that differ in every dynamic dimension.
PNET_CHECK_SHAPES = ((1, 3, 60, 80), (2, 3, 37, 45))
CROP_BATCHES = (1, 7)


def _check_net(net):
    if net not in INPUT_SIZE:
        raise ValueError('net must be one of %s, got %r' % (', '.join(sorted(INPUT_SIZE)), net))


def input_spec(net, static_shape=None):
    """P-Net: dynamic batch, height and width (or static (1, 3, H, W), one 12x12 cell at least);
    R-Net / O-Net: a dynamic batch of (B, 3, 24, 24) / (B, 3, 48, 48) crops (no static option)."""
    _check_net(net)
    if net == 'pnet':
        if static_shape is None:
            return InputSpec(('batch', None, 'height', 'width'), PNET_CHECK_SHAPES, -1.0, 1.0, INPUT)
        height, width = check_static_shape(static_shape, INPUT_SIZE['pnet'], 'P-Net', MAX_MEGAPIXELS)
        return InputSpec((None,) * 4, ((1, 3, height, width),), -1.0, 1.0, INPUT)
    if static_shape is not None:
        raise ValueError('%s takes %d x %d crops: a static shape applies to pnet only'
                         % (net, INPUT_SIZE[net], INPUT_SIZE[net]))
    size = INPUT_SIZE[net]
    return InputSpec(('batch', None, None, None), tuple((b, 3, size, size) for b in CROP_BATCHES), -1.0, 1.0,
                     INPUT.replace('height, width', '%d, %d' % (size, size)))


def load_mtcnn(net, params):
    """(symbol, arg_params, aux_params): the stock test symbol of ``net`` and the weights of ``params``,
    with the landmark branch when the file has its weights (as ``mtcnn.predictor.load_predictor``).

    Raises:
        FileNotFoundError, or ExportError when the file lacks parameters of the net (e.g. another net's).
    """
    _check_net(net)
    arg_params, aux_params = load_param_file(params)
    symbol = get_symbol(net, 'test', LANDMARK_PARAM[net] in arg_params, prelu='leaky')
    check_params(symbol, arg_params, aux_params, '%s (as %s)' % (params, net))
    return symbol, arg_params, aux_params


def export_mtcnn(net, params, output, static_shape=None, overwrite=False, **kwargs):
    """Export net ``net`` ('pnet', 'rnet', 'onet') from its ``.params`` to ``output``; ``kwargs`` go to ``export``."""
    spec = input_spec(net, static_shape)
    symbol, arg_params, aux_params = load_mtcnn(net, params)
    return export(symbol, arg_params, aux_params, output, spec, 'mtcnn-%s' % net, os.path.basename(params),
                  overwrite, model_files=(params,), **kwargs)
