"""tools/quantize.py (``rcnn.commands.quantize``): the released mnet.25 quantized to INT8 on
three shared photos loads in RetinaFace, detect.py and test_widerface.py and finds the FP32
model's faces; calibration is deterministic; bad input is refused before any work."""
import logging
import os
import shutil

import cv2
import pytest

from facekit.boxes import matched_pairs
from facekit.files import file_digest
from facekit.mx.checkpoint import load_symbol
from facekit.mx.quantize import is_quantized, quantization_record
from facekit.prefix import params_path, symbol_path
from rcnn.commands import quantize as quantize_command
from rcnn.commands import retinaface_detect, retinaface_quantize, retinaface_test
from rcnn.contract import anchor_settings, recorded_anchors, same_anchors
from rcnn.dataset.synthetic import generate_widerface
from retinaface import RetinaFace
from support import error_line, folder_digests, released_mnet, require_shared

CALIBRATION = ('t2', 't3', 'test01')  # calibration photos; the matches are counted on the others
MIN_MATCHED = 0.95  # of the FP32 faces with an INT8 face at IoU >= 0.5, and the other way round


def photo(name):
    return str(require_shared('assets/images/%s.jpg' % name))


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp('calibration')
    for name in CALIBRATION:
        shutil.copy(photo(name), str(folder))
    return folder


def quantize(argv):
    return retinaface_quantize(argv, prog='tools/quantize.py')


@pytest.fixture(scope='module')
def int8(photos, tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp('int8') / 'mnet.25-int8')
    assert quantize(['--prefix', released_mnet(), '--epoch', '0', '--calib', str(photos), '--output', prefix]) == 0
    return prefix


@pytest.mark.slow
def test_the_int8_checkpoint_records_its_anchors_and_how_it_was_made(int8):
    symbol = load_symbol(symbol_path(int8))
    assert is_quantized(symbol)
    assert same_anchors(recorded_anchors(symbol), anchor_settings('net3'))  # the released model's layout
    record = quantization_record(symbol)
    assert record['calibration_images'] == 3 and record['source'] == 'mnet.25-0000.params'
    assert record['source_sha256'] == file_digest(params_path(released_mnet(), 0))
    assert sorted(os.listdir(os.path.dirname(int8))) == ['mnet.25-int8-0000.params', 'mnet.25-int8-symbol.json']


def test_int8_finds_the_fp32_faces_of_the_other_photos(int8):
    """Threshold 0.8, one scale, on the shared photos not used for calibration."""
    fp32_detector, int8_detector = RetinaFace(released_mnet(), 0, ctx_id=-1), RetinaFace(int8, 0, ctx_id=-1)
    fp32_faces = int8_faces = matched = 0
    for name in ('t1', 't4', 't6'):
        img = cv2.imread(photo(name))
        fp32, faces = fp32_detector.detect(img, threshold=0.8)[0], int8_detector.detect(img, threshold=0.8)[0]
        fp32_faces += len(fp32)
        int8_faces += len(faces)
        matched += len(matched_pairs(faces, fp32))
    assert fp32_faces > 20
    counts = (matched, fp32_faces, int8_faces)
    assert matched >= MIN_MATCHED * fp32_faces and matched >= MIN_MATCHED * int8_faces, counts


@pytest.mark.slow
def test_the_same_inputs_give_the_same_files(int8, photos, tmp_path):
    again = str(tmp_path / 'again')
    assert quantize(['--prefix', released_mnet(), '--epoch', '0', '--calib', str(photos), '--output', again]) == 0
    for path, other in ((symbol_path(int8), symbol_path(again)), (params_path(int8, 0), params_path(again, 0))):
        assert file_digest(path) == file_digest(other), path


def test_detect_py_and_test_widerface_run_the_int8_model(int8, tmp_path, capsys):
    assert retinaface_detect(['--prefix', int8, '--epoch', '0', '--image', photo('t4'), '--output',
                              str(tmp_path / 'out'), '--gpu', '-1'], prog='detect.py') == 0
    assert os.path.isfile(tmp_path / 'out' / 't4.jpg')
    data = tmp_path / 'data'
    generate_widerface(str(data), num_train=0, num_val=2, num_test=0, seed=4, workers=1)
    output = tmp_path / 'wout'
    assert retinaface_test(['--prefix', int8, '--epoch', '0', '--mode', '0', '--gpu', '-1', '--dataset_path',
                            str(data), '--image_set', 'val', '--output', str(output), '--gt',
                            str(data / 'ground_truth')], prog='test_widerface.py') == 0
    results = [name for _, _, names in os.walk(output) for name in names if name.endswith('.txt')]
    assert len(results) == 2
    assert 'easy' in capsys.readouterr().out


