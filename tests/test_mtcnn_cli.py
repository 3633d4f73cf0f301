"""MTCNN detector input checks and the command lines' argument checks (mtcnn.demo, evaluate,
prepare): errors name the argument or file, exit status 2 before any work, 1 for bad files."""
import hashlib

import cv2
import mxnet as mx
import numpy as np
import pytest

from conftest import require_shared
from mtcnn import demo, evaluate, prepare
from mtcnn.detector import MtcnnDetector
from rcnn import runtime

MODELS = 'assets/models/mtcnn-mxnet'


def released(net):
    return str(require_shared('%s/%s-0016.params' % (MODELS, net)))


def must_not_run(*args, **kwargs):
    raise AssertionError('work started')


# ---------------------------------------------------------------- the Python API

@pytest.mark.parametrize('threshold', [(0.6, 0.7), (0.6, 0.7, 0.7, 0.7), (0.6, 1.5, 0.7), (-0.1, 0.7, 0.7),
                                       (0.6, float('nan'), 0.7), ('0.6', 0.7, 0.7)])
def test_detector_thresholds_are_three_probabilities(threshold):
    with pytest.raises(ValueError, match=r'threshold must be three numbers in \[0, 1\] \(P-Net, R-Net, O-Net\)'):
        MtcnnDetector(must_not_run, threshold=threshold)


def test_detect_rejects_non_images_before_any_work():
    detector = MtcnnDetector(must_not_run)
    for img in (None, np.zeros((20, 20, 3), np.float64), np.zeros((20, 20, 4), np.uint8),
                np.zeros((0, 20, 3), np.uint8)):
        with pytest.raises(ValueError, match=r'MtcnnDetector.detect expects a BGR uint8 image of shape \(H, W, 3\)'):
            detector.detect(img)


def test_first_pyramid_level_above_the_limit_is_refused_before_any_work(monkeypatch):
    monkeypatch.setattr(cv2, 'resize', must_not_run)
    img = np.zeros((1000, 2000, 3), np.uint8)
    with pytest.raises(ValueError, match=r'the 2000x1000 image at the first pyramid scale 1 .* is 2.0 megapixels, '
                                         r'above the limit of 1 \(max_megapixels\)'):
        MtcnnDetector(must_not_run, min_face_size=12, max_megapixels=1).detect(img)
    with pytest.raises(ValueError, match='max_megapixels must be a finite number > 0'):
        MtcnnDetector(must_not_run, max_megapixels=0)
    # min_face_size 24 halves the first level: 1000 x 500 = 0.5 MP passes the check and runs P-Net.
    with pytest.raises(AssertionError, match='work started'):
        MtcnnDetector(must_not_run, min_face_size=24, max_megapixels=1).detect(img)


def test_missing_gpu_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 0)
    with pytest.raises(runtime.DeviceError,
                       match=r'^mx.gpu\(0\): this MXNet build has no CUDA support .*use mx.cpu\(\)$'):
        MtcnnDetector(released('pnet'), ctx=mx.gpu(0))


# ---------------------------------------------------------------- the command lines

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
        'demo': (demo.main, ['--image', image, '--out', str(tmp_path / 'out' / 'drawn.jpg')] + nets),
        'evaluate': (evaluate.main, ['--label', label] + nets),
        'prepare': (prepare.main, ['--net', 'onet', '--label', label, '--output', str(tmp_path / 'out')] + nets[:4]),
    }


