"""ONNX export (rcnn.deploy.onnx_export, tools/export_onnx.py) and the onnxruntime forward (rcnn.deploy.ort).

Exported files are run with ``OnnxForward`` and compared with MXNet executors on the
same inputs; an output passes when max |onnx - mxnet| <= ATOL + RTOL * max |mxnet|
(1e-5 + 1e-3 of the output's scale), the exporter's own tolerance.
"""
import json
import os
import shutil
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

from conftest import REPO, make_cfg, require_shared
from mtcnn.predictor import load_net
from mtcnn.symbol import get_symbol
from rcnn.core.checkpoint import load_checkpoint, load_param_file
from rcnn.dataset.synthetic import generate_widerface
from rcnn.deploy import onnx_export
from rcnn.deploy.onnx_export import ATOL, RTOL, ExportError, InputSpec, VerificationError
from rcnn.deploy.ort import OnnxForward
from rcnn.runtime import usable_cpus
from rcnn.symbol import get_symbol_test
from tools import export_onnx

MNET = 'assets/models/retinaface-mnet025/mnet.25'
MTCNN = 'assets/models/mtcnn-mxnet/%s-0016.params'


def mnet_prefix():
    return str(require_shared(MNET + '-symbol.json'))[:-len('-symbol.json')]


def rgb_tensor(image):
    """RetinaFace's input: BGR (H, W, 3) uint8 -> RGB float32 (1, 3, H, W), 0..255."""
    return np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)


def mtcnn_tensor(images):
    """MTCNN's input: BGR (H, W, 3) images -> (B, 3, H, W) float32, (x - 127.5) * 0.0078125."""
    return np.ascontiguousarray(((np.stack(images).astype(np.float32) - 127.5) * 0.0078125).transpose(0, 3, 1, 2))


def mxnet_outputs(symbol, arg_params, aux_params, data):
    args = {n: arg_params[n] for n in symbol.list_arguments() if n != 'data'}
    aux = {n: aux_params[n] for n in symbol.list_auxiliary_states()}
    executor = symbol.bind(mx.cpu(), dict(args, data=mx.nd.array(data)), aux_states=aux, grad_req='null')
    return [out.asnumpy() for out in executor.forward(is_train=False)]


def assert_outputs_close(names, got, reference):
    """Every output within ATOL + RTOL * max|reference|; returns {name: error / max|reference|}."""
    assert len(got) == len(reference) == len(names)
    relative = {}
    for name, out, ref in zip(names, got, reference):
        assert out.shape == ref.shape, name
        error = float(np.abs(out - ref).max())
        scale = float(np.abs(ref).max())
        assert error <= ATOL + RTOL * scale, '%s: max error %g, scale %g' % (name, error, scale)
        relative[name] = error / scale
    return relative


def onnx_names(symbol):
    return [n[:-len('_output')] for n in symbol.list_outputs()]


def random_params(symbol, shape, seed=0):
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=shape)
    rng = np.random.RandomState(seed)
    args = {n: mx.nd.array(rng.normal(0, 0.3, s)) for n, s in zip(symbol.list_arguments(), arg_shapes) if n != 'data'}
    aux = {n: mx.nd.array(rng.uniform(0.5, 1.5, s)) for n, s in zip(symbol.list_auxiliary_states(), aux_shapes)}
    return args, aux


@pytest.fixture(scope='module')
def mnet_onnx(tmp_path_factory):
    """The released mnet.25 exported with dynamic batch, height and width."""
    prefix = mnet_prefix()
    path = str(tmp_path_factory.mktemp('mnet') / 'mnet.25.onnx')
    result = onnx_export.export_retinaface(prefix, 0, path)
    return path, result


def test_released_mnet25_one_file_serves_two_image_sizes(mnet_onnx):
    path, result = mnet_onnx
    symbol, arg_params, aux_params = load_checkpoint(mnet_prefix(), 0)
    assert result.opset == onnx_export.OPSET == onnx.load(path).opset_import[0].version
    assert result.input_shape == ('batch', 3, 'height', 'width')
    forward = OnnxForward(path)
    assert forward.input_shape == (None, 3, None, None)
    assert forward.output_names == onnx_names(symbol)  # strides 32, 16, 8; cls, bbox, landmark each
    shapes = set()
    for name in ('t4', 't6'):
        data = rgb_tensor(cv2.imread(str(require_shared('assets/images/%s.jpg' % name))))
        shapes.add(data.shape)
        assert_outputs_close(forward.output_names, forward(data), mxnet_outputs(symbol, arg_params, aux_params, data))
    assert len(shapes) == 2


