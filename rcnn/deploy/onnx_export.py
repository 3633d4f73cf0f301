"""Faithful ONNX export of RetinaFace and MTCNN models, checked number for number with onnxruntime.

MXNet 1.9.1 converts symbols to ONNX (``mx.onnx.export_model``), but a converted
model is not always the same function. What this module does about it:

- ``SoftmaxActivation`` has no converter. Mode 'channel', and mode 'instance' over a
  2-D input, are ``softmax(axis=1)``: the layer is rewritten to it under its own name,
  so the output keeps its name.
- ``BatchNorm(fix_gamma=True)`` computes with gamma = 1 whatever the stored gamma is
  (the stored one is often not 1: weight decay moves it during training), but
  ``convert_batchnorm`` (``mx2onnx/_op_translations/_op_translations_opset12.py``)
  exports the stored gamma. Such layers are exported as ``fix_gamma=False`` with
  gamma = 1 in a copy of the parameters.
- ``LeakyReLU(act_type='prelu')`` becomes ONNX ``PRelu`` with MXNet's (C,) gamma as
  its slope; ONNX broadcasts a slope from the last axis, so over an (N, C, H, W)
  input it must be (C, 1, 1). Slopes of PReLUs over inputs of rank > 2 are reshaped
  (2-D inputs, e.g. after a fully connected layer, keep (C,)).
- ``export_model`` has no opset argument: it takes the installed onnx's default
  opset (20 for onnx 1.15), while MXNet's converters are written for opsets 12 and
  13. The graph converter it wraps (``MXNetGraph.create_onnx_graph_proto``) is
  called with ``OPSET`` = 13, and the model declares that opset.
- ``convert_fully_connected`` reads a missing ``flatten`` attribute as False, while
  MXNet's default is True (an (N, C, H, W) input is flattened to (N, C*H*W)); the
  default is written into such layers.
- The converter also lists every parameter as a graph input (onnxruntime then
  cannot fold them as constants), leaves unused constants behind and orders the
  graph outputs by conversion; parameters are made initializers only, unused ones
  dropped, and the outputs put back in the symbol's order under its names (less
  MXNet's ``_output`` suffix).

Layers that cannot be exported faithfully are refused with an ``ExportError``
naming the layer: ops without a converter (e.g. ``Custom``, Python operators such
as a training symbol's loss), ``SoftmaxActivation`` in instance mode over more than
two axes, ``BatchNorm`` over another axis than 1 or with ``output_mean_var``,
``LeakyReLU`` types without an ONNX counterpart (``rrelu``), a ``fix_gamma`` gamma
shared with other layers, and any layer MXNet's converter fails on (e.g.
``Dropout(mode='always')``, bilinear ``UpSampling``). Inputs without parameters
besides ``data`` (a training symbol's labels) are refused too.

Every export is then verified before it is written: onnxruntime (the session
settings of ``rcnn.deploy.ort``) and an MXNet executor run the same inputs (seeded
random images at two sizes and batch sizes for a dynamic export, the static shape
otherwise), and every output must satisfy::

    max |onnx - mxnet| <= ATOL + RTOL * max |mxnet|        (ATOL = 1e-5, RTOL = 1e-3)

i.e. 0.1 % of the output's own scale. Measured errors are 1e-6 to 2e-5 of the scale
for the released models and train.py checkpoints, 1.4e-4 for a ResNet-50 with random
weights; a real export bug (a wrong gamma, slope or softmax axis) is of the order of
the scale itself. A mismatch raises ``VerificationError`` naming
the output. The file is written atomically, only after verification passed.
"""
import collections
import json
import logging
import os

import mxnet as mx
import numpy as np

try:
    import onnx
    from onnx import helper, numpy_helper
except ImportError as err:  # the MXNet detectors never import this module
    raise ImportError('rcnn.deploy.onnx_export needs onnx==1.15.0 (pinned in requirements.txt): %s' % err) from err

from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph

from mtcnn.predictor import LANDMARK_PARAM
from mtcnn.symbol import INPUT_SIZE, get_symbol
from rcnn.contract import anchors_to_json, recorded_anchors
from rcnn.core.checkpoint import load_checkpoint, load_param_file
from rcnn.deploy import ort
from rcnn.fileio import atomic_path, params_path, symbol_path

