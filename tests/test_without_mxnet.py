"""The deployment side needs no MXNet: with ``import mxnet`` made to fail, the ONNX detectors
(``RetinaFace.from_onnx``, ``MtcnnDetector`` on ``.onnx`` nets) and their commands
(``detect.py --onnx``, ``python -m mtcnn.demo``) run and give the golden detections.

RetinaFace on t4 / t6 (threshold 0.02, one scale): the original's detections within 0.05 px
and 1e-3 in score. MTCNN on test01 with the released weights: the original MXNet cascade's
boxes within 0.05 px.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mtcnn.export import export_mtcnn
from rcnn.export import export_retinaface
from support import REPO, assert_same_faces, released_mnet, require_shared

RETINAFACE_GOLDEN = 'golden/retinaface_mnet25_single_scale.npz'
MTCNN_GOLDEN = 'golden/mtcnn_mxnet_test01.npz'
NETS = ('pnet', 'rnet', 'onet')
THRESHOLD = 0.02  # the golden runs'


@pytest.fixture(scope='module')
def no_mxnet(tmp_path_factory):
    """An environment in which ``import mxnet`` raises ImportError (a stand-in package first on the path)."""
    blocker = tmp_path_factory.mktemp('blocker')
    (blocker / 'mxnet').mkdir()
    (blocker / 'mxnet' / '__init__.py').write_text('raise ImportError("mxnet is blocked: this process must not '
                                                   'need it")\n')
    path = [str(blocker)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    """mnet.25 and the released MTCNN nets exported to ONNX (with MXNet, in this process)."""
    folder = tmp_path_factory.mktemp('onnx')
    export_retinaface(released_mnet(), 0, str(folder / 'mnet.25.onnx'))
    for net in NETS:
        export_mtcnn(net, str(require_shared('assets/models/mtcnn-mxnet/%s-0016.params' % net)),
                     str(folder / ('%s.onnx' % net)))
    return folder


def image(name):
    return str(require_shared('assets/images/%s.jpg' % name))


def run(args, env):
    result = subprocess.run([sys.executable] + args, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def test_mxnet_is_blocked(no_mxnet):
    result = subprocess.run([sys.executable, '-c', 'import mxnet'], cwd=REPO, capture_output=True, text=True,
                            env=no_mxnet)
    assert result.returncode == 1 and 'mxnet is blocked' in result.stderr


def test_the_onnx_detectors_give_the_golden_detections_without_mxnet(no_mxnet, models, tmp_path):
    script = '''
import sys
import cv2
import numpy as np
from mtcnn.detector import MtcnnDetector
from retinaface import RetinaFace
retinaface = RetinaFace.from_onnx(sys.argv[1] + '/mnet.25.onnx')
mtcnn = MtcnnDetector(*[sys.argv[1] + '/%s.onnx' % net for net in ('pnet', 'rnet', 'onet')])
found = {}
for name in ('t4', 't6'):
    found[name + '_det'], found[name + '_landmarks'] = retinaface.detect(cv2.imread(sys.argv[3] % name),
                                                                        threshold=0.02)
found['mtcnn'], _ = mtcnn.detect(cv2.imread(sys.argv[3] % 'test01'))
np.savez(sys.argv[2], **found)
'''
    out = tmp_path / 'found.npz'
    run(['-c', script, str(models), str(out), os.path.join(os.path.dirname(image('t4')), '%s.jpg')], no_mxnet)
    found = np.load(str(out))
    golden = np.load(require_shared(RETINAFACE_GOLDEN))
    for name in ('t4', 't6'):
        assert_same_faces(found[name + '_det'], found[name + '_landmarks'],
                          golden['%s_single_det' % name], golden['%s_single_landmarks' % name])
    assert_same_faces(found['mtcnn'], None, np.load(require_shared(MTCNN_GOLDEN))['test01_onet'], None)


def test_detect_py_onnx_gives_the_golden_detections_without_mxnet(no_mxnet, models, tmp_path):
    photos = tmp_path / 'photos'
    photos.mkdir()
    for name in ('t4', 't6'):
        shutil.copy(image(name), str(photos))
    faces_json = tmp_path / 'faces.json'
    run(['detect.py', '--onnx', str(models / 'mnet.25.onnx'), '--image', str(photos), '--output',
         str(tmp_path / 'out'), '--json', str(faces_json), '--thresh', str(THRESHOLD)], no_mxnet)
    assert_json_faces_are_golden(json.loads(faces_json.read_text()))
    assert sorted(os.listdir(tmp_path / 'out')) == ['t4.jpg', 't6.jpg']


def assert_json_faces_are_golden(record):
    """``record``: detect.py's JSON for t4 and t6."""
    golden = np.load(require_shared(RETINAFACE_GOLDEN))
    images = {os.path.basename(entry['image'])[:-len('.jpg')]: entry['faces'] for entry in record['images']}
    assert sorted(images) == ['t4', 't6']
    for name, faces in images.items():
        det = np.array([face['box'] + [face['score']] for face in faces]).reshape(-1, 5)
        landmarks = np.array([face['landmarks'] for face in faces]).reshape(-1, 5, 2)
        assert_same_faces(det, landmarks, golden['%s_single_det' % name], golden['%s_single_landmarks' % name])


def test_the_mtcnn_demo_on_onnx_nets_gives_the_golden_boxes_without_mxnet(no_mxnet, models, tmp_path):
    result = run(['-m', 'mtcnn.demo', '--image', image('test01'), '--output', str(tmp_path / 'faces.jpg')]
                 + ['--%s=%s' % (net, models / ('%s.onnx' % net)) for net in NETS], no_mxnet)
    rows = [line.split() for line in result.stdout.splitlines() if len(line.split()) == 5]
    boxes = np.array(rows, dtype=np.float64).reshape(-1, 5)
    # The demo prints boxes with 2 decimals, within the tolerance.
    assert_same_faces(boxes, None, np.load(require_shared(MTCNN_GOLDEN))['test01_onet'], None)
    assert (tmp_path / 'faces.jpg').stat().st_size > 0