def test_export_checks_two_sizes_and_batches_and_records_its_settings(mnet_onnx):
    path, result = mnet_onnx
    assert result.checked_shapes == [(1, 3, 320, 448), (2, 3, 289, 353)]
    assert all(error <= allowed for error, allowed in result.errors.values())
    model = onnx.load(path)
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata['model'] == 'retinaface'
    assert metadata['input'].startswith('RGB float32 0..255')
    assert 'opset 13' in metadata['exporter'] and '1e-05 + 0.001' in metadata['verified']
    # Parameters are constants only: the converter also lists them as graph inputs.
    assert [i.name for i in model.graph.input] == ['data']
    dims = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
    assert dims[:3] == [['batch', 4, 0, 0], ['batch', 8, 0, 0], ['batch', 20, 0, 0]]


def test_static_shape_export(tmp_path):
    path = str(tmp_path / 'static.onnx')
    result = onnx_export.export_retinaface(mnet_prefix(), 0, path, static_shape=(360, 640))
    assert result.input_shape == (1, 3, 360, 640) and result.checked_shapes == [(1, 3, 360, 640)]
    forward = OnnxForward(path)
    assert forward.input_shape == (1, 3, 360, 640)
    for output in onnx.load(path).graph.output:
        assert all(d.dim_value > 0 for d in output.type.tensor_type.shape.dim), output.name
    image = cv2.imread(str(require_shared('assets/images/t4.jpg')))
    assert image.shape[:2] == (360, 640)
    symbol, arg_params, aux_params = load_checkpoint(mnet_prefix(), 0)
    data = rgb_tensor(image)
    assert_outputs_close(forward.output_names, forward(data), mxnet_outputs(symbol, arg_params, aux_params, data))
    with pytest.raises(ValueError, match=r'static.onnx takes data of shape \(1, 3, 360, 640\).*\(1, 3, 334, 596\)'):
        forward(rgb_tensor(cv2.imread(str(require_shared('assets/images/t6.jpg')))))
    with pytest.raises(ValueError, match='at least 32 x 32'):
        onnx_export.retinaface_spec((16, 640))


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
                        onnx_export.RETINAFACE_INPUT)


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


