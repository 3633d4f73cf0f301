"""onnxruntime CPU forward of an exported model, set up for a machine shared with others.

``OnnxForward(path)`` has the calling convention of the MXNet predictors: float32
(B, 3, H, W) in, the list of outputs as NumPy arrays out, in the model's output order.
Models written by ``facekit.mx.onnx_export`` keep the output order and names of the
MXNet symbol they come from (names without MXNet's ``_output`` suffix):

- RetinaFace: for strides 32, 16, 8: ``face_rpn_cls_prob_reshape_stride{s}`` (B, 2A, H/s, W/s),
  ``face_rpn_bbox_pred_stride{s}`` (B, 4A, ...), ``face_rpn_landmark_pred_stride{s}``
  (B, 10A, ...); input ``data`` RGB float32 0..255.
- MTCNN P-Net: ``cls_prob`` (B, 2, H', W'), ``conv4_2`` (B, 4, H', W'); R-Net / O-Net:
  ``cls_prob`` (B, 2), ``fc3`` (B, 4) (and the landmark head (B, 10) when the weights have
  one); input ``data`` BGR, (x - 127.5) * 0.0078125.

Using it in the detectors (only the forward differs from MXNet; post-processing is shared):

- RetinaFace: ``OnnxForward(path)(rgb)`` with ``rgb`` the (1, 3, H, W) tensor the MXNet
  executor gets returns the executor's outputs, in the same order, as NumPy. Dynamic
  exports take any H, W >= 1 (odd sizes too: the FPN's Crop becomes a Slice to the
  runtime shape); a static export (``input_shape`` all ints) takes exactly its
  (1, 3, H, W), and the detector refuses other image sizes (after scaling) before any
  work. ``metadata['model']`` is 'retinaface' for our exports; the output count (9 with
  landmarks, 6 without) gives the outputs per stride as for a symbol.
- MTCNN: the calling convention of ``mtcnn.predictor.Predictor``: (B, 3, H, W) in,
  [cls_prob, box(, landmarks)] with B rows out; any B (0 included) in one call, so
  no chunking or padding is needed. ``metadata['model']`` is 'mtcnn-pnet', -rnet or -onet.
- MXNet's OpenMP threads spin on after its operators: time onnxruntime in a process of
  its own (docs/benchmarks.md). ``facekit.mx.runtime`` does nothing for these sessions.

Threads: onnxruntime's default thread pool spins (busy-waits) between operators,
which takes CPU time from every other process on a shared machine and, with more
threads than free cores, slows the forward itself. Sessions here run operators one
after another (sequential execution, one inter-op thread), with one intra-op thread
per CPU this process may use and spinning off unless asked for.
"""
import logging
import os

import numpy as np
import onnxruntime

from facekit.cpu import usable_cpus

__all__ = ['OnnxForward', 'session_options', 'make_session']

logger = logging.getLogger(__name__)


def session_options(threads=None, spinning=None):
    """onnxruntime ``SessionOptions`` for CPU inference.

    Args:
        threads: intra-op threads; None for ``facekit.cpu.usable_cpus()``.
        spinning: let idle threads busy-wait for work; None or False for off.
    """
    threads = usable_cpus() if threads is None else int(threads)
    if threads < 1:
        raise ValueError('threads must be >= 1, got %d' % threads)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    allow = '1' if spinning else '0'
    options.add_session_config_entry('session.intra_op.allow_spinning', allow)
    options.add_session_config_entry('session.inter_op.allow_spinning', allow)
    return options


def make_session(model, threads=None, spinning=None):
    """A CPU ``InferenceSession`` of ``model`` (a file path, or a serialized model as bytes)."""
    return onnxruntime.InferenceSession(model, sess_options=session_options(threads, spinning),
                                        providers=['CPUExecutionProvider'])


class OnnxForward:
    """Forward of an ONNX model with one input on onnxruntime's CPU provider.

    Attributes:
        path: the model file.
        input_name: the name of its input (``data`` for our exports).
        input_shape: (B, C, H, W) as the model declares it, None for a dynamic dimension,
            e.g. (None, 3, None, None), (None, 3, 24, 24) or (1, 3, 640, 640).
        output_names: names of the outputs, in the order ``__call__`` returns them.
        metadata: the model's metadata (``model``, ``input``, ... for our exports).
        threads, spinning: the session's intra-op threads and spinning setting.
    """

    def __init__(self, path, threads=None, spinning=None):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError('ONNX model not found: %s' % path)
        self.path = path
        self.threads = usable_cpus() if threads is None else int(threads)
        self.spinning = bool(spinning)
        try:
            self.session = make_session(path, self.threads, self.spinning)
        except Exception as error:  # onnxruntime's errors derive from Exception only
            if not type(error).__module__.startswith('onnxruntime'):
                raise
            reason = str(error).split(' failed:', 1)[-1].strip().splitlines()[0]
            raise ValueError('%s: not an ONNX model onnxruntime can load (empty, truncated or another file?): %s'
                             % (path, reason)) from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError('%s has %d inputs (%s); OnnxForward runs models with one input'
                             % (path, len(inputs), ', '.join(i.name for i in inputs)))
        self.input_name = inputs[0].name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self._buffer = None
        logger.info('onnxruntime session for %s: input %s %s, %d outputs, %d intra-op threads, spinning %s',
                    path, self.input_name, self.input_shape, len(self.output_names), self.threads,
                    'on' if self.spinning else 'off')

    def input_buffer(self, shape):
        """A float32 array of ``shape`` to fill in place and pass to the call (the one of the
        last shape asked for is reused), as ``facekit.mx.executor.ShapeCachedExecutor`` offers."""
        shape = tuple(shape)
        if self._buffer is None or self._buffer.shape != shape:
            self._buffer = np.empty(shape, dtype=np.float32)
        return self._buffer

    def output_shapes(self, input_shape):
        """The shape of every output for an input of ``input_shape`` (a forward pass on zeros)."""
        return [out.shape for out in self(np.zeros(input_shape, np.float32))]

    def __call__(self, data):
        """Run on ``data`` (B, C, H, W), converted to contiguous float32.

        Returns:
            list of NumPy arrays, one per output in ``output_names`` order.

        Raises:
            ValueError when ``data`` does not fit the declared input shape.
        """
        data = np.ascontiguousarray(data, dtype=np.float32)
        if data.ndim != len(self.input_shape) or any(
                want is not None and got != want for got, want in zip(data.shape, self.input_shape)):
            raise ValueError('%s takes %s of shape %s (None: any size), got %s'
                             % (self.path, self.input_name, self.input_shape, data.shape))
        return self.session.run(None, {self.input_name: data})