__all__ = ['OPSET', 'RTOL', 'ATOL', 'ExportError', 'VerificationError', 'InputSpec', 'ExportResult',
           'retinaface_spec', 'mtcnn_spec', 'prepare_symbol', 'convert', 'verify', 'random_inputs',
           'export', 'export_retinaface', 'export_mtcnn', 'load_mtcnn', 'check_output']

logger = logging.getLogger(__name__)

OPSET = 13
RTOL = 1e-3
ATOL = 1e-5

# Smallest static sizes: one stride-32 cell for RetinaFace, one 12x12 cell for P-Net.
MIN_RETINAFACE_SIZE = 32
MIN_PNET_SIZE = INPUT_SIZE['pnet']

RETINAFACE_INPUT = 'RGB float32 0..255, (batch, 3, height, width)'
MTCNN_INPUT = 'BGR (x - 127.5) * 0.0078125 float32, (batch, 3, height, width)'

# Seeded inputs of dynamic exports: two shapes that differ in every dynamic dimension
# (batch 1 and 2; odd sizes exercise the Crop of the upsampled FPN maps).
RETINAFACE_SHAPES = ((1, 3, 320, 448), (2, 3, 289, 353))
PNET_SHAPES = ((1, 3, 60, 80), (2, 3, 37, 45))
CROP_BATCHES = (1, 7)

_ACTIVATIONS = ('leaky', 'prelu', 'elu', 'selu', 'gelu')


class ExportError(ValueError):
    """A model that cannot be exported faithfully; the message names the layer."""


class VerificationError(RuntimeError):
    """onnxruntime's output ``output`` disagrees with MXNet's on an input of shape ``shape``
    (``output`` is None when onnxruntime cannot load or run the model at all)."""

    def __init__(self, message, output, shape, error=None, allowed=None):
        super().__init__(message)
        self.output = output
        self.shape = shape
        self.error = error
        self.allowed = allowed


InputSpec = collections.namedtuple('InputSpec', ['dims', 'shapes', 'low', 'high', 'description'])
InputSpec.__doc__ = """How a model's input ``data`` is exported and checked.

dims: 4 entries (batch, channels, height, width), a name for a dynamic dimension,
    None for a static one; shapes: the input shapes (B, C, H, W) it is checked on
    (the first is the one converted at; a dynamic export needs two that differ in
    every dynamic dimension); low, high: range of the seeded uniform check inputs;
    description: what the model takes (kept in its metadata).
"""

ExportResult = collections.namedtuple('ExportResult', ['path', 'opset', 'input_shape', 'output_names', 'errors',
                                                       'checked_shapes', 'notes'])
ExportResult.__doc__ = """What an export wrote and how it was checked.

path: the ONNX file; opset: its opset; input_shape: the declared (B, C, H, W), names
for dynamic dimensions; output_names: in order; errors: {output: (max |onnx - mxnet|,
allowed)} over all check inputs, allowed being the smallest ATOL + RTOL * max|mxnet|;
checked_shapes: the input shapes run; notes: the rewrites made (one line each).
"""


def _check_static_shape(static_shape, minimum, what):
    height, width = (int(v) for v in static_shape)
    if height < minimum or width < minimum:
        raise ValueError('%s static shape must be at least %d x %d, got %d x %d'
                         % (what, minimum, minimum, height, width))
    return height, width


def retinaface_spec(static_shape=None):
    """RetinaFace input: dynamic batch, height and width, or static (1, 3, H, W) for ``static_shape=(H, W)``."""
    if static_shape is None:
        return InputSpec(('batch', None, 'height', 'width'), RETINAFACE_SHAPES, 0.0, 255.0, RETINAFACE_INPUT)
    height, width = _check_static_shape(static_shape, MIN_RETINAFACE_SIZE, 'RetinaFace')
    return InputSpec((None,) * 4, ((1, 3, height, width),), 0.0, 255.0, RETINAFACE_INPUT)


