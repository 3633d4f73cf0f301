"""The converter and verifier (``facekit.mx.onnx_convert``, ``facekit.mx.onnx_export``): the rewrites that
make MXNet's converter faithful, layers refused by name, and a check that catches a wrong export.

Exported files are run with ``OnnxForward`` and compared with MXNet executors on the same inputs;
an output passes when max |onnx - mxnet| <= ATOL + RTOL * max |mxnet| (1e-5 + 1e-3 of the
output's scale), the exporter's own tolerance.
"""
import json
import os

import mxnet as mx
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

from facekit.mx import onnx_export
from facekit.mx.checkpoint import load_checkpoint, load_param_file
from facekit.mx.onnx_convert import ExportError, InputSpec
from facekit.mx.onnx_export import RTOL, VerificationError
from facekit.ort import OnnxForward
from mtcnn.symbol import get_symbol
from mx_support import assert_outputs_close, mxnet_outputs, onnx_names, random_params
from rcnn import export as retinaface_export
from rcnn.symbol import get_symbol_test
from support import make_cfg, released_mnet, require_shared

MTCNN = 'assets/models/mtcnn-mxnet/%s-0016.params'


@pytest.fixture(scope='module')
def resnet():
    """ResNet-50 RetinaFace with random parameters as training leaves them: He-normal weights,
    every gamma in [0.5, 1.5) (also ``bn_data``'s, which fix_gamma=True makes MXNet ignore), and
    BatchNorm statistics of a random image's activations, so the outputs are not saturated."""
    symbol = get_symbol_test('resnet', make_cfg('resnet'))
    shape = (1, 3, 256, 256)
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=shape)
    rng = np.random.RandomState(0)
    args = {}
    for name, s in zip(symbol.list_arguments(), arg_shapes):
        if name.endswith('_weight'):
            args[name] = mx.nd.array(rng.normal(0, np.sqrt(2.0 / np.prod(s[1:])), s))
        elif name.endswith('_gamma'):
            args[name] = mx.nd.array(rng.uniform(0.5, 1.5, s))
        elif name != 'data':  # betas and biases
            args[name] = mx.nd.array(rng.normal(0, 0.1, s))
    aux = {n: (mx.nd.zeros if n.endswith('_mean') else mx.nd.ones)(s)
           for n, s in zip(symbol.list_auxiliary_states(), aux_shapes)}
    # A training pass with momentum 0 sets the moving statistics to the batch's (MXNet
    # updates them in the backward pass); it also writes 1 into bn_data's gamma.
    graph = json.loads(symbol.tojson())
    for node in graph['nodes']:
        if node['op'] == 'BatchNorm':
            node['attrs']['momentum'] = '0'
    calibration = mx.sym.load_json(json.dumps(graph))
    stored_gamma = args['bn_data_gamma'].copy()
    executor = calibration.bind(
        mx.cpu(), dict(args, data=mx.nd.array(rng.uniform(0, 255, shape))), aux_states=aux,
        args_grad={n: mx.nd.zeros_like(v) for n, v in args.items()},
        grad_req={n: 'write' if n in args else 'null' for n in calibration.list_arguments()})
    outputs = executor.forward(is_train=True)
    executor.backward([mx.nd.zeros_like(o) for o in outputs])
    mx.nd.waitall()
    args['bn_data_gamma'] = stored_gamma
    return symbol, args, aux


RESNET_SPEC = InputSpec(('batch', None, 'height', 'width'), ((1, 3, 256, 256), (2, 3, 193, 225)), 0.0, 255.0,
                        retinaface_export.INPUT)


