"""Faithful ONNX export of RetinaFace and MTCNN models, checked number for number with onnxruntime.

The conversion (``facekit.mx.onnx_convert``) rewrites what MXNet's own converter gets wrong.
Every export is then verified before it is written: onnxruntime (the session
settings of ``facekit.ort``) and an MXNet executor run the same inputs (seeded
random images at two sizes and batch sizes for a dynamic export, the static shape
otherwise), and every output must satisfy::

    max |onnx - mxnet| <= ATOL + RTOL * max |mxnet|        (ATOL = 1e-5, RTOL = 1e-3)

i.e. 0.1 % of the output's own scale: far above the rounding differences of the two
runtimes (docs/benchmarks.md), far below a real export bug (a wrong gamma, slope or
softmax axis is of the order of the scale itself). A mismatch raises
``VerificationError`` naming the output. The file is written atomically, only after
verification passed. What each model exports (its input, its check shapes) lives with the
model (``rcnn.export``, ``mtcnn.export``); the commands share the arguments and checks of
``add_export_arguments`` and ``check_export_args``.
"""
import collections
import logging
import os

import mxnet as mx
import numpy as np
import onnx
from onnx import helper

from facekit import args as cli
from facekit import ort
from facekit.args import UsageError
from facekit.files import atomic_path, input_replaced_by
from facekit.image import MAX_MEGAPIXELS
from facekit.mx.onnx_convert import OPSET, convert, onnx_name

__all__ = ['RTOL', 'ATOL', 'VerificationError', 'ExportResult', 'random_inputs', 'verify', 'check_output', 'export',
           'describe', 'add_export_arguments', 'check_export_args']

logger = logging.getLogger(__name__)

RTOL = 1e-3
ATOL = 1e-5


class VerificationError(RuntimeError):
    """onnxruntime's output ``output`` disagrees with MXNet's on an input of shape ``shape``
    (``output`` is None when onnxruntime cannot load or run the model at all)."""

    def __init__(self, message, output, shape, error=None, allowed=None):
        super().__init__(message)
        self.output = output
        self.shape = shape
        self.error = error
        self.allowed = allowed


ExportResult = collections.namedtuple('ExportResult', ['path', 'opset', 'input_shape', 'output_names', 'errors',
                                                       'checked_shapes', 'notes'])
ExportResult.__doc__ = """What an export wrote and how it was checked.

path: the ONNX file; opset: its opset; input_shape: the declared (B, C, H, W), names
for dynamic dimensions; output_names: in order; errors: {output: (max |onnx - mxnet|,
allowed)} over all check inputs, allowed being the smallest ATOL + RTOL * max|mxnet|;
checked_shapes: the input shapes run; notes: the rewrites made (one line each).
"""


def random_inputs(spec, seed=0):
    """Seeded float32 inputs, uniform in [spec.low, spec.high), one per shape of ``spec.shapes``."""
    return [np.random.RandomState(seed + i).uniform(spec.low, spec.high, shape).astype(np.float32)
            for i, shape in enumerate(spec.shapes)]


def verify(model, symbol, arg_params, aux_params, inputs, rtol=RTOL, atol=ATOL):
    """Run onnxruntime and MXNet on each input and compare every output.

    Args:
        model: onnx.ModelProto (or its serialized bytes).
        symbol, arg_params, aux_params: the MXNet model it was exported from.
        inputs: float32 arrays (B, C, H, W).
        rtol, atol: an output passes when max |onnx - mxnet| <= atol + rtol * max |mxnet|.

    Returns:
        OrderedDict {output name: (max error, allowed)} over all inputs (allowed: the smallest bound).

    Raises:
        VerificationError naming the first output that disagrees (or differs in shape), or
        saying that onnxruntime cannot load or run the model (``output`` None).
    """
    if not inputs:
        raise ValueError('verify needs at least one input')
    serialized = model if isinstance(model, bytes) else model.SerializeToString()
    try:
        session = ort.make_session(serialized)
    except Exception as err:  # onnxruntime's errors derive from Exception only
        raise VerificationError('onnxruntime cannot load the model: %s' % err, None, None) from err
    names = [o.name for o in session.get_outputs()]
    expected = [onnx_name(n) for n in symbol.list_outputs()]
    if names != expected:
        raise VerificationError('ONNX outputs %s are not the MXNet outputs %s in order' % (names, expected),
                                output=None, shape=None)
    input_name = session.get_inputs()[0].name
    args = {n: arg_params[n].as_in_context(mx.cpu()) for n in symbol.list_arguments() if n != 'data'}
    aux = {n: aux_params[n].as_in_context(mx.cpu()) for n in symbol.list_auxiliary_states()}
    worst = collections.OrderedDict((n, (0.0, np.inf)) for n in names)
    for data in inputs:
        data = np.ascontiguousarray(data, dtype=np.float32)
        executor = symbol.bind(mx.cpu(), dict(args, data=mx.nd.array(data)), aux_states=aux, grad_req='null')
        reference = [out.asnumpy() for out in executor.forward(is_train=False)]
        try:
            got = session.run(None, {input_name: data})
        except Exception as err:
            raise VerificationError('onnxruntime fails on input %s: %s' % (data.shape, err), None,
                                    data.shape) from err
        for name, ref, out in zip(names, reference, got):
            if out.shape != ref.shape:
                raise VerificationError('ONNX output %s has shape %s, MXNet %s, on input %s'
                                        % (name, out.shape, ref.shape, data.shape), name, data.shape)
            error = float(np.max(np.abs(out.astype(np.float64) - ref))) if ref.size else 0.0
            allowed = atol + rtol * (float(np.max(np.abs(ref))) if ref.size else 0.0)
            if not error <= allowed:  # also catches NaN
                raise VerificationError(
                    'ONNX output %s disagrees with MXNet on input %s: max |onnx - mxnet| = %.3g > %.3g '
                    '(%g + %g * max |mxnet|)' % (name, data.shape, error, allowed, atol, rtol),
                    name, data.shape, error, allowed)
            worst[name] = (max(worst[name][0], error), min(worst[name][1], allowed))
    return worst