@pytest.fixture(scope='module')
def train_checkpoint(tmp_path_factory):
    """A train.py checkpoint: one iteration of fine-tuning mnet.25 on synthetic data (realistic outputs,
    unlike a fresh initialisation's near-constant ones)."""
    root = tmp_path_factory.mktemp('train')
    dataset = str(root / 'retinaface')
    generate_widerface(dataset, num_train=2, num_val=1, num_test=1, seed=3, workers=1)
    prefix = str(root / 'tuned')
    result = subprocess.run([sys.executable, 'train.py', '--network', 'mnet', '--dataset', 'retinaface',
                             '--dataset_path', dataset, '--prefix', prefix, '--batch_images', '1', '--workers', '0',
                             '--pretrained', mnet_prefix(), '--pretrained_epoch', '0', '--max_iters', '1'],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return prefix


def test_train_py_checkpoint_exports_and_matches(train_checkpoint, tmp_path):
    path = str(tmp_path / 'trained.onnx')
    result = onnx_export.export_retinaface(train_checkpoint, 1, path)
    assert result.notes == []
    symbol, arg_params, aux_params = load_checkpoint(train_checkpoint, 1)
    released, _ = load_checkpoint(mnet_prefix(), 0)[1:]
    assert not np.array_equal(arg_params['face_rpn_cls_score_stride8_weight'].asnumpy(),
                              released['face_rpn_cls_score_stride8_weight'].asnumpy())
    forward = OnnxForward(path)
    data = rgb_tensor(cv2.imread(str(require_shared('assets/images/t4.jpg'))))
    assert_outputs_close(forward.output_names, forward(data), mxnet_outputs(symbol, arg_params, aux_params, data))


def mtcnn_inputs(net):
    """Two inputs from test01.jpg: P-Net the photo at two scales, R-Net / O-Net batches of 1 and 9 crops."""
    image = cv2.imread(str(require_shared('assets/images/test01.jpg')))
    if net == 'pnet':
        return [mtcnn_tensor([cv2.resize(image, None, fx=s, fy=s)]) for s in (0.5, 0.23)]
    size = {'rnet': 24, 'onet': 48}[net]
    rng = np.random.RandomState(1)
    crops = []
    for _ in range(9):
        side = rng.randint(40, 200)
        y, x = rng.randint(0, image.shape[0] - side), rng.randint(0, image.shape[1] - side)
        crops.append(cv2.resize(image[y:y + side, x:x + side], (size, size)))
    return [mtcnn_tensor(crops[:1]), mtcnn_tensor(crops)]


@pytest.mark.parametrize('net', ['pnet', 'rnet', 'onet'])
def test_released_mtcnn_nets_export_and_match_the_detector_nets(net, tmp_path):
    params = str(require_shared(MTCNN % net))
    path = str(tmp_path / (net + '.onnx'))
    result = onnx_export.export_mtcnn(net, params, path)
    forward = OnnxForward(path)
    expected_shape = (None, 3, None, None) if net == 'pnet' else (None, 3) + (onnx_export.INPUT_SIZE[net],) * 2
    assert forward.input_shape == expected_shape
    assert forward.output_names == ['cls_prob', 'conv4_2' if net == 'pnet' else 'fc3'] == result.output_names
    predictor = load_net(net, params)  # the detector's net (oneDNN form of the graph)
    for data in mtcnn_inputs(net):
        assert_outputs_close(forward.output_names, forward(data), predictor(data))
    if net != 'pnet':  # PReLU slopes over conv maps are (C, 1, 1), after the fully connected layer (C,)
        slopes = {i.name: tuple(i.dims) for i in onnx.load(path).graph.initializer if i.name.startswith('prelu')}
        fc_prelu = {'rnet': ('prelu4_gamma', 128), 'onet': ('prelu5_gamma', 256)}[net]
        assert slopes[fc_prelu[0]] == (fc_prelu[1],)
        assert slopes['prelu1_slope'][1:] == (1, 1)


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
        onnx_export.export_retinaface(mnet_prefix(), 0, str(path))
    assert failure.value.output == 'face_rpn_landmark_pred_stride16'
    assert failure.value.error > failure.value.allowed
    assert os.listdir(tmp_path) == []
    # An existing file is kept as it was: refused without overwrite, untouched by a failed export with it.
    path.write_bytes(b'previous')
    with pytest.raises(FileExistsError, match='bad.onnx exists'):
        onnx_export.export_retinaface(mnet_prefix(), 0, str(path))
    with pytest.raises(VerificationError):
        onnx_export.export_retinaface(mnet_prefix(), 0, str(path), overwrite=True)
    assert path.read_bytes() == b'previous' and os.listdir(tmp_path) == ['bad.onnx']


def test_tight_tolerance_fails_verification():
    symbol, arg_params, aux_params = load_checkpoint(mnet_prefix(), 0)
    spec = onnx_export.retinaface_spec()
    model, _ = onnx_export.convert(symbol, arg_params, aux_params, spec)
    errors = onnx_export.verify(model, symbol, arg_params, aux_params, onnx_export.random_inputs(spec))
    assert max(e for e, _ in errors.values()) > 0  # float rounding differs between the two runtimes
    with pytest.raises(VerificationError, match='disagrees with MXNet'):
        onnx_export.verify(model, symbol, arg_params, aux_params, onnx_export.random_inputs(spec), rtol=0, atol=0)


def cli_error(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        export_onnx.parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_cli_argument_errors_name_the_argument(capsys, tmp_path):
    prefix = mnet_prefix()
    pnet = str(require_shared(MTCNN % 'pnet'))
    out = str(tmp_path / 'm.onnx')
    assert 'argument --prefix: %s-symbol.json not found' % (tmp_path / 'none') in cli_error(
        capsys, ['retinaface', '--prefix', str(tmp_path / 'none'), '--epoch', '0', '--output', out])
    assert 'argument --epoch: %s-0007.params not found' % prefix in cli_error(
        capsys, ['retinaface', '--prefix', prefix, '--epoch', '7', '--output', out])
    assert 'argument --params: ' in cli_error(capsys, ['mtcnn', '--net', 'pnet', '--params', out, '--output', out])
    assert "argument --net: invalid choice: 'qnet'" in cli_error(
        capsys, ['mtcnn', '--net', 'qnet', '--params', pnet, '--output', out])
    assert 'argument --shape: rnet takes fixed-size crops' in cli_error(
        capsys, ['mtcnn', '--net', 'rnet', '--params', pnet, '--output', out, '--shape', '24', '24'])
    assert 'argument --shape: a P-Net input is at least 12 x 12' in cli_error(
        capsys, ['mtcnn', '--net', 'pnet', '--params', pnet, '--output', out, '--shape', '8', '100'])
    assert 'argument --output: folder %s of output' % (tmp_path / 'no') in cli_error(
        capsys, ['retinaface', '--prefix', prefix, '--epoch', '0', '--output', str(tmp_path / 'no' / 'm.onnx')])
    open(out, 'w').close()
    assert 'argument --output: output %s exists (pass --overwrite' % out in cli_error(
        capsys, ['retinaface', '--prefix', prefix, '--epoch', '0', '--output', out])
    assert export_onnx.parse_args(['retinaface', '--prefix', prefix, '--epoch', '0', '--output', out,
                                   '--overwrite']).overwrite


def test_cli_refuses_an_unwritable_folder(capsys, monkeypatch, tmp_path):
    folder = tmp_path / 'locked'
    folder.mkdir(mode=0o500)
    access = os.access
    # root may write into a read-only folder: report it read-only to this check as it is to other users
    monkeypatch.setattr(os, 'access', lambda path, mode: access(path, mode) and not (
        os.fspath(path) == str(folder) and mode & os.W_OK))
    assert 'argument --output: folder %s of output %s is not writable' % (folder, folder / 'm.onnx') in cli_error(
        capsys, ['retinaface', '--prefix', mnet_prefix(), '--epoch', '0', '--output', str(folder / 'm.onnx')])


def test_cli_exports_a_net_and_prints_one_summary_line(capsys, tmp_path, cpu_runtime_requests):
    out = str(tmp_path / 'onet.onnx')
    export_onnx.main(['mtcnn', '--net', 'onet', '--params', str(require_shared(MTCNN % 'onet')), '--output', out])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith('%s: opset 13, input data (batch, 3, 48, 48), 2 outputs' % out)
    assert 'onnxruntime matches MXNet on 1x3x48x48, 7x3x48x48' in lines[0]
    assert cpu_runtime_requests == ['cpu']
    assert OnnxForward(out).metadata['model'] == 'mtcnn-onet'


def test_cli_names_a_model_file_it_cannot_read(capsys, tmp_path):
    params = tmp_path / 'pnet.params'
    params.write_bytes(b'\x00' * 64)
    prefix = tmp_path / 'toy'
    prefix.with_name('toy-symbol.json').write_text('{"nodes": [')
    shutil.copy(mnet_prefix() + '-0000.params', str(prefix) + '-0000.params')
    for argv, named in ((['mtcnn', '--net', 'pnet', '--params', str(params)], params),
                        (['retinaface', '--prefix', str(prefix), '--epoch', '0'], prefix.with_name('toy-symbol.json'))):
        with pytest.raises(SystemExit) as exit_info:
            export_onnx.main(argv + ['--output', str(tmp_path / 'm.onnx')])
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and err.startswith('error: %s' % named) and len(err.splitlines()) == 1, err
    assert not (tmp_path / 'm.onnx').exists()


def test_cli_static_pnet(capsys, tmp_path):
    out = str(tmp_path / 'pnet.onnx')
    export_onnx.main(['mtcnn', '--net', 'pnet', '--params', str(require_shared(MTCNN % 'pnet')), '--output', out,
                      '--shape', '60', '80'])
    assert 'input data (1, 3, 60, 80)' in capsys.readouterr().out
    assert OnnxForward(out).input_shape == (1, 3, 60, 80)


def test_onnx_forward_session_settings(mnet_onnx):
    path, _ = mnet_onnx
    forward = OnnxForward(path)
    options = forward.session.get_session_options()
    assert options.intra_op_num_threads == usable_cpus() == forward.threads
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry('session.intra_op.allow_spinning') == '0'
    assert options.get_session_config_entry('session.inter_op.allow_spinning') == '0'
    spinning = OnnxForward(path, threads=1, spinning=True).session.get_session_options()
    assert spinning.intra_op_num_threads == 1
    assert spinning.get_session_config_entry('session.intra_op.allow_spinning') == '1'
    with pytest.raises(ValueError, match=r'takes data of shape \(None, 3, None, None\)'):
        forward(np.zeros((3, 32, 32), np.float32))
    with pytest.raises(FileNotFoundError, match='ONNX model not found: .*missing.onnx'):
        OnnxForward(os.path.join(os.path.dirname(path), 'missing.onnx'))


def test_detectors_import_and_run_without_onnx():
    """onnx and onnxruntime are imported only by rcnn.deploy's modules."""
    prefix = mnet_prefix()
    image = str(require_shared('assets/images/t4.jpg'))
    script = '\n'.join([
        'import sys',
        "sys.modules['onnx'] = sys.modules['onnxruntime'] = None  # makes importing them fail",
        'import cv2, rcnn, rcnn.deploy, retinaface, mtcnn.detector, mtcnn.predictor, detect, train',
        'det, _ = retinaface.RetinaFace(%r, 0, ctx_id=-1).detect(cv2.imread(%r), threshold=0.5)' % (prefix, image),
        'assert len(det) > 0',
        'try:',
        '    import rcnn.deploy.ort',
        'except ImportError as err:',
        "    assert 'needs onnxruntime' in str(err), err",
        'else:',
        "    raise AssertionError('rcnn.deploy.ort imported without onnxruntime')",
        "print('ok')",
    ])
    result = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'ok'