@pytest.mark.slow
def test_a_data_split_calibrates_too(tmp_path):
    data = tmp_path / 'data'
    generate_widerface(str(data), num_train=3, num_val=0, num_test=0, seed=5, workers=1)
    prefix = str(tmp_path / 'split-int8')
    assert quantize(['--prefix', released_mnet(), '--epoch', '0', '--calib', str(data / 'train'),
                     '--calib_images', '2', '--output', prefix]) == 0
    assert quantization_record(load_symbol(symbol_path(prefix)))['calibration_images'] == 2


def test_calibration_images_are_spread_evenly(tmp_path):
    for i in range(10):
        (tmp_path / ('%02d.jpg' % i)).write_bytes(b'')
    (tmp_path / 'notes.txt').write_text('')

    def names(paths):
        return [os.path.basename(p) for p in paths]

    assert names(quantize_command.calibration_paths(str(tmp_path), 4)) == ['00.jpg', '03.jpg', '06.jpg', '09.jpg']
    assert names(quantize_command.calibration_paths(str(tmp_path), 1)) == ['00.jpg']
    assert len(quantize_command.calibration_paths(str(tmp_path), 50)) == 10


@pytest.mark.parametrize('case, status, facts', [
    ('empty folder', 2, ['--calib', 'no .jpg/.jpeg/.png/.bmp files in folder']),
    ('missing folder', 2, ['--calib', 'no such folder']),
    ('output exists', 2, ['--output', 'exists (pass --overwrite']),
    ('output is the model', 2, ['--output', 'would replace the input', 'model-symbol.json']),
    ('truncated params', 1, ['model-0000.params', 'not a readable MXNet parameter file']),
    ('already int8', 1, ['already an INT8 model']),
])
def test_bad_input_is_refused_naming_what(case, status, facts, int8, photos, tmp_path, capsys):
    model = tmp_path / 'model'
    model.mkdir()
    for path in (symbol_path(released_mnet()), params_path(released_mnet(), 0)):
        shutil.copy(path, str(model / os.path.basename(path).replace('mnet.25', 'model')))
    prefix, calib, output = str(model / 'model'), str(photos), str(tmp_path / 'out' / 'q')
    extra = []
    if case == 'empty folder':
        calib = str(tmp_path / 'empty')
        os.mkdir(calib)
    elif case == 'missing folder':
        calib = str(tmp_path / 'nowhere')
    elif case == 'output exists':
        os.makedirs(os.path.dirname(output))
        open(params_path(output, 0), 'w').close()
    elif case == 'output is the model':
        output, extra = prefix, ['--overwrite']
    elif case == 'truncated params':
        data = open(params_path(prefix, 0), 'rb').read()
        open(params_path(prefix, 0), 'wb').write(data[:len(data) // 2])
    elif case == 'already int8':
        prefix = int8
    before = folder_digests(model)
    assert quantize(['--prefix', prefix, '--epoch', '0', '--calib', calib, '--output', output] + extra) == status
    error = error_line(capsys.readouterr().err)
    assert error.startswith('tools/quantize.py: error: ')
    for fact in facts:
        assert fact in error, (fact, error)
    assert folder_digests(model) == before
    assert not os.path.exists(symbol_path(output)) or case == 'output is the model'


def test_a_build_without_int8_support_is_an_error_before_any_work(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(quantize_command, 'int8_problem', lambda: 'this MXNet build has no oneDNN (MKLDNN)')
    assert quantize(['--prefix', released_mnet(), '--epoch', '0', '--calib', str(photos), '--output',
                     str(tmp_path / 'q')]) == 1
    assert error_line(capsys.readouterr().err).endswith('cannot quantize: this MXNet build has no oneDNN (MKLDNN)')
    assert os.listdir(tmp_path) == []


def test_a_cpu_without_vnni_is_told_int8_is_not_faster(photos, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(quantize_command, 'int8_is_faster', lambda: False)
    with caplog.at_level(logging.WARNING, logger='rcnn.commands.quantize'):
        assert quantize(['--prefix', released_mnet(), '--epoch', '0', '--calib', str(photos), '--calib_images', '1',
                         '--output', str(tmp_path / 'q')]) == 0
    assert 'this CPU lacks VNNI' in caplog.text