@pytest.mark.slow
def test_resnet50_with_trained_like_gammas_exports_and_matches(resnet, tmp_path):
    symbol, args, aux = resnet
    gamma = args['bn_data_gamma'].asnumpy().copy()
    assert np.abs(gamma - 1).min() > 0.01  # the trap is armed
    path = str(tmp_path / 'r50.onnx')
    result = onnx_export.export(symbol, args, aux, path, RESNET_SPEC, 'retinaface')
    assert result.notes == ['layer bn_data: fix_gamma=True exported with gamma = 1, as MXNet computes it']
    np.testing.assert_array_equal(args['bn_data_gamma'].asnumpy(), gamma)  # the caller's parameters untouched
    exported = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    np.testing.assert_array_equal(exported['bn_data_gamma'], np.ones(3, np.float32))
    forward = OnnxForward(path)
    data = np.random.RandomState(5).uniform(0, 255, (1, 3, 256, 256)).astype(np.float32)
    relative = assert_outputs_close(forward.output_names, forward(data), mxnet_outputs(symbol, args, aux, data))
    assert max(relative.values()) < RTOL


@pytest.mark.slow
def test_plain_export_model_gets_fix_gamma_wrong(resnet, tmp_path):
    """MXNet's own exporter writes the stored gamma of bn_data: the class outputs go wrong."""
    symbol, args, aux = resnet
    path = str(tmp_path / 'plain.onnx')
    mx.onnx.export_model(symbol, dict(args, **aux), in_shapes=[(1, 3, 256, 256)], in_types=np.float32,
                         onnx_file_path=path)
    forward = OnnxForward(path)
    data = np.random.RandomState(5).uniform(0, 255, (1, 3, 256, 256)).astype(np.float32)
    got = dict(zip(forward.output_names, forward(data)))
    reference = dict(zip(onnx_names(symbol), mxnet_outputs(symbol, args, aux, data)))
    worst = max(float(np.abs(got[n] - reference[n]).max()) for n in reference if 'cls_prob' in n)
    assert worst > 0.3  # face probabilities off by more than 0.3


def test_plain_export_model_of_pnet_cannot_run(tmp_path):
    """MXNet's own exporter gives PRelu the (C,) gamma, which onnxruntime broadcasts over the width."""
    arg_params, aux_params = load_param_file(str(require_shared(MTCNN % 'pnet')))
    symbol = get_symbol('pnet', 'test', prelu='leaky')
    path = str(tmp_path / 'plain.onnx')
    mx.onnx.export_model(symbol, {n: arg_params[n] for n in symbol.list_arguments() if n != 'data'},
                         in_shapes=[(1, 3, 24, 24)], in_types=np.float32, onnx_file_path=path)
    with pytest.raises(RuntimeException, match=r"PRelu node. Name:'prelu1'.*Attempting to broadcast"):
        OnnxForward(path)(np.zeros((1, 3, 24, 24), np.float32))


def test_softmax_activation_is_rewritten_under_its_name(tmp_path):
    data = mx.sym.Variable('data')
    conv = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), pad=(1, 1), name='conv')
    channel = mx.sym.SoftmaxActivation(conv, mode='channel', name='channel_prob')
    # FullyConnected on a 4-D input: MXNet flattens it (the converter's default would not).
    rows = mx.sym.SoftmaxActivation(mx.sym.FullyConnected(conv, num_hidden=3, name='fc'), name='row_prob')
    symbol = mx.sym.Group([channel, rows])
    args, aux = random_params(symbol, (1, 3, 8, 8))
    spec = InputSpec(('batch', None, None, None), ((1, 3, 8, 8), (3, 3, 8, 8)), -1.0, 1.0, 'test')
    path = str(tmp_path / 'softmax.onnx')
    result = onnx_export.export(symbol, args, aux, path, spec)
    assert result.notes == ['layer channel_prob: SoftmaxActivation(mode=channel) exported as softmax(axis=1)',
                            'layer row_prob: SoftmaxActivation(mode=instance) exported as softmax(axis=1)']
    forward = OnnxForward(path)
    assert forward.output_names == ['channel_prob', 'row_prob']
    data = np.random.RandomState(2).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    assert_outputs_close(forward.output_names, forward(data), mxnet_outputs(symbol, args, aux, data))


