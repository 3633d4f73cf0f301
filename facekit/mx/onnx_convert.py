"""MXNet symbols to ONNX models that compute the same function (the conversion; not yet checked).

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

The converted model is checked against MXNet before it is written: ``facekit.mx.onnx_export``.
"""
import collections
import json
import logging

import mxnet as mx
import onnx
from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
from onnx import helper, numpy_helper

__all__ = ['OPSET', 'ExportError', 'InputSpec', 'check_static_shape', 'check_params', 'prepare_symbol', 'convert',
           'onnx_name']

logger = logging.getLogger(__name__)

OPSET = 13

_ACTIVATIONS = ('leaky', 'prelu', 'elu', 'selu', 'gelu')


class ExportError(ValueError):
    """A model that cannot be exported faithfully; the message names the layer."""


InputSpec = collections.namedtuple('InputSpec', ['dims', 'shapes', 'low', 'high', 'description'])
InputSpec.__doc__ = """How a model's input ``data`` is exported and checked.

dims: 4 entries (batch, channels, height, width), a name for a dynamic dimension,
    None for a static one; shapes: the input shapes (B, C, H, W) it is checked on
    (the first is the one converted at; a dynamic export needs two that differ in
    every dynamic dimension); low, high: range of the seeded uniform check inputs;
    description: what the model takes (kept in its metadata).
"""


def check_static_shape(static_shape, minimum, what, max_megapixels=None):
    """(H, W) of a static export's input; ValueError (naming ``what``) below ``minimum`` on a side or,
    with ``max_megapixels``, above that many megapixels."""
    height, width = (int(v) for v in static_shape)
    if height < minimum or width < minimum:
        raise ValueError('%s static shape must be at least %d x %d, got %d x %d'
                         % (what, minimum, minimum, height, width))
    if max_megapixels is not None and height * width > max_megapixels * 1e6:
        raise ValueError('%s static shape %d x %d is %.1f megapixels, above the limit of %g'
                         % (what, height, width, height * width / 1e6, max_megapixels))
    return height, width


def _is_true(value):
    return str(value).lower() in ('true', '1')


def onnx_name(mxnet_output):
    """The converter's name of a graph output: MXNet's output name less ``_output``."""
    return mxnet_output[:-len('_output')] if mxnet_output.endswith('_output') else mxnet_output


def check_params(symbol, arg_params, aux_params, source):
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
    check_params(symbol, arg_params, aux_params, source)

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


def convert(symbol, arg_params, aux_params, spec, model_name='', source='', metadata=None):
    """The ONNX model (opset ``OPSET``) of an inference symbol, not yet verified.

    Args:
        symbol, arg_params, aux_params: the MXNet model (parameters are not modified).
        spec: ``InputSpec`` of the input ``data``.
        model_name, source: kept in the model's metadata ('model', 'source').
        metadata: more {key: text} for the model's metadata (RetinaFace: its anchors).

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
    wanted = [onnx_name(n) for n in symbol.list_outputs()]
    if sorted(outputs) != sorted(wanted):
        raise ExportError('the converted outputs %s are not the symbol outputs %s' % (sorted(outputs), wanted))
    _replace(graph.output, [outputs[n] for n in wanted])
    for value_info, dims in zip(graph.output, _output_dims(symbol, spec)):
        _set_dims(value_info, dims)
    _set_dims(graph.input[0], [d if isinstance(d, str) else s for d, s in zip(spec.dims, data_shape)])

    used = {name for node in graph.node for name in node.input} | set(wanted)
    _replace(graph.initializer, [i for i in graph.initializer if i.name in used])

    props = dict(metadata or {}, model=model_name, source=source, input=spec.description,
                 exporter='facekit.mx.onnx_export, mxnet %s, opset %d' % (mx.__version__, OPSET))
    helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    return model, notes
