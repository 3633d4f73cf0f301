"""The options shared by python -m mtcnn.demo, mtcnn.evaluate and mtcnn.prepare (``mtcnn.commands.options``)
and their checks: errors name the argument or file, exit status 2 before any work, 1 for bad files."""
import hashlib

import cv2
import mxnet as mx
import numpy as np
import pytest

from facekit.mx import runtime
from mtcnn.commands import mtcnn_detect, mtcnn_evaluate, mtcnn_prepare
from mtcnn.detector import MtcnnDetector
from support import error_line, require_shared

MODELS = 'assets/models/mtcnn-mxnet'
MAINS = {'demo': mtcnn_detect, 'evaluate': mtcnn_evaluate, 'prepare': mtcnn_prepare}


def released(net):
    return str(require_shared('%s/%s-0016.params' % (MODELS, net)))


def must_not_run(*args, **kwargs):
    raise AssertionError('work started')


def tiny_label(root):
    """One 120 x 160 noise image with one 40-px face, in the label.txt layout."""
    (root / 'images' / 'e').mkdir(parents=True)
    noise = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    assert cv2.imwrite(str(root / 'images' / 'e' / '0.jpg'), noise)
    (root / 'label.txt').write_text('# e/0.jpg\n20 30 40 40\n')
    return str(root / 'label.txt')


def commands(tmp_path):
    """name -> (main, arguments of a valid run)."""
    label = tiny_label(tmp_path / 'data')
    image = str(tmp_path / 'data' / 'images' / 'e' / '0.jpg')
    nets = ['--pnet', released('pnet'), '--rnet', released('rnet'), '--onet', released('onet')]
    return {
        'demo': (MAINS['demo'], ['--image', image, '--output', str(tmp_path / 'out' / 'drawn.jpg')] + nets),
        'evaluate': (MAINS['evaluate'], ['--label', label] + nets),
        'prepare': (MAINS['prepare'],
                    ['--net', 'onet', '--label', label, '--output', str(tmp_path / 'out')] + nets[:4]),
    }


@pytest.mark.parametrize('command', ['demo', 'evaluate', 'prepare'])
@pytest.mark.parametrize('extra, message', [
    (['--threshold', '0.6,0.7'], 'argument --threshold: expected 3 comma-separated numbers, got 2'),
    (['--threshold', '0.6,0.7,0.7,0.8'], 'argument --threshold: expected 3 comma-separated numbers, got 4'),
    (['--threshold', '0.6,1.7,0.7'], 'argument --threshold: must be a number in [0, 1]'),
    (['--gpu', '-2'], 'argument --gpu: expected a GPU id'),
    (['--gpu', 'gpu0'], 'argument --gpu: expected a GPU id'),
    (['--min-face-size', '8'], 'argument --min_face_size: must be >= 12'),
    (['--pnet', '{tmp}/nothere.params'], '--pnet: no such file: {tmp}/nothere.params'),
])
def test_arguments_are_checked_before_any_work(tmp_path, capsys, monkeypatch, command, extra, message):
    main, args = commands(tmp_path)[command]
    monkeypatch.setattr(MtcnnDetector, '__init__', must_not_run)
    assert main(args + [a.format(tmp=tmp_path) for a in extra]) == 2
    assert message.format(tmp=tmp_path) in error_line(capsys.readouterr().err)
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('command, args, message', [
    ('demo', ['--image', '{tmp}/none.jpg', '--out', '{tmp}/out/x.jpg'], '--image: no such file: {tmp}/none.jpg'),
    ('demo', ['--image', '{image}', '--out', '{tmp}/data/images'], '--output: {tmp}/data/images is a folder'),
    ('demo', ['--image', '{image}', '--output', '{image}', '--overwrite'],
     '--output {image} would replace the input {image}, which this command reads'),
    ('demo', ['--image', '{image}', '--output', '{pnet}', '--pnet', '{pnet}', '--overwrite'],
     '--output {pnet} would replace the input'),
    ('demo', ['--image', '{image}', '--output', '{tmp}/out/drawn'],
     '--output {tmp}/out/drawn: not an image file name OpenCV can write (use .jpg or .png)'),
    ('demo', ['--image', '{image}', '--output', '{label}'], '--output: {label} exists (pass --overwrite'),
    ('evaluate', ['--label', '{tmp}/none.txt', '--pnet', '{pnet}'], '--label: no such file: {tmp}/none.txt'),
    ('evaluate', ['--label', '{label}', '--pnet', '{pnet}', '--images', '{tmp}/none'],
     '--images: no such folder: {tmp}/none'),
    ('evaluate', ['--label', '{label}', '--pnet', '{pnet}', '--min-gt', '-1'],
     "argument --min_gt: must be a finite number >= 0, got '-1'"),
    ('prepare', ['--net', 'rnet', '--label', '{label}', '--output', '{tmp}/out'],
     '--net rnet mines hard examples with the trained pnet: pass --pnet'),
    ('prepare', ['--net', 'onet', '--label', '{label}', '--output', '{tmp}/out', '--pnet', '{pnet}'],
     '--net onet mines hard examples with the trained pnet and rnet: pass --rnet'),
    ('prepare', ['--net', 'pnet', '--label', '{label}', '--output', '{label}/out'],
     '--output: {label} is not a folder'),
])
def test_files_are_checked_before_any_work(tmp_path, capsys, monkeypatch, command, args, message):
    label = tiny_label(tmp_path / 'data')
    names = dict(tmp=tmp_path, image=tmp_path / 'data' / 'images' / 'e' / '0.jpg', label=label,
                 pnet=released('pnet'))
    before = hashlib.sha256(names['image'].read_bytes()).hexdigest()
    monkeypatch.setattr(MtcnnDetector, '__init__', must_not_run)
    assert MAINS[command]([a.format(**names) for a in args]) == 2
    assert message.format(**names) in error_line(capsys.readouterr().err)
    assert hashlib.sha256(names['image'].read_bytes()).hexdigest() == before
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('command', ['demo', 'evaluate', 'prepare'])
def test_device_default_and_a_missing_gpu(tmp_path, capsys, caplog, monkeypatch, cpu_runtime_requests, command):
    main, args = commands(tmp_path)[command]
    contexts = []
    original = MtcnnDetector.__init__

    def record(self, *a, ctx=None, **kw):
        contexts.append(ctx)
        original(self, *a, ctx=ctx, **kw)

    monkeypatch.setattr(MtcnnDetector, '__init__', record)
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 0)
    assert main(args + ['--gpu', '0']) == 2
    err = error_line(capsys.readouterr().err)
    assert '--gpu 0: this MXNet build has no CUDA support' in err and 'pass --gpu -1' in err
    assert not contexts and not cpu_runtime_requests
    with caplog.at_level('INFO', logger='facekit.mx.runtime'):
        assert main(args) == 0
    assert 'no GPU available to MXNet: running on the CPU' in caplog.text
    assert contexts and all(ctx == mx.cpu() for ctx in contexts) and cpu_runtime_requests == ['cpu']