def check_output(output, overwrite=False, inputs=()):
    """Raise (naming ``output``) unless the ONNX file can be written there.

    ValueError when it would replace one of ``inputs`` (the model's files; by any path or
    link, whatever ``overwrite``), FileExistsError for an existing file without
    ``overwrite``, IsADirectoryError, FileNotFoundError for a missing folder,
    PermissionError for a folder we cannot write.
    """
    output = os.fspath(output)
    folder = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output):
        raise IsADirectoryError('output %s is a folder; give a file name' % output)
    replaced = input_replaced_by(output, inputs)
    if replaced is not None:
        raise ValueError('output %s would replace %s, which the export reads' % (output, replaced))
    if os.path.exists(output) and not overwrite:
        raise FileExistsError('output %s exists (pass --overwrite, or overwrite=True, to replace it)' % output)
    if not os.path.isdir(folder):
        raise FileNotFoundError('folder %s of output %s does not exist' % (folder, output))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError('folder %s of output %s is not writable' % (folder, output))


def export(symbol, arg_params, aux_params, output, spec, model_name='', source='', overwrite=False, inputs=None,
           rtol=RTOL, atol=ATOL, metadata=None, model_files=()):
    """Convert, verify, then write ``output`` atomically (nothing is written when a step fails).

    Args:
        symbol, arg_params, aux_params: the MXNet inference model.
        output: the ONNX file; an existing one is replaced only with ``overwrite``, and never
            one of ``model_files`` (the files the model was read from).
        spec: ``InputSpec`` of the input.
        model_name, source, metadata: for the model's metadata (see ``convert``).
        inputs: the check inputs (float32 (B, C, H, W)); None for ``random_inputs(spec)``.
        rtol, atol: the verification tolerance (see ``verify``).

    Returns:
        ExportResult.
    """
    check_output(output, overwrite, model_files)
    model, notes = convert(symbol, arg_params, aux_params, spec, model_name, source, metadata)
    for note in notes:
        logger.info('%s', note)
    inputs = random_inputs(spec) if inputs is None else [np.ascontiguousarray(x, dtype=np.float32) for x in inputs]
    errors = verify(model, symbol, arg_params, aux_params, inputs, rtol, atol)
    checked = [tuple(x.shape) for x in inputs]
    worst = max(errors, key=lambda n: errors[n][0] / errors[n][1])
    logger.info('onnxruntime %s matches MXNet on %s; largest error %.3g (%s, allowed %.3g)',
                ort.onnxruntime.__version__, checked, errors[worst][0], worst, errors[worst][1])
    props = {p.key: p.value for p in model.metadata_props}
    props['verified'] = ('onnxruntime %s against MXNet %s on %s: max |onnx - mxnet| <= %g + %g * max |mxnet| '
                         'per output' % (ort.onnxruntime.__version__, mx.__version__, checked, atol, rtol))
    helper.set_model_props(model, props)
    check_output(output, overwrite, model_files)  # a file may have appeared meanwhile
    with atomic_path(output) as tmp:
        onnx.save(model, tmp)
    input_dims = model.graph.input[0].type.tensor_type.shape.dim
    input_shape = tuple(d.dim_param or d.dim_value for d in input_dims)
    logger.info('wrote %s (opset %d, input %s)', output, OPSET, input_shape)
    return ExportResult(os.fspath(output), OPSET, input_shape, list(errors), errors, checked, notes)


def describe(result):
    """The line a finished export prints: file, input, and how close onnxruntime came to MXNet."""
    worst = max(result.errors, key=lambda n: result.errors[n][0] / result.errors[n][1])
    error, allowed = result.errors[worst]
    return ('%s: opset %d, input data %s, %d outputs; onnxruntime matches MXNet on %s, largest error %.2g '
            '(%s, allowed %.2g = %g + %g * max|mxnet|)'
            % (result.path, result.opset, '(%s)' % ', '.join(map(str, result.input_shape)), len(result.output_names),
               ', '.join('x'.join(map(str, s)) for s in result.checked_shapes), error, worst, allowed, ATOL, RTOL))


def add_export_arguments(parser):
    """--shape, --output and --overwrite of the export commands."""
    parser.add_argument('--shape', type=cli.int_at_least(1), nargs=2, metavar=('H', 'W'),
                        help='export a static (1, 3, H, W) input instead of dynamic batch, height and width')
    parser.add_argument('--output', required=True, help='the ONNX file to write')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --output')


def check_export_args(args, model_files, minimum, what):
    """UsageError for a --shape smaller than ``minimum`` or above ``MAX_MEGAPIXELS``, or an
    --output the export may not write (``check_output``)."""
    if args.shape:
        height, width = args.shape
        if min(height, width) < minimum:
            raise UsageError('--shape: a %s input is at least %d x %d, got %d x %d'
                             % (what, minimum, minimum, height, width))
        if height * width > MAX_MEGAPIXELS * 1e6:
            raise UsageError('--shape: %d x %d is %.1f megapixels, above the limit of %g'
                             % (height, width, height * width / 1e6, MAX_MEGAPIXELS))
    try:
        check_output(args.output, args.overwrite, model_files)
    except (OSError, ValueError) as error:
        raise UsageError('--output: %s' % error) from None
