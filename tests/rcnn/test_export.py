"""The RetinaFace export (``rcnn.export``, ``tools/export_onnx.py retinaface``): the released model and a
train.py checkpoint match MXNet within the exporter's tolerance (max |onnx - mxnet| <=
1e-5 + 1e-3 * max |mxnet|); the command's errors name the argument or the file, and it never
writes over the model it reads."""
import os
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest

from facekit.command import main
from facekit.files import file_digest
from facekit.mx.checkpoint import load_checkpoint
from facekit.mx.onnx_convert import OPSET
from facekit.ort import OnnxForward
from mx_support import assert_outputs_close, mxnet_outputs, onnx_names, rgb_tensor
from rcnn import export as retinaface_export
from rcnn.dataset.synthetic import generate_widerface
from support import REPO, error_line, released_mnet, require_shared

EXPORT = {'retinaface': 'rcnn.commands.export', 'mtcnn': 'mtcnn.commands.export'}


def export_command(argv):
    return main(EXPORT, argv, prog='export_onnx.py')


@pytest.fixture(scope='module')
def mnet_onnx(tmp_path_factory):
    """The released mnet.25 exported with dynamic batch, height and width."""
    prefix = released_mnet()
    path = str(tmp_path_factory.mktemp('mnet') / 'mnet.25.onnx')
    result = retinaface_export.export_retinaface(prefix, 0, path)
    return path, result


def test_released_mnet25_one_file_serves_two_image_sizes(mnet_onnx):
    path, result = mnet_onnx
    symbol, arg_params, aux_params = load_checkpoint(released_mnet(), 0)
    assert result.opset == OPSET == onnx.load(path).opset_import[0].version
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
    result = retinaface_export.export_retinaface(released_mnet(), 0, path, static_shape=(360, 640))
    assert result.input_shape == (1, 3, 360, 640) and result.checked_shapes == [(1, 3, 360, 640)]
    forward = OnnxForward(path)
    assert forward.input_shape == (1, 3, 360, 640)
    for output in onnx.load(path).graph.output:
        assert all(d.dim_value > 0 for d in output.type.tensor_type.shape.dim), output.name
    image = cv2.imread(str(require_shared('assets/images/t4.jpg')))
    assert image.shape[:2] == (360, 640)
    symbol, arg_params, aux_params = load_checkpoint(released_mnet(), 0)
    data = rgb_tensor(image)
    assert_outputs_close(forward.output_names, forward(data), mxnet_outputs(symbol, arg_params, aux_params, data))
    with pytest.raises(ValueError, match=r'static.onnx takes data of shape \(1, 3, 360, 640\).*\(1, 3, 334, 596\)'):
        forward(rgb_tensor(cv2.imread(str(require_shared('assets/images/t6.jpg')))))
    with pytest.raises(ValueError, match='at least 32 x 32'):
        retinaface_export.input_spec((16, 640))
    with pytest.raises(ValueError, match='10000 x 10000 is 100.0 megapixels, above the limit of 20'):
        retinaface_export.input_spec((10000, 10000))