@pytest.mark.parametrize('command', ['demo', 'evaluate', 'prepare'])
def test_corrupt_params_file_is_a_one_line_error(tmp_path, capsys, command):
    main, args = commands(tmp_path)[command]
    bad = tmp_path / 'pnet-0016.params'
    data = open(released('pnet'), 'rb').read()
    bad.write_bytes(data[:len(data) // 2])
    args[args.index('--pnet') + 1] = str(bad)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert ': error: ' in error_line(err) and str(bad) in error_line(err) and 'Traceback' not in err, err


def test_missing_or_corrupt_listed_image_is_named(tmp_path, capsys):
    main, args = commands(tmp_path)['evaluate']
    image = tmp_path / 'data' / 'images' / 'e' / '0.jpg'
    image.write_bytes(b'not a jpeg')
    assert main(args) == 1
    assert error_line(capsys.readouterr().err).endswith('error: cannot decode image %s (corrupt or not an image)'
                                                        % image)
    image.unlink()
    assert main(args) == 1
    assert 'error: image %s (listed in %s) does not exist' % (image, tmp_path / 'data' / 'label.txt') \
        in error_line(capsys.readouterr().err)


def test_prepare_refuses_a_label_file_without_a_usable_face(tmp_path, capsys):
    label = tiny_label(tmp_path / 'data')
    (tmp_path / 'data' / 'label.txt').write_text('# e/0.jpg\n20 30 10 10\n')
    assert MAINS['prepare'](['--net', 'pnet', '--label', label, '--output', str(tmp_path / 'out')]) == 1
    assert error_line(capsys.readouterr().err).endswith(
        '%s: no face with a side of at least 40 pixels (--min_face) in 1 images: no training sample can be made'
        % label)
    assert not (tmp_path / 'out').exists()


def test_prepare_stops_at_an_empty_image_naming_it(tmp_path, capsys):
    label = tiny_label(tmp_path / 'data')
    (tmp_path / 'data' / 'images' / 'e' / '0.jpg').write_bytes(b'')
    assert MAINS['prepare'](['--net', 'pnet', '--label', label, '--output', str(tmp_path / 'out')]) == 1
    assert error_line(capsys.readouterr().err).endswith(': error: image %s is empty (0 bytes)' % (
        tmp_path / 'data' / 'images' / 'e' / '0.jpg'))
    assert not (tmp_path / 'out').exists()
