"""The MTCNN export (``mtcnn.export``, ``tools/export_onnx.py mtcnn``): the released nets match the
detector's nets within the exporter's tolerance (max |onnx - mxnet| <= 1e-5 + 1e-3 * max |mxnet|);
the command's errors name the argument."""
import os
import shutil

import cv2
import numpy as np
import onnx
import pytest

from facekit.command import main
from facekit.files import file_digest
from facekit.ort import OnnxForward
from mtcnn import export as mtcnn_export
from mtcnn.defaults import INPUT_SIZE
from mtcnn.predictor import load_predictor
from mx_support import assert_outputs_close, mtcnn_tensor
from support import error_line, require_shared

MTCNN = 'assets/models/mtcnn-mxnet/%s-0016.params'


def export_command(argv):
    return main('mtcnn.commands.export', argv, prog='export_onnx.py mtcnn')


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
    result = mtcnn_export.export_mtcnn(net, params, path)
    forward = OnnxForward(path)
    expected_shape = (None, 3, None, None) if net == 'pnet' else (None, 3) + (INPUT_SIZE[net],) * 2
    assert forward.input_shape == expected_shape
    assert forward.output_names == ['cls_prob', 'conv4_2' if net == 'pnet' else 'fc3'] == result.output_names
    predictor = load_predictor(net, params)  # the detector's net (oneDNN form of the graph)
    for data in mtcnn_inputs(net):
        assert_outputs_close(forward.output_names, forward(data), predictor(data))
    if net != 'pnet':  # PReLU slopes over conv maps are (C, 1, 1), after the fully connected layer (C,)
        slopes = {i.name: tuple(i.dims) for i in onnx.load(path).graph.initializer if i.name.startswith('prelu')}
        fc_prelu = {'rnet': ('prelu4_gamma', 128), 'onet': ('prelu5_gamma', 256)}[net]
        assert slopes[fc_prelu[0]] == (fc_prelu[1],)
        assert slopes['prelu1_slope'][1:] == (1, 1)


def test_command_argument_errors_name_the_argument(capsys, tmp_path):
    pnet = str(require_shared(MTCNN % 'pnet'))
    out = str(tmp_path / 'm.onnx')
    for argv, message in (
            (['--net', 'pnet', '--params', out, '--output', out], '--params: no such file'),
            (['--net', 'qnet', '--params', pnet, '--output', out], "argument --net: invalid choice: 'qnet'"),
            (['--net', 'rnet', '--params', pnet, '--output', out, '--shape', '24', '24'],
             '--shape: rnet takes fixed-size crops'),
            (['--net', 'pnet', '--params', pnet, '--output', out, '--shape', '8', '100'],
             '--shape: a P-Net input is at least 12 x 12')):
        assert export_command(argv) == 2
        assert message in error_line(capsys.readouterr().err)


def test_the_export_never_writes_over_the_params_it_reads(capsys, tmp_path):
    """--output naming the --params file itself, a symbolic link or a hard link to it: refused even
    with --overwrite, the file unchanged."""
    params = tmp_path / 'pnet-0016.params'
    shutil.copy(str(require_shared(MTCNN % 'pnet')), str(params))
    before = file_digest(params)
    os.symlink(params, tmp_path / 'link.onnx')
    os.link(params, tmp_path / 'hard.onnx')
    for output in (params, tmp_path / 'link.onnx', tmp_path / 'hard.onnx'):
        argv = ['--net', 'pnet', '--params', str(params), '--output', str(output), '--overwrite']
        assert export_command(argv) == 2
        assert '--output: output %s would replace %s, which the export reads' % (output, params) in error_line(
            capsys.readouterr().err)
    assert file_digest(params) == before


def test_command_exports_a_net_and_prints_one_summary_line(capsys, tmp_path, cpu_runtime_requests):
    out = str(tmp_path / 'onet.onnx')
    assert export_command(['--net', 'onet', '--params', str(require_shared(MTCNN % 'onet')), '--output', out]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith('%s: opset 13, input data (batch, 3, 48, 48), 2 outputs' % out)
    assert 'onnxruntime matches MXNet on 1x3x48x48, 7x3x48x48' in lines[0]
    assert cpu_runtime_requests == ['cpu']
    assert OnnxForward(out).metadata['model'] == 'mtcnn-onet'


def test_an_unreadable_params_file_is_one_line_naming_it(capsys, tmp_path):
    params = tmp_path / 'pnet.params'
    params.write_bytes(b'\x00' * 64)
    assert export_command(['--net', 'pnet', '--params', str(params), '--output', str(tmp_path / 'm.onnx')]) == 1
    err = capsys.readouterr().err
    assert err.startswith('export_onnx.py mtcnn: error: %s' % params) and len(err.splitlines()) == 1, err
    assert not (tmp_path / 'm.onnx').exists()


def test_static_pnet(capsys, tmp_path):
    out = str(tmp_path / 'pnet.onnx')
    assert export_command(['--net', 'pnet', '--params', str(require_shared(MTCNN % 'pnet')), '--output', out,
                           '--shape', '60', '80']) == 0
    assert 'input data (1, 3, 60, 80)' in capsys.readouterr().out
    assert OnnxForward(out).input_shape == (1, 3, 60, 80)
