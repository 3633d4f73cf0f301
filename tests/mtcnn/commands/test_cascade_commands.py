"""python -m mtcnn.prepare, mtcnn.train, mtcnn.evaluate and mtcnn.demo end to end on tiny data."""
import os

import cv2
import numpy as np

from facekit.mx.checkpoint import load_param_file
from mtcnn.loader import read_sample_list
from mtcnn.commands import mtcnn_detect, mtcnn_evaluate, mtcnn_prepare, mtcnn_train
from support import require_shared


MODELS = 'assets/models/mtcnn-mxnet'


def released(net):
    return str(require_shared('%s/%s-0016.params' % (MODELS, net)))


def _tiny_dataset(root):
    """Two 120x160 noise images with two 40-px faces each, in the label.txt layout."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(2):
        name = 'e/%d.jpg' % i
        os.makedirs(os.path.join(root, 'images', 'e'), exist_ok=True)
        cv2.imwrite(os.path.join(root, 'images', name), rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
        lines.append('# ' + name)
        for x, y in ((20, 30), (90, 40)):
            points = ' '.join('%d %d 0' % (x + dx, y + dy) for dx, dy in
                              ((12, 14), (28, 14), (20, 22), (14, 30), (26, 30)))
            lines.append('%d %d 40 40 %s 0.1' % (x, y, points))
    with open(os.path.join(root, 'label.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return os.path.join(root, 'label.txt')


def test_command_lines(tmp_path, capsys):
    label = _tiny_dataset(str(tmp_path / 'data'))
    samples, model = str(tmp_path / 'samples'), str(tmp_path / 'model')
    assert mtcnn_prepare(['--net', 'pnet', '--label', label, '--output', samples, '--min-face', '20',
                          '--no-landmark']) == 0
    assert not os.path.exists(os.path.join(samples, '12', 'landmark_12.txt'))
    crops = {}
    for seed in ('0', '1'):   # --seed chooses the random crops; 0 is the default
        out = str(tmp_path / ('samples-seed%s' % seed))
        assert mtcnn_prepare(['--net', 'pnet', '--label', label, '--output', out, '--min-face', '20',
                              '--no-landmark', '--seed', seed]) == 0
        crops[seed] = open(os.path.join(out, '12', 'positive_12.txt')).read()
    assert crops['0'] == open(os.path.join(samples, '12', 'positive_12.txt')).read() != crops['1']
    weights = {}
    for seed in ('0', '1'):   # --seed chooses the initial weights
        assert mtcnn_train(['--net', 'pnet', '--samples', os.path.join(samples, 'train_12.txt'), '--prefix',
                            os.path.join(model, 'seed%s' % seed, 'pnet'), '--end_epoch', '1', '--batch_size', '16',
                            '--lr_step', '', '--no_mirror', '--seed', seed]) == 0
        weights[seed] = load_param_file(os.path.join(model, 'seed%s' % seed, 'pnet-0001.params'))[0]
    pnet = os.path.join(model, 'seed0', 'pnet-0001.params')
    assert not np.array_equal(weights['0']['conv1_weight'].asnumpy(), weights['1']['conv1_weight'].asnumpy())
    assert mtcnn_prepare(['--net', 'rnet', '--label', label, '--output', samples, '--min_face', '20', '--pnet', pnet,
                          '--min_face_size', '20', '--threshold', '0,0,0']) == 0
    assert read_sample_list(os.path.join(samples, 'train_24.txt')).labels.tolist().count(-2) > 0
    assert mtcnn_evaluate(['--label', label, '--pnet', pnet, '--min_face_size', '20', '--min_gt', '0']) == 0
    assert 'faces 4 detections' in capsys.readouterr().out


def test_demo_writes_annotated_image(tmp_path, capsys, cpu_runtime_requests):
    out = tmp_path / 'out.jpg'
    assert mtcnn_detect(['--image', str(require_shared('assets/images/test01.jpg')), '--output', str(out),
                         '--pnet', released('pnet'), '--rnet', released('rnet'), '--onet', released('onet')]) == 0
    assert '8 faces' in capsys.readouterr().out
    assert cpu_runtime_requests == ['cpu']
    assert cv2.imread(str(out)).shape == (480, 640, 3)