def mtcnn_spec(net, static_shape=None):
    """MTCNN input: P-Net dynamic batch, height and width (or static (1, 3, H, W)); R-Net / O-Net
    dynamic batch of (B, 3, 24, 24) / (B, 3, 48, 48) crops (no static option)."""
    if net not in INPUT_SIZE:
        raise ValueError('net must be one of %s, got %r' % (', '.join(sorted(INPUT_SIZE)), net))
    if net == 'pnet':
        if static_shape is None:
            return InputSpec(('batch', None, 'height', 'width'), PNET_SHAPES, -1.0, 1.0, MTCNN_INPUT)
        height, width = _check_static_shape(static_shape, MIN_PNET_SIZE, 'P-Net')
        return InputSpec((None,) * 4, ((1, 3, height, width),), -1.0, 1.0, MTCNN_INPUT)
    if static_shape is not None:
        raise ValueError('%s takes %d x %d crops: a static shape applies to pnet only'
                         % (net, INPUT_SIZE[net], INPUT_SIZE[net]))
    size = INPUT_SIZE[net]
    return InputSpec(('batch', None, None, None), tuple((b, 3, size, size) for b in CROP_BATCHES), -1.0, 1.0,
                     MTCNN_INPUT.replace('height, width', '%d, %d' % (size, size)))


def random_inputs(spec, seed=0):
    """Seeded float32 inputs, uniform in [spec.low, spec.high), one per shape of ``spec.shapes``."""
    return [np.random.RandomState(seed + i).uniform(spec.low, spec.high, shape).astype(np.float32)
            for i, shape in enumerate(spec.shapes)]


def _is_true(value):
    return str(value).lower() in ('true', '1')


def _onnx_name(mxnet_output):
    """The converter's name of a graph output: MXNet's output name less ``_output``."""
    return mxnet_output[:-len('_output')] if mxnet_output.endswith('_output') else mxnet_output


def _check_params(symbol, arg_params, aux_params, source):
    """ExportError naming ``source`` and the parameters of ``symbol`` it lacks."""
    missing = [n for n in symbol.list_arguments() if n != 'data' and n not in arg_params]
    missing += [n for n in symbol.list_auxiliary_states() if n not in aux_params]
    if missing:
        raise ExportError('%s lacks %d parameters of the symbol: %s (every input but data needs a value; '
                          'labels mean a training symbol)' % (source or 'the parameters', len(missing),
                                                              ', '.join(missing)))


def _refuse(node, reason):
    return ExportError('cannot export layer %r (%s) faithfully: %s' % (node['name'], node['op'], reason))


def prepare_symbol(symbol, arg_params, aux_params, data_shape, source=''):
    """The symbol and parameters to convert, with the rewrites described in the module docstring.

    Args:
        symbol: an inference symbol with one input ``data``.
        arg_params, aux_params: its parameters (NDArrays; never modified).
        data_shape: an input shape (B, C, H, W) for shape inference.
        source: where the parameters come from, for error messages.

    Returns:
        (symbol, params, prelu_ranks, notes): the symbol to convert, {name: NDArray} of
        the parameters it uses, {PReLU layer: rank of its input}, and one line per rewrite.

    Raises:
        ExportError naming the first layer that cannot be exported faithfully.
    """
    graph = json.loads(symbol.tojson())
    nodes = graph['nodes']
    supported = set(mx.onnx.get_operator_support(OPSET))
    for node in nodes:
        op = node['op']
        if op == 'Custom':
            raise _refuse(node, 'a Custom operator (op_type %r) runs Python code, which ONNX cannot hold; export '
                                'the deploy symbol' % node.get('attrs', {}).get('op_type'))
        if op not in supported and op != 'SoftmaxActivation':
            raise _refuse(node, 'MXNet %s has no ONNX converter for %s' % (mx.__version__, op))
    if 'data' not in symbol.list_arguments():
        raise ExportError('the symbol has no input named data')
    _check_params(symbol, arg_params, aux_params, source)

    internals = symbol.get_internals()
    shapes = {n: arg_params[n].shape for n in symbol.list_arguments() if n != 'data'}
    _, out_shapes, _ = internals.infer_shape(data=tuple(data_shape), **shapes)
    ranks = {name: len(shape) for name, shape in zip(internals.list_outputs(), out_shapes)}

    params = {n: arg_params[n] for n in symbol.list_arguments() if n != 'data'}
    params.update({n: aux_params[n] for n in symbol.list_auxiliary_states()})
    prelu_ranks, notes = {}, []
    for node in nodes:
        op, attrs = node['op'], node.setdefault('attrs', {})
        rank = ranks.get(node['name'] + '_output')
        if op == 'SoftmaxActivation':
            mode = attrs.get('mode', 'instance')
            if mode != 'channel' and rank != 2:
                raise _refuse(node, "mode %r over a %s-D input normalises over all axes but the first; only "
                                    "mode 'channel' and 2-D inputs are softmax(axis=1)" % (mode, rank))
            node['op'], node['attrs'] = 'softmax', {'axis': '1'}
            notes.append('layer %s: SoftmaxActivation(mode=%s) exported as softmax(axis=1)' % (node['name'], mode))
        elif op == 'BatchNorm':
            if int(attrs.get('axis', 1)) != 1:
                raise _refuse(node, 'normalisation over axis %s; the ONNX converter handles axis 1' % attrs['axis'])
            if _is_true(attrs.get('output_mean_var', False)):
                raise _refuse(node, 'output_mean_var=True outputs batch statistics, which ONNX does not')
            if _is_true(attrs.get('fix_gamma', True)):  # MXNet's default is True
                gamma = nodes[node['inputs'][1][0]]['name']
                users = [n['name'] for n in nodes if n['op'] != 'null' and any(
                    nodes[i[0]]['name'] == gamma for i in n['inputs'])]
                if users != [node['name']]:
                    raise _refuse(node, 'fix_gamma=True with gamma %s shared by layers %s' % (gamma, users))
                attrs['fix_gamma'] = 'False'
                params[gamma] = mx.nd.ones(params[gamma].shape, dtype=params[gamma].dtype)
                notes.append('layer %s: fix_gamma=True exported with gamma = 1, as MXNet computes it' % node['name'])
        elif op == 'LeakyReLU':
            act_type = attrs.get('act_type', 'leaky')
            if act_type not in _ACTIVATIONS:
                raise _refuse(node, 'act_type %r has no ONNX counterpart (supported: %s)'
                                    % (act_type, ', '.join(_ACTIVATIONS)))
            if act_type == 'prelu':
                if rank is None:
                    raise _refuse(node, 'the rank of its input is unknown, so its slope cannot be shaped')
                prelu_ranks[node['name']] = rank
        elif op == 'FullyConnected' and 'flatten' not in attrs:
            attrs['flatten'] = 'True'  # MXNet's default; convert_fully_connected reads a missing one as False
    return mx.sym.load_json(json.dumps(graph)), params, prelu_ranks, notes


