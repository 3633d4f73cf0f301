"""INT8 models for the CPU with MXNet's own oneDNN quantization (``mx.contrib.quantization``).

The FP32 graph is first fused for oneDNN (the ``MKLDNN_QUANTIZE`` backend: a convolution with
its BatchNorm, activation and sum becomes one node). Every fused node except those holding
the ``fp32_layers`` then takes INT8 inputs and weights; a calibration pass runs the fused FP32
graph on real inputs, each at its own size, and records the range of every quantized node's
input (``calib_mode='naive'``: the minimum and maximum over all inputs, so the same inputs
give the same model); a last backend pass folds the re-quantization into the INT8
convolutions. The result is an ordinary checkpoint: the FP32 weights (oneDNN quantizes them
at the first forward of each input shape) and a symbol whose nodes carry their ranges.

Only MXNet builds with oneDNN run it (``int8_problem``), on the CPU. INT8 is faster than
FP32 where the CPU has 8-bit dot-product instructions (VNNI: ``int8_is_faster``).
"""
import json
import logging

import mxnet as mx
from mxnet.contrib import quantization

from facekit.cpu import cpu_flags
from facekit.mx.runtime import DeviceError

__all__ = ['QUANTIZED_ATTR', 'VNNI_FLAGS', 'int8_problem', 'int8_is_faster', 'quantize', 'quantization_record',
           'is_quantized', 'check_int8_context']

logger = logging.getLogger(__name__)

# The data variable of a quantized symbol records how it was made (a hidden attribute,
# kept by Symbol.save / mx.sym.load).
QUANTIZED_ATTR = '__quantized__'
# /proc/cpuinfo flags of the 8-bit dot-product instructions oneDNN's INT8 kernels need to be fast.
VNNI_FLAGS = ('avx512_vnni', 'avx_vnni', 'amx_int8')
BACKEND = 'MKLDNN_QUANTIZE'


def int8_problem():
    """None where this MXNet build can run oneDNN INT8 models, else why not (a sentence)."""
    if not mx.runtime.Features().is_enabled('MKLDNN'):
        return 'this MXNet build has no oneDNN (MKLDNN), which runs its INT8 operators'
    return None


def int8_is_faster(flags=None):
    """Whether the CPU (``flags``: its /proc/cpuinfo flags, default this machine's) has VNNI."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in VNNI_FLAGS)


def _fused_members(fused):
    """{node name: [operator names it holds]} of a oneDNN-fused symbol (an unfused operator holds itself)."""
    nodes = json.loads(fused.tojson())['nodes']
    return {node['name']: [node['name']] + [inner['name'] for graph in node.get('subgraphs', [])
                                            for inner in graph['nodes'] if inner['op'] != 'null']
            for node in nodes if node['op'] != 'null'}


def quantize(symbol, arg_params, aux_params, inputs, fp32_layers=(), record=None, data_name='data'):
    """The INT8 form of an FP32 model, calibrated on ``inputs``.

    Args:
        symbol, arg_params, aux_params: the FP32 model, one data input ``data_name``.
        inputs: iterable of float32 (1, C, H, W) arrays fed as the model is fed, each at its
            own size; at least one.
        fp32_layers: operator names of ``symbol`` (e.g. 'conv0_fwd') whose fused nodes stay FP32.
        record: a JSON-serialisable dict stored in the symbol (``quantization_record``).

    Returns:
        (symbol, arg_params, aux_params, layers): the INT8 model and {'int8': [...],
        'fp32': [...]}, the operators of ``symbol`` that now run in INT8 (a fused node by its
        first operator: the convolution) and those kept in FP32.

    Raises:
        ValueError: an unknown ``fp32_layers`` name, no inputs, or a build without oneDNN.
    """
    problem = int8_problem()
    if problem:
        raise ValueError('cannot quantize: ' + problem)
    fused = symbol.get_backend_symbol(BACKEND)
    members = _fused_members(fused)
    known = {name for names in members.values() for name in names}
    unknown = sorted(set(fp32_layers) - known)
    if unknown:
        raise ValueError('no layer named %s in the model' % ', '.join(unknown))
    excluded = sorted(node for node, names in members.items() if set(names) & set(fp32_layers))
    qsym, _, _, collector = quantization.quantize_graph(
        sym=fused, arg_params=arg_params, aux_params=aux_params, ctx=mx.cpu(), excluded_sym_names=excluded,
        calib_mode='naive', quantized_dtype='auto', quantize_mode='smart', quantize_granularity='tensor-wise')
    args = {name: arg_params[name] for name in fused.list_arguments() if name != data_name}
    aux = {name: aux_params[name] for name in fused.list_auxiliary_states()}
    count = 0
    for data in inputs:
        executor = fused.bind(mx.cpu(), args=dict(args, **{data_name: mx.nd.array(data)}), aux_states=aux,
                              grad_req='null')
        executor.set_monitor_callback(collector.collect, monitor_all=True)
        executor.forward(is_train=False)
        mx.nd.waitall()
        count += 1
    if not count:
        raise ValueError('cannot calibrate on no inputs')
    qsym, qarg, qaux = quantization.calib_graph(qsym=qsym, arg_params=arg_params, aux_params=aux_params,
                                                collector=collector, calib_mode='naive', quantized_dtype='auto')
    qsym = qsym.get_backend_symbol(BACKEND)
    qsym.get_internals()[data_name]._set_attr(**{QUANTIZED_ATTR: json.dumps(record or {}, sort_keys=True)})
    int8 = _int8_operators(qsym)
    return qsym, qarg, qaux, {'int8': int8, 'fp32': list(fp32_layers)}


def _int8_operators(qsym):
    """The FP32 operator names of a quantized symbol's INT8 nodes, in graph order."""
    names = []
    for node in json.loads(qsym.tojson())['nodes']:
        if node['op'] == '_sg_mkldnn_conv' and node.get('attrs', {}).get('quantized') == 'true':
            names.append(next(inner['name'] for graph in node['subgraphs'] for inner in graph['nodes']
                              if inner['op'] != 'null'))
        elif node['op'].startswith('_contrib_quantized_'):
            names.append(node['name'][len('quantized_'):])
    return names


def quantization_record(symbol):
    """The ``record`` a symbol made by ``quantize`` holds (a dict), or None for an FP32 symbol."""
    for attrs in symbol.attr_dict().values():
        if QUANTIZED_ATTR in attrs:
            return json.loads(attrs[QUANTIZED_ATTR])
    return None


def is_quantized(symbol):
    """Whether ``symbol`` runs INT8 operators (made by ``quantize`` or any MXNet quantization)."""
    return any(node['op'].startswith('_contrib_quantize') or node.get('attrs', {}).get('quantized') == 'true'
               for node in json.loads(symbol.tojson())['nodes'])


def check_int8_context(source, ctx):
    """Whether the INT8 model ``source`` (a file, named in messages) can run on ``ctx`` here.

    Raises DeviceError for a GPU context, ValueError for a build without oneDNN; logs a
    warning on a CPU without VNNI, where INT8 is no faster than FP32.
    """
    if ctx.device_type != 'cpu':
        raise DeviceError("%s is an INT8 model, which runs on the CPU only (MXNet's oneDNN): use the CPU "
                          "(--gpu -1, ctx_id=-1)" % source)
    problem = int8_problem()
    if problem:
        raise ValueError('%s is an INT8 model, but %s' % (source, problem))
    if not int8_is_faster():
        logger.warning('%s is an INT8 model, but this CPU lacks VNNI (%s): it runs no faster than FP32 here',
                       source, ', '.join(VNNI_FLAGS))