def small_spec():
    return InputSpec(('batch', None, 'height', 'width'), ((1, 3, 16, 16), (2, 3, 21, 19)), -1.0, 1.0, 'test')


def test_unexportable_layers_are_refused_by_name(tmp_path):
    path = tmp_path / 'refused.onnx'
    ohem = get_symbol('pnet', 'train')  # ends in the mtcnn_ohem Custom op
    with pytest.raises(ExportError, match=r"layer 'ohem' \(Custom\).*op_type 'mtcnn_ohem'"):
        onnx_export.export(ohem, {}, {}, str(path), small_spec())

    data = mx.sym.Variable('data')
    conv = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), name='conv')
    spatial = mx.sym.SoftmaxActivation(conv, name='spatial_prob')  # instance mode: over C*H*W
    args, aux = random_params(spatial, (1, 3, 16, 16))
    with pytest.raises(ExportError, match=r"layer 'spatial_prob' \(SoftmaxActivation\).*4-D input"):
        onnx_export.export(spatial, args, aux, str(path), small_spec())

    # The converter's own failures name the layer too.
    dropped = mx.sym.Dropout(conv, p=0.5, mode='always', name='always_drop')
    with pytest.raises(ExportError, match=r"layer 'always_drop' \(Dropout\).*converter failed"):
        onnx_export.export(dropped, args, aux, str(path), small_spec())

    rrelu = mx.sym.LeakyReLU(conv, act_type='rrelu', name='random_relu')
    with pytest.raises(ExportError, match=r"layer 'random_relu' \(LeakyReLU\).*'rrelu'"):
        onnx_export.export(rrelu, args, aux, str(path), small_spec())

    with pytest.raises(ExportError, match='lacks 1 parameters of the symbol: conv_bias'):
        onnx_export.export(conv, {'conv_weight': args['conv_weight']}, {}, str(path), small_spec())
    assert not path.exists()


def test_failed_verification_names_the_output_and_writes_nothing(monkeypatch, tmp_path):
    convert = onnx_export.convert

    def corrupted(*args, **kwargs):
        model, notes = convert(*args, **kwargs)
        for tensor in model.graph.initializer:
            if tensor.name == 'face_rpn_landmark_pred_stride16_bias':
                tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) + 1, tensor.name))
        return model, notes

    monkeypatch.setattr(onnx_export, 'convert', corrupted)
    path = tmp_path / 'bad.onnx'
    with pytest.raises(VerificationError, match='output face_rpn_landmark_pred_stride16 disagrees') as failure:
        retinaface_export.export_retinaface(released_mnet(), 0, str(path))
    assert failure.value.output == 'face_rpn_landmark_pred_stride16'
    assert failure.value.error > failure.value.allowed
    assert os.listdir(tmp_path) == []
    # An existing file is kept as it was: refused without overwrite, untouched by a failed export with it.
    path.write_bytes(b'previous')
    with pytest.raises(FileExistsError, match='bad.onnx exists'):
        retinaface_export.export_retinaface(released_mnet(), 0, str(path))
    with pytest.raises(VerificationError):
        retinaface_export.export_retinaface(released_mnet(), 0, str(path), overwrite=True)
    assert path.read_bytes() == b'previous' and os.listdir(tmp_path) == ['bad.onnx']


def test_tight_tolerance_fails_verification():
    symbol, arg_params, aux_params = load_checkpoint(released_mnet(), 0)
    spec = retinaface_export.input_spec()
    model, _ = onnx_export.convert(symbol, arg_params, aux_params, spec)
    errors = onnx_export.verify(model, symbol, arg_params, aux_params, onnx_export.random_inputs(spec))
    assert max(e for e, _ in errors.values()) > 0  # float rounding differs between the two runtimes
    with pytest.raises(VerificationError, match='disagrees with MXNet'):
        onnx_export.verify(model, symbol, arg_params, aux_params, onnx_export.random_inputs(spec), rtol=0, atol=0)
