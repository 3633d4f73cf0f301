"""Detection on ONNX exports: RetinaFace.from_onnx, MtcnnDetector on .onnx nets and detect.py --onnx.

The ONNX detectors share the MXNet detectors' post-processing; only the forward
differs, and the export agrees with MXNet to 1e-5 + 1e-3 of each output's scale
(``rcnn.deploy.onnx_export``). So detections agree closely but not bit for bit:
scores that tie to 1e-6 may swap places, and detections are matched by box.
"""
import json

import cv2
import numpy as np
import pytest

import detect
import train
from conftest import require_shared
from mtcnn.detector import MtcnnDetector
from rcnn.dataset.synthetic import generate_widerface
from rcnn.deploy import onnx_export
from retinaface import RetinaFace

MNET = 'assets/models/retinaface-mnet025/mnet.25'
GOLDEN = 'golden/retinaface_mnet25_single_scale.npz'
PX_TOL = 0.05     # pixels
SCORE_TOL = 1e-3


def mnet_prefix():
    return str(require_shared(MNET + '-symbol.json'))[:-len('-symbol.json')]


def read(name):
    return cv2.imread(str(require_shared('assets/images/%s.jpg' % name)))


def assert_same_faces(det, landmarks, ref_det, ref_landmarks, px=PX_TOL, score=SCORE_TOL):
    """Same number of faces; each reference face has one within ``px`` (box, landmarks) and ``score``."""
    assert det.shape == ref_det.shape
    used = set()
    for i, ref in enumerate(ref_det):
        distance = np.abs(det[:, :4] - ref[:4]).max(axis=1)
        j = int(np.argmin(distance))
        assert distance[j] <= px and j not in used, (i, ref, det[j])
        used.add(j)
        assert abs(det[j, 4] - ref[4]) <= score
        if ref_landmarks is not None:
            assert np.abs(landmarks[j] - ref_landmarks[i]).max() <= px


@pytest.fixture(scope='module')
def mnet_onnx(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('onnx') / 'mnet.25.onnx')
    onnx_export.export_retinaface(mnet_prefix(), 0, path)
    return path


@pytest.mark.parametrize('name', ['t4', 't6'])
def test_from_onnx_gives_the_golden_detections(mnet_onnx, name):
    golden = np.load(require_shared(GOLDEN))
    det, landmarks = RetinaFace.from_onnx(mnet_onnx).detect(read(name), threshold=0.02, scales=[1.0])
    assert_same_faces(det, landmarks, golden['%s_single_det' % name], golden['%s_single_landmarks' % name])


def test_one_file_serves_two_image_sizes_and_the_pyramid(mnet_onnx):
    onnx_detector = RetinaFace.from_onnx(mnet_onnx)
    mxnet_detector = RetinaFace(mnet_prefix(), 0, ctx_id=-1)
    for img in (read('t4'), read('t1')):  # 640 x 360, 1280 x 886
        got = onnx_detector.detect(img, threshold=0.3, scales=[1.0, 0.75], do_flip=True)
        assert len(got[0]) > 0
        assert_same_faces(*got, *mxnet_detector.detect(img, threshold=0.3, scales=[1.0, 0.75], do_flip=True))


def test_static_export_detects_its_size_only(tmp_path):
    path = str(tmp_path / 'static.onnx')
    onnx_export.export_retinaface(mnet_prefix(), 0, path, static_shape=(360, 640))
    detector = RetinaFace.from_onnx(path)
    assert len(detector.detect(read('t4'), threshold=0.5)[0]) > 0
    with pytest.raises(ValueError, match=r'static.onnx takes data of shape \(1, 3, 360, 640\)'):
        detector.detect(read('t6'), threshold=0.5)


def test_exported_checkpoint_keeps_its_anchors(tmp_path):
    """A train.py checkpoint with another anchor layout: the export records it, from_onnx decodes with it."""
    root = tmp_path / 'data'
    generate_widerface(str(root), num_train=2, num_val=1, num_test=0, seed=5, workers=1)
    prefix = str(tmp_path / 'model' / 'mnet')
    train.main(['--network', 'mnet', '--dataset', 'retinaface', '--dataset_path', str(root), '--prefix', prefix,
                '--anchors', 'net3a', '--batch_images', '1', '--workers', '0',
                '--max_iters', '1'])
    path = str(tmp_path / 'net3a.onnx')
    onnx_export.export_retinaface(prefix, 1, path)
    onnx_detector = RetinaFace.from_onnx(path)
    mxnet_detector = RetinaFace(prefix, 1, ctx_id=-1)
    for stride, anchors in mxnet_detector._anchors_fpn.items():
        assert anchors.shape[0] == 4  # 2 scales x 2 ratios
        np.testing.assert_array_equal(onnx_detector._anchors_fpn[stride], anchors)
    # Every anchor's candidate (threshold 0), in anchor order: random weights score every
    # anchor alike, so the detections after NMS would depend on ties.
    img = read('t4')
    got = onnx_detector._decode(onnx_detector._forward(img), img.shape, 0.0)
    ref = mxnet_detector._decode(mxnet_detector._forward(img), img.shape, 0.0)
    assert len(ref[0]) == 4 * (12 * 20 + 23 * 40 + 45 * 80)
    for a, b, tol in zip(got, ref, (PX_TOL, SCORE_TOL, PX_TOL)):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol)
    with pytest.raises(ValueError, match="net3a.onnx records anchors .* network='net3'"):
        RetinaFace.from_onnx(path, network='net3')


def test_mtcnn_cascade_on_onnx_nets(tmp_path):
    params = {net: str(require_shared('assets/models/mtcnn-mxnet/%s-0016.params' % net))
              for net in ('pnet', 'rnet', 'onet')}
    exported = {}
    for net, path in params.items():
        exported[net] = str(tmp_path / ('%s.onnx' % net))
        onnx_export.export_mtcnn(net, path, exported[net])
    img = read('test01')
    boxes, _ = MtcnnDetector(*[exported[n] for n in ('pnet', 'rnet', 'onet')]).detect(img)
    ref_boxes, _ = MtcnnDetector(*[params[n] for n in ('pnet', 'rnet', 'onet')]).detect(img)
    assert len(ref_boxes) > 0
    assert_same_faces(boxes, None, ref_boxes, None, px=0.01, score=1e-4)
    with pytest.raises(ValueError, match=r"rnet.onnx is an ONNX export of 'mtcnn-rnet', not of the pnet"):
        MtcnnDetector(exported['rnet'])


def test_detect_cli_on_an_onnx_model(mnet_onnx, tmp_path, capsys):
    image = str(require_shared('assets/images/t4.jpg'))
    out = tmp_path / 'out'
    assert detect.main(['--onnx', mnet_onnx, '--image', image, '--output', str(out),
                        '--json', str(out / 'faces.json')]) == 0
    faces = json.loads((out / 'faces.json').read_text())
    assert faces['onnx'] == mnet_onnx and 'prefix' not in faces
    det, _ = RetinaFace(mnet_prefix(), 0, ctx_id=-1).detect(read('t4'), threshold=0.8)
    got = np.array([face['box'] + [face['score']] for face in faces['images'][0]['faces']])
    assert_same_faces(got, None, det, None)
    for extra, message in ((['--epoch', '0'], '--epoch goes with --prefix'),
                           (['--gpu', '0'], 'an ONNX model runs on the CPU')):
        with pytest.raises(SystemExit):
            detect.main(['--onnx', mnet_onnx, '--image', image, '--output', str(out)] + extra)
        assert message in capsys.readouterr().err
