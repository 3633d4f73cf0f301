"""Forward-only MXNet executors of one symbol, bound once per input shape.

Binding an executor (and oneDNN's first run on a shape) costs more than a forward
of the detectors' networks, and a detector sees few distinct input shapes: an
image size per pyramid level, a padded crop batch. ``ShapeCachedExecutor`` keeps
the executors of the most recently used shapes. They share the parameter arrays
and the memory of the first executor, as ``Module.reshape`` does in the original.
It has the calling convention of ``facekit.ort.OnnxForward``: float32 (B, C, H, W) in,
the outputs as NumPy arrays out.
"""
import collections
import logging
import re

import mxnet as mx
import numpy as np

from facekit.mx.checkpoint import load_checkpoint
from facekit.mx.quantize import check_int8_context, is_quantized
from facekit.mx.runtime import check_context
from facekit.prefix import params_path

__all__ = ['ShapeCachedExecutor', 'checkpoint_forward']

logger = logging.getLogger(__name__)

# What is kept per input shape: the float32 input buffer and the executor reading it.
_Slot = collections.namedtuple('_Slot', ['buffer', 'executor'])


class ShapeCachedExecutor:
    """Runs ``symbol`` with fixed parameters on float32 inputs of any shape.

    One call at a time per instance: the input buffers and executors are reused.

    Args:
        symbol: a symbol whose only free argument is ``data_name``.
        arg_params, aux_params: {name: NDArray}; every argument and auxiliary state
            of the symbol must be there.
        ctx: MXNet context.
        max_shapes: executors kept (least recently used dropped).
        source: what the parameters came from, named in errors (a file name).

    Raises:
        ValueError: parameters of the symbol are missing, listed by name.
    """

    def __init__(self, symbol, arg_params, aux_params=None, ctx=mx.cpu(), max_shapes=8, data_name='data',
                 source='the parameters'):
        aux_params = aux_params or {}
        args = [a for a in symbol.list_arguments() if a != data_name]
        aux = symbol.list_auxiliary_states()
        missing = [n for n in args if n not in arg_params] + [n for n in aux if n not in aux_params]
        if missing:
            raise ValueError('%s lacks %d parameters of the symbol: %s' % (source, len(missing), ', '.join(missing)))
        self.symbol = symbol
        # As an ONNX export names them: MXNet's output names less '_output'.
        self.output_names = [re.sub('_output$', '', name) for name in symbol.list_outputs()]
        self.ctx = ctx
        self.max_shapes = max_shapes
        self.data_name = data_name
        self._args = {n: arg_params[n].as_in_context(ctx) for n in args}
        self._aux = {n: aux_params[n].as_in_context(ctx) for n in aux}
        self._slots = collections.OrderedDict()
        self._base = None

    def input_buffer(self, shape):
        """The float32 array of ``shape`` that the next call on that shape reads: fill it in
        place and pass it to the call to save a copy."""
        return self._slot(tuple(shape)).buffer

    def output_shapes(self, input_shape):
        """The shape of every output for an input of ``input_shape`` (shape inference, nothing bound)."""
        shapes = {name: array.shape for name, array in self._args.items()}
        _, outputs, _ = self.symbol.infer_shape(**dict(shapes, **{self.data_name: tuple(input_shape)}))
        return [tuple(shape) for shape in outputs]

    def __call__(self, data):
        """Outputs (NumPy arrays, symbol order) of the forward pass on float32 ``data``."""
        slot = self._slot(tuple(data.shape))
        if data is not slot.buffer:
            slot.buffer[...] = data
        array = slot.executor.arg_dict[self.data_name]
        if array.context.device_type != 'cpu':
            array[:] = slot.buffer
        slot.executor.forward(is_train=False)
        return [out.asnumpy() for out in slot.executor.outputs]

    def _slot(self, shape):
        slot = self._slots.get(shape)
        if slot is not None:
            self._slots.move_to_end(shape)
            return slot
        buffer = np.zeros(shape, dtype=np.float32)
        if self.ctx.device_type == 'cpu':
            # The executor reads the NumPy buffer in place. MXNet flags it read-only;
            # writing it is safe because every forward's outputs are read back
            # (synchronously) before the buffer is written again.
            data = mx.nd.from_numpy(buffer, zero_copy=True)
            buffer.flags.writeable = True
        else:
            data = mx.nd.zeros(shape, ctx=self.ctx)
        logger.debug('binding an executor for input shape %s', shape)
        executor = self.symbol.bind(self.ctx, args=dict(self._args, **{self.data_name: data}),
                                    aux_states=self._aux, grad_req='null', shared_exec=self._base)
        if self._base is None:
            self._base = executor
        if len(self._slots) >= self.max_shapes:
            self._slots.popitem(last=False)
        slot = self._slots[shape] = _Slot(buffer, executor)
        return slot


def checkpoint_forward(prefix, epoch, ctx_id=-1, max_shapes=8):
    """The ShapeCachedExecutor of checkpoint ``prefix-symbol.json`` + ``prefix-%04d.params`` on GPU
    ``ctx_id``, or the CPU for -1.

    Raises:
        facekit.mx.runtime.DeviceError (a ValueError): that GPU is not available here, or an INT8
        model (``facekit.mx.quantize``) on a GPU;
        FileNotFoundError, CheckpointError: a model file that cannot be read, named.
    """
    ctx = mx.cpu() if ctx_id < 0 else mx.gpu(ctx_id)
    check_context(ctx, on_cpu='pass ctx_id=-1')
    symbol, arg_params, aux_params = load_checkpoint(prefix, epoch)
    if is_quantized(symbol):
        check_int8_context(params_path(prefix, epoch), ctx)
    return ShapeCachedExecutor(symbol, arg_params, aux_params, ctx, max_shapes=max_shapes,
                               source=params_path(prefix, epoch))