def _conversion_error(err):
    """ExportError naming the layer MXNet's converter failed on (found in the traceback)."""
    node, converting, tb = None, False, err.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code.co_name
        if code == 'create_onnx_graph_proto':
            node = tb.tb_frame.f_locals.get('node')
        elif code == 'convert_layer':
            converting = True
        tb = tb.tb_next
    if converting and isinstance(node, dict):
        return _refuse(node, "MXNet's ONNX converter failed: %s: %s" % (type(err).__name__, err))
    return ExportError("MXNet's ONNX converter failed: %s: %s" % (type(err).__name__, err))


def _replace(field, items):
    """Set a repeated protobuf field to copies of ``items``."""
    copies = []
    for item in items:
        copy = type(item)()
        copy.CopyFrom(item)
        copies.append(copy)
    del field[:]
    field.extend(copies)


def _reshape_prelu_slopes(graph, prelu_ranks):
    """Give each PRelu over a rank-r input (r > 2) a (C, 1, ..., 1) slope of rank r - 1."""
    initializers = {i.name: i for i in graph.initializer}
    names = set(initializers)
    for node in graph.node:
        if node.op_type != 'PRelu':
            continue
        if node.name not in prelu_ranks:
            raise ExportError('PRelu node %r has no MXNet PReLU layer of that name' % node.name)
        rank = prelu_ranks[node.name]
        slope = initializers.get(node.input[1])
        if slope is None:
            raise ExportError('layer %r: the PReLU gamma %s is not a parameter' % (node.name, node.input[1]))
        values = numpy_helper.to_array(slope)
        if rank <= 2 or values.ndim != 1 or values.size == 1:
            continue
        name = node.name + '_slope'
        while name in names:
            name += '_'
        names.add(name)
        graph.initializer.append(numpy_helper.from_array(values.reshape((-1,) + (1,) * (rank - 2)), name))
        node.input[1] = name


def _set_dims(value_info, dims):
    """Shape of a graph input/output: an int (static), a str (named dynamic) or None (unknown) per axis."""
    shape = value_info.type.tensor_type.shape
    del shape.dim[:]
    for dim in dims:
        entry = shape.dim.add()
        if isinstance(dim, str):
            entry.dim_param = dim
        elif dim is not None:
            entry.dim_value = int(dim)