@pytest.mark.parametrize('command', ['demo', 'evaluate', 'prepare'])
@pytest.mark.parametrize('extra, message', [
    (['--threshold', '0.6,0.7'], 'argument --threshold: expected 3 comma-separated numbers, got 2'),
    (['--threshold', '0.6,0.7,0.7,0.8'], 'argument --threshold: expected 3 comma-separated numbers, got 4'),
    (['--threshold', '0.6,1.7,0.7'], 'argument --threshold: must be a number in [0, 1]'),
    (['--gpu', '-2'], 'argument --gpu: expected a GPU id'),
    (['--gpu', 'gpu0'], 'argument --gpu: expected a GPU id'),
    (['--min-face-size', '8'], 'argument --min-face-size: must be >= 12'),
    (['--pnet', '{tmp}/nothere.params'], '--pnet: no such file: {tmp}/nothere.params'),
])
def test_arguments_are_checked_before_any_work(tmp_path, capsys, monkeypatch, command, extra, message):
    main, args = commands(tmp_path)[command]
    monkeypatch.setattr(MtcnnDetector, '__init__', must_not_run)
    with pytest.raises(SystemExit) as exit_info:
        main(args + [a.format(tmp=tmp_path) for a in extra])
    assert exit_info.value.code == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('command, args, message', [
    ('demo', ['--image', '{tmp}/none.jpg', '--out', '{tmp}/out/x.jpg'], '--image: no such file: {tmp}/none.jpg'),
    ('demo', ['--image', '{image}', '--out', '{tmp}/data/images'], '--out: {tmp}/data/images is a folder'),
    ('demo', ['--image', '{image}', '--out', '{image}'], '--out {image} would replace the input image {image}'),
    ('evaluate', ['--label', '{tmp}/none.txt', '--pnet', '{pnet}'], '--label: no such file: {tmp}/none.txt'),
    ('evaluate', ['--label', '{label}', '--pnet', '{pnet}', '--images', '{tmp}/none'],
     '--images: no such folder: {tmp}/none'),
    ('evaluate', ['--label', '{label}', '--pnet', '{pnet}', '--min-gt', '-1'],
     "argument --min-gt: must be a finite number >= 0, got '-1'"),
    ('prepare', ['--net', 'rnet', '--label', '{label}', '--output', '{tmp}/out'],
     '--net rnet mines hard examples with the trained pnet: pass --pnet'),
    ('prepare', ['--net', 'onet', '--label', '{label}', '--output', '{tmp}/out', '--pnet', '{pnet}'],
     '--net onet mines hard examples with the trained pnet and rnet: pass --rnet'),
    ('prepare', ['--net', 'pnet', '--label', '{label}', '--output', '{label}/out'],
     '--output: {label} is not a folder'),
])
def test_files_are_checked_before_any_work(tmp_path, capsys, monkeypatch, command, args, message):
    label = tiny_label(tmp_path / 'data')
    names = dict(tmp=tmp_path, image=tmp_path / 'data' / 'images' / 'e' / '0.jpg', label=label, pnet=released('pnet'))
    before = hashlib.sha256(names['image'].read_bytes()).hexdigest()
    monkeypatch.setattr(MtcnnDetector, '__init__', must_not_run)
    with pytest.raises(SystemExit) as exit_info:
        {'demo': demo.main, 'evaluate': evaluate.main, 'prepare': prepare.main}[command](
            [a.format(**names) for a in args])
    assert exit_info.value.code == 2
    assert message.format(**names) in capsys.readouterr().err
    assert hashlib.sha256(names['image'].read_bytes()).hexdigest() == before
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('command', ['demo', 'evaluate', 'prepare'])
def test_device_default_and_a_missing_gpu(tmp_path, capsys, caplog, monkeypatch, cpu_runtime_requests, command):
    main, args = commands(tmp_path)[command]
    contexts = []
    original = MtcnnDetector.__init__

    def record(self, *a, ctx=mx.cpu(), **kw):
        contexts.append(ctx)
        original(self, *a, ctx=ctx, **kw)

    monkeypatch.setattr(MtcnnDetector, '__init__', record)
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 0)
    with pytest.raises(SystemExit) as exit_info:
        main(args + ['--gpu', '0'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert '--gpu 0: this MXNet build has no CUDA support' in err and 'pass --gpu -1' in err
    assert not contexts and not cpu_runtime_requests
    with caplog.at_level('INFO', logger='rcnn.runtime'):
        main(args)
    assert 'no GPU available to MXNet: running on the CPU' in caplog.text
    assert contexts and all(ctx == mx.cpu() for ctx in contexts) and cpu_runtime_requests == ['cpu']


@pytest.mark.parametrize('command', ['demo', 'evaluate', 'prepare'])
def test_corrupt_params_file_is_a_one_line_error(tmp_path, capsys, command):
    main, args = commands(tmp_path)[command]
    bad = tmp_path / 'pnet-0016.params'
    data = open(released('pnet'), 'rb').read()
    bad.write_bytes(data[:len(data) // 2])
    args[args.index('--pnet') + 1] = str(bad)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.startswith('error: ') and err.count('\n') == 1 and str(bad) in err, err


def test_missing_or_corrupt_listed_image_is_named(tmp_path, capsys):
    main, args = commands(tmp_path)['evaluate']
    image = tmp_path / 'data' / 'images' / 'e' / '0.jpg'
    image.write_bytes(b'not a jpeg')
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err  # after the progress bar
    assert err.endswith('\nerror: cannot decode image %s (corrupt or not an image)\n' % image)
    image.unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1
    assert 'error: image %s (listed in %s) does not exist' % (image, tmp_path / 'data' / 'label.txt') \
        in capsys.readouterr().err
