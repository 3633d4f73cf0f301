"""Inference wrapper: one bound executor per input shape, reused across calls."""
import collections

import mxnet as mx
import numpy as np

from mtcnn.symbol import get_symbol
from rcnn.core.checkpoint import load_param_file

__all__ = ['Predictor', 'load_net', 'LANDMARK_PARAM']

# R-Net / O-Net crops run in chunks of at most this many rows: the smaller
# working set runs faster (on a busy 2-core machine O-Net took 61 ms for 176
# crops in chunks of 32 against 76 ms in one batch; R-Net 42 against 47 ms for 480).
CROP_CHUNK = 32
# The last chunk is padded to a multiple of this (few executors, little waste).
CROP_BATCH_MULTIPLE = 16
# The weight of the landmark branch; its presence in a checkpoint selects the branch.
LANDMARK_PARAM = {'pnet': 'conv4_3_weight', 'rnet': 'fc4_weight', 'onet': 'fc4_weight'}


class Predictor:
    """Forward-only executor of a test symbol with fixed parameters.

    Executors are bound lazily, one per input shape, and share the parameter
    arrays: binding (and oneDNN's first run on a shape) costs more than a
    forward of these small nets. The ``max_executors`` most recently used
    shapes are kept.
    """

    def __init__(self, symbol, arg_params, aux_params=None, ctx=mx.cpu(), batch_multiple=1, chunk=None,
                 max_executors=32):
        self.symbol = symbol
        self.ctx = ctx
        names = [n for n in symbol.list_arguments() if n != 'data']
        missing = [n for n in names if n not in arg_params]
        if missing:
            raise ValueError('parameters missing for %s' % ', '.join(missing))
        self._args = {n: arg_params[n].as_in_context(ctx) for n in names}
        self._aux = {n: (aux_params or {})[n].as_in_context(ctx) for n in symbol.list_auxiliary_states()}
        self._executors = collections.OrderedDict()
        self.batch_multiple = batch_multiple
        self.chunk = chunk
        self.max_executors = max_executors

    def _executor(self, shape):
        executor = self._executors.get(shape)
        if executor is None:
            args = dict(self._args, data=mx.nd.zeros(shape, ctx=self.ctx))
            executor = self.symbol.bind(self.ctx, args, grad_req='null', aux_states=self._aux)
            self._executors[shape] = executor
            if len(self._executors) > self.max_executors:
                self._executors.popitem(last=False)
        else:
            self._executors.move_to_end(shape)
        return executor

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
        data = np.ascontiguousarray(data, dtype=np.float32)
        step = self.chunk or len(data)
        parts = [self._forward(data[start:start + step]) for start in range(0, len(data), step)]
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate(outputs) for outputs in zip(*parts)]

    def _forward(self, data):
        batch = len(data)
        padded = -(-batch // self.batch_multiple) * self.batch_multiple
        executor = self._executor((padded,) + data.shape[1:])
        executor.arg_dict['data'][:batch] = data
        return [out[:batch].asnumpy() for out in executor.forward(is_train=False)]


def load_net(net, params, ctx=mx.cpu()):
    """Build the detector's Predictor of ``net`` ('pnet', 'rnet', 'onet') from a ``.params`` path.

    The test symbol in its oneDNN form (``prelu='onednn'``, same outputs as the
    stock graph); the landmark branch is included when the file has its weights.
    """
    arg_params, aux_params = load_param_file(params)
    with_landmark = LANDMARK_PARAM[net] in arg_params
    symbol = get_symbol(net, 'test', with_landmark, prelu='onednn')
    if net == 'pnet':
        return Predictor(symbol, arg_params, aux_params, ctx)
    return Predictor(symbol, arg_params, aux_params, ctx, batch_multiple=CROP_BATCH_MULTIPLE,
                     chunk=CROP_CHUNK)