def _output_dims(symbol, spec):
    """Per output: an int for a dimension that does not depend on the input's dynamic ones,
    the batch name for a leading axis that follows the batch size, None (unknown) otherwise.

    Found by shape inference at the first shape of ``spec`` and at shapes where one
    dynamic dimension is changed at a time.
    """
    base = tuple(spec.shapes[0])
    probes = {}
    for axis, dim in enumerate(spec.dims):
        if isinstance(dim, str):
            shape = list(base)
            shape[axis] = 2 * base[axis] + 7
            probes[axis] = symbol.infer_shape(data=tuple(shape))[1]
    reference = symbol.infer_shape(data=base)[1]
    result = []
    for index, out in enumerate(reference):
        dims = []
        for axis, value in enumerate(out):
            moved = [a for a, shapes in probes.items() if shapes[index][axis] != value]
            if not moved:
                dims.append(value)
            elif axis == 0 and moved == [0] and value == base[0]:
                dims.append(spec.dims[0])
            else:
                dims.append(None)
        result.append(dims)
    return result


def _check_spec(spec):
    dynamic = [axis for axis, d in enumerate(spec.dims) if isinstance(d, str)]
    if dynamic:
        if len(spec.shapes) < 2 or any(len({s[axis] for s in spec.shapes}) < len(spec.shapes) for axis in dynamic):
            raise ValueError('a dynamic export is checked on at least two input shapes that differ in every '
                             'dynamic dimension %s, got %s' % (spec.dims, spec.shapes))
    for shape in spec.shapes:
        if any(d is None and s != spec.shapes[0][axis] for axis, (d, s) in enumerate(zip(spec.dims, shape))):
            raise ValueError('input shapes %s differ in a static dimension of %s' % (spec.shapes, spec.dims))


def convert(symbol, arg_params, aux_params, spec, model_name='', source=''):
    """The ONNX model (opset ``OPSET``) of an inference symbol, not yet verified.

    Args:
        symbol, arg_params, aux_params: the MXNet model (parameters are not modified).
        spec: ``InputSpec`` of the input ``data``.
        model_name, source: kept in the model's metadata ('model', 'source').

    Returns:
        (onnx.ModelProto, notes): the checked (``onnx.checker``, full check) model and the rewrites made.

    Raises:
        ExportError naming the layer that cannot be exported faithfully.
    """
    _check_spec(spec)
    data_shape = tuple(spec.shapes[0])
    prepared, params, prelu_ranks, notes = prepare_symbol(symbol, arg_params, aux_params, data_shape, source)
    dynamic = any(isinstance(d, str) for d in spec.dims)
    dynamic_shapes = [tuple(None if isinstance(d, str) else s for d, s in zip(spec.dims, data_shape))]
    try:
        graph = MXNetGraph().create_onnx_graph_proto(
            prepared, params, [data_shape], [onnx.TensorProto.FLOAT], opset_version=OPSET, dynamic=dynamic,
            dynamic_input_shapes=dynamic_shapes if dynamic else None)
    except Exception as err:  # the converters raise bare NotImplementedError, KeyError, AssertionError ...
        raise _conversion_error(err) from err
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)],
                              producer_name='mxnet', producer_version=mx.__version__)
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
    graph = model.graph

    initializer_names = {i.name for i in graph.initializer}
    _replace(graph.input, [i for i in graph.input if i.name not in initializer_names])
    _reshape_prelu_slopes(graph, prelu_ranks)

    outputs = {o.name: o for o in graph.output}
    wanted = [_onnx_name(n) for n in symbol.list_outputs()]
    if sorted(outputs) != sorted(wanted):
        raise ExportError('the converted outputs %s are not the symbol outputs %s' % (sorted(outputs), wanted))
    _replace(graph.output, [outputs[n] for n in wanted])
    for value_info, dims in zip(graph.output, _output_dims(symbol, spec)):
        _set_dims(value_info, dims)
    _set_dims(graph.input[0], [d if isinstance(d, str) else s for d, s in zip(spec.dims, data_shape)])

    used = {name for node in graph.node for name in node.input} | set(wanted)
    _replace(graph.initializer, [i for i in graph.initializer if i.name in used])

    props = {'model': model_name, 'source': source, 'input': spec.description,
             'exporter': 'rcnn.deploy.onnx_export, mxnet %s, opset %d' % (mx.__version__, OPSET)}
    anchors = recorded_anchors(symbol)
    if anchors is not None:  # train.py checkpoints record their anchors; the detector reads them back
        props['anchors'] = anchors_to_json(anchors)
    helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    return model, notes


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
    expected = [_onnx_name(n) for n in symbol.list_outputs()]
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