@pytest.fixture(scope='module')
def train_checkpoint(tmp_path_factory):
    """A train.py checkpoint: one epoch (two batches: an image and its mirror) of fine-tuning mnet.25 on
    synthetic data (realistic outputs, unlike a fresh initialisation's near-constant ones)."""
    root = tmp_path_factory.mktemp('train')
    dataset = str(root / 'retinaface')
    generate_widerface(dataset, num_train=1, num_val=1, num_test=1, seed=3, workers=1)
    prefix = str(root / 'tuned')
    result = subprocess.run([sys.executable, 'train.py', '--network', 'mnet', '--dataset', 'retinaface',
                             '--dataset_path', dataset, '--prefix', prefix, '--batch_images', '1', '--workers', '0',
                             '--pretrained', released_mnet(), '--pretrained_epoch', '0', '--end_epoch', '1'],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return prefix


@pytest.mark.slow
def test_train_py_checkpoint_exports_and_matches(train_checkpoint, tmp_path):
    path = str(tmp_path / 'trained.onnx')
    result = retinaface_export.export_retinaface(train_checkpoint, 1, path)
    assert result.notes == []
    symbol, arg_params, aux_params = load_checkpoint(train_checkpoint, 1)
    released, _ = load_checkpoint(released_mnet(), 0)[1:]
    assert not np.array_equal(arg_params['face_rpn_cls_score_stride8_weight'].asnumpy(),
                              released['face_rpn_cls_score_stride8_weight'].asnumpy())
    forward = OnnxForward(path)
    data = rgb_tensor(cv2.imread(str(require_shared('assets/images/t4.jpg'))))
    assert_outputs_close(forward.output_names, forward(data), mxnet_outputs(symbol, arg_params, aux_params, data))


def test_command_argument_errors_name_the_argument(capsys, tmp_path):
    prefix = released_mnet()
    out = str(tmp_path / 'm.onnx')
    for argv, message in (
            (['--prefix', str(tmp_path / 'none'), '--epoch', '0', '--output', out],
             '--prefix: %s-symbol.json not found' % (tmp_path / 'none')),
            (['--prefix', prefix, '--epoch', '7', '--output', out], '--epoch: %s-0007.params not found' % prefix),
            (['--prefix', prefix, '--epoch', '0', '--output', str(tmp_path / 'no' / 'm.onnx')],
             '--output: folder %s of output' % (tmp_path / 'no')),
            (['--prefix', prefix, '--epoch', '0', '--output', out, '--shape', '16', '640'],
             '--shape: a RetinaFace input is at least 32 x 32'),
            (['--prefix', prefix, '--epoch', '0', '--output', out, '--shape', '10000', '10000'],
             '--shape: 10000 x 10000 is 100.0 megapixels, above the limit of 20')):
        assert export_command(['retinaface'] + argv) == 2
        assert message in error_line(capsys.readouterr().err)
    open(out, 'w').close()
    assert export_command(['retinaface', '--prefix', prefix, '--epoch', '0', '--output', out]) == 2
    assert '--output: output %s exists (pass --overwrite' % out in error_line(capsys.readouterr().err)


@pytest.mark.parametrize('suffix', ['-0000.params', '-symbol.json'])
def test_the_export_never_writes_over_the_model_it_reads(suffix, capsys, tmp_path):
    """Not even with --overwrite, by its own name or through a link."""
    for name in ('mnet.25-symbol.json', 'mnet.25-0000.params'):
        os.symlink(released_mnet().replace('mnet.25', name), str(tmp_path / name))
    prefix = str(tmp_path / 'mnet.25')
    model = tmp_path / ('mnet.25' + suffix)
    before = file_digest(str(model))
    (tmp_path / 'link').symlink_to(model)
    for output in (str(model), str(tmp_path / 'link')):
        assert export_command(['retinaface', '--prefix', prefix, '--epoch', '0', '--output', output,
                               '--overwrite']) == 2
        assert '--output: output %s would replace %s, which the export reads' % (output, model) in error_line(
            capsys.readouterr().err)
    assert file_digest(str(model)) == before


def test_command_refuses_an_unwritable_folder(capsys, monkeypatch, tmp_path):
    folder = tmp_path / 'locked'
    folder.mkdir(mode=0o500)
    access = os.access
    # root may write into a read-only folder: report it read-only to this check as it is to other users
    monkeypatch.setattr(os, 'access', lambda path, mode: access(path, mode) and not (
        os.fspath(path) == str(folder) and mode & os.W_OK))
    assert export_command(['retinaface', '--prefix', released_mnet(), '--epoch', '0', '--output',
                           str(folder / 'm.onnx')]) == 2
    assert '--output: folder %s of output %s is not writable' % (folder, folder / 'm.onnx') in capsys.readouterr().err


def test_a_model_file_that_cannot_be_read_is_one_line_naming_it(capsys, tmp_path):
    prefix = tmp_path / 'toy'
    prefix.with_name('toy-symbol.json').write_text('{"nodes": [')
    os.symlink(released_mnet() + '-0000.params', str(prefix) + '-0000.params')
    assert export_command(['retinaface', '--prefix', str(prefix), '--epoch', '0', '--output',
                           str(tmp_path / 'm.onnx')]) == 1
    err = capsys.readouterr().err
    assert err.startswith('export_onnx.py: error: %s' % prefix.with_name('toy-symbol.json')) and \
        len(err.splitlines()) == 1, err
    assert not (tmp_path / 'm.onnx').exists()


@pytest.mark.slow
def test_the_launcher_exports_and_prints_one_summary_line(tmp_path):
    out = str(tmp_path / 'mnet.onnx')
    result = subprocess.run([sys.executable, 'tools/export_onnx.py', 'retinaface', '--prefix', released_mnet(),
                             '--epoch', '0', '--output', out], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith('%s: opset 13, input data (batch, 3, height, width)' % out)
