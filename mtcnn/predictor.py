"""The nets of the cascade on MXNet at test time: crop batches in chunks over shape-cached executors."""
import mxnet as mx
import numpy as np

from facekit.mx.checkpoint import load_param_file
from facekit.mx.executor import ShapeCachedExecutor
from facekit.mx.runtime import check_context
from mtcnn.defaults import LANDMARK_PARAM
from mtcnn.symbol import get_symbol

__all__ = ['Predictor', 'load_predictor']

# R-Net / O-Net crops run in chunks of at most this many rows: the smaller
# working set stays in the cache and runs faster than one large batch.
CROP_CHUNK = 32
# The last chunk is padded to a multiple of this (few executors, little waste).
CROP_BATCH_MULTIPLE = 16


class Predictor:
    """Forward-only runner of a test symbol with fixed parameters, on crop batches of any size.

    Executors are bound per input shape and kept (``facekit.mx.executor``); the
    ``max_executors`` most recently used shapes stay bound.
    """

    def __init__(self, symbol, arg_params, aux_params=None, ctx=None, batch_multiple=1, chunk=None,
                 max_executors=32):
        ctx = mx.cpu() if ctx is None else ctx
        self.symbol = symbol
        self.forward = ShapeCachedExecutor(symbol, arg_params, aux_params, ctx, max_shapes=max_executors)
        self.batch_multiple = batch_multiple
        self.chunk = chunk

    def __call__(self, data):
        """Run on ``data`` (B, 3, H, W) float32; returns the B rows of each output as NumPy arrays.

        The rows run in chunks of at most ``chunk`` (all at once when None);
        the last chunk is padded up to a multiple of ``batch_multiple`` (the
        extra rows are computed and dropped) so that varying candidate counts
        reuse a few executors. Rows are independent: the result does not
        depend on the chunking.
        """
        if not len(data):
            raise ValueError('Predictor needs at least one row, got data of shape %s' % (data.shape,))
        step = self.chunk or len(data)
        parts = [self._forward(data[start:start + step]) for start in range(0, len(data), step)]
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate(outputs) for outputs in zip(*parts)]

    def _forward(self, data):
        batch = len(data)
        padded = -(-batch // self.batch_multiple) * self.batch_multiple
        buffer = self.forward.input_buffer((padded,) + data.shape[1:])
        buffer[:batch] = data
        return [out[:batch] for out in self.forward(buffer)]


def load_predictor(net, params, ctx=None):
    """The Predictor of net ``net`` ('pnet', 'rnet', 'onet') from its ``.params`` file, on MXNet
    context ``ctx`` (None: the CPU): the test symbol in its oneDNN form (``prelu='onednn'``, the
    same outputs as the stock graph), with the landmark branch when the file has its weights.

    Raises:
        facekit.mx.runtime.DeviceError (a ValueError): a GPU ``ctx`` this machine lacks.
    """
    ctx = mx.cpu() if ctx is None else ctx
    check_context(ctx)
    arg_params, aux_params = load_param_file(params)
    with_landmark = LANDMARK_PARAM[net] in arg_params
    symbol = get_symbol(net, 'test', with_landmark, prelu='onednn')
    if net == 'pnet':
        return Predictor(symbol, arg_params, aux_params, ctx)
    return Predictor(symbol, arg_params, aux_params, ctx, batch_multiple=CROP_BATCH_MULTIPLE, chunk=CROP_CHUNK)