def check_output(output, overwrite=False):
    """Raise (naming ``output``) unless the ONNX file can be written there.

    FileExistsError for an existing file without ``overwrite``, IsADirectoryError,
    FileNotFoundError for a missing folder, PermissionError for a folder we cannot write.
    """
    output = os.fspath(output)
    folder = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output):
        raise IsADirectoryError('output %s is a folder; give a file name' % output)
    if os.path.exists(output) and not overwrite:
        raise FileExistsError('output %s exists (pass --overwrite, or overwrite=True, to replace it)' % output)
    if not os.path.isdir(folder):
        raise FileNotFoundError('folder %s of output %s does not exist' % (folder, output))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError('folder %s of output %s is not writable' % (folder, output))


def export(symbol, arg_params, aux_params, output, spec, model_name='', source='', overwrite=False, inputs=None,
           rtol=RTOL, atol=ATOL):
    """Convert, verify, then write ``output`` atomically (nothing is written when a step fails).

    Args:
        symbol, arg_params, aux_params: the MXNet inference model.
        output: the ONNX file; an existing one is replaced only with ``overwrite``.
        spec: ``InputSpec`` of the input.
        model_name, source: for the metadata.
        inputs: the check inputs (float32 (B, C, H, W)); None for ``random_inputs(spec)``.
        rtol, atol: the verification tolerance (see ``verify``).

    Returns:
        ExportResult.
    """
    check_output(output, overwrite)
    model, notes = convert(symbol, arg_params, aux_params, spec, model_name, source)
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
    check_output(output, overwrite)  # a file may have appeared meanwhile
    with atomic_path(output) as tmp:
        onnx.save(model, tmp)
    input_dims = model.graph.input[0].type.tensor_type.shape.dim
    input_shape = tuple(d.dim_param or d.dim_value for d in input_dims)
    logger.info('wrote %s (opset %d, input %s)', output, OPSET, input_shape)
    return ExportResult(os.fspath(output), OPSET, input_shape, list(errors), errors, checked, notes)


def load_mtcnn(net, params):
    """(symbol, arg_params, aux_params): the stock test symbol of ``net`` and the weights of ``params``.

    The landmark branch is included when the file has its weights (as ``mtcnn.predictor.load_net``).

    Raises:
        FileNotFoundError, or ExportError when the file lacks parameters of the net (e.g. another net's).
    """
    if net not in INPUT_SIZE:
        raise ValueError('net must be one of %s, got %r' % (', '.join(sorted(INPUT_SIZE)), net))
    arg_params, aux_params = load_param_file(params)
    symbol = get_symbol(net, 'test', LANDMARK_PARAM[net] in arg_params, prelu='leaky')
    _check_params(symbol, arg_params, aux_params, '%s (as %s)' % (params, net))
    return symbol, arg_params, aux_params


def export_retinaface(prefix, epoch, output, static_shape=None, overwrite=False, **kwargs):
    """Export a RetinaFace checkpoint (deploy symbol); ``kwargs`` go to ``export``."""
    check_output(output, overwrite)
    symbol, arg_params, aux_params = load_checkpoint(prefix, epoch)
    source = '%s, %s' % (os.path.basename(symbol_path(prefix)), os.path.basename(params_path(prefix, epoch)))
    return export(symbol, arg_params, aux_params, output, retinaface_spec(static_shape), 'retinaface', source,
                  overwrite, **kwargs)


def export_mtcnn(net, params, output, static_shape=None, overwrite=False, **kwargs):
    """Export an MTCNN net ('pnet', 'rnet', 'onet') from its ``.params``; ``kwargs`` go to ``export``."""
    spec = mtcnn_spec(net, static_shape)
    check_output(output, overwrite)
    symbol, arg_params, aux_params = load_mtcnn(net, params)
    return export(symbol, arg_params, aux_params, output, spec, 'mtcnn-%s' % net, os.path.basename(params),
                  overwrite, **kwargs)
