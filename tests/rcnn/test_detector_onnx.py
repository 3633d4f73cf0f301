"""RetinaFace on its ONNX export (``RetinaFace.from_onnx``).

The ONNX detector shares the MXNet detector's post-processing; only the forward differs,
and the export agrees with MXNet to 1e-5 + 1e-3 of each output's scale
(``facekit.mx.onnx_export``). So detections agree closely but not bit for bit: scores
that tie to 1e-6 may swap places, and detections are matched by box (within 0.05 px and
1e-3 in score).
"""
import cv2
import numpy as np
import pytest

from rcnn.commands import retinaface_train as train
from rcnn.dataset.synthetic import generate_widerface
from rcnn.export import export_retinaface
from retinaface import RetinaFace
from support import assert_same_faces, released_mnet, require_shared

GOLDEN = 'golden/retinaface_mnet25_single_scale.npz'
PX_TOL = 0.05     # pixels
SCORE_TOL = 1e-3


def read(name):
    return cv2.imread(str(require_shared('assets/images/%s.jpg' % name)))


@pytest.fixture(scope='module')
def mnet_onnx(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('onnx') / 'mnet.25.onnx')
    export_retinaface(released_mnet(), 0, path)
    return path


@pytest.mark.parametrize('name', ['t4', 't6'])
def test_from_onnx_gives_the_golden_detections(mnet_onnx, name):
    golden = np.load(require_shared(GOLDEN))
    det, landmarks = RetinaFace.from_onnx(mnet_onnx).detect(read(name), threshold=0.02, scales=[1.0])
    assert_same_faces(det, landmarks, golden['%s_single_det' % name], golden['%s_single_landmarks' % name])


def test_one_file_serves_two_image_sizes_and_the_pyramid(mnet_onnx):
    onnx_detector = RetinaFace.from_onnx(mnet_onnx)
    mxnet_detector = RetinaFace(released_mnet(), 0, ctx_id=-1)
    for img in (read('t4'), read('t1')):  # 640 x 360, 1280 x 886
        got = onnx_detector.detect(img, threshold=0.3, scales=[1.0, 0.75], do_flip=True)
        assert len(got[0]) > 0
        assert_same_faces(*got, *mxnet_detector.detect(img, threshold=0.3, scales=[1.0, 0.75], do_flip=True))


def test_static_export_detects_its_size_only(tmp_path):
    path = str(tmp_path / 'static.onnx')
    export_retinaface(released_mnet(), 0, path, static_shape=(360, 640))
    detector = RetinaFace.from_onnx(path)
    assert len(detector.detect(read('t4'), threshold=0.5)[0]) > 0
    # Another size is refused before any work, naming the size the export takes.
    with pytest.raises(ValueError, match=r'turns the 596x334 image into a 596x334 network input, but .*static.onnx '
                                         r'takes only 640x360 \(a static export'):
        detector.detect(read('t6'), threshold=0.5)


def test_exported_checkpoint_keeps_its_anchors(tmp_path):
    """A train.py checkpoint with another anchor layout: the export records it, from_onnx decodes with it."""
    root = tmp_path / 'data'
    generate_widerface(str(root), num_train=1, num_val=1, num_test=0, seed=5, workers=1)
    prefix = str(tmp_path / 'model' / 'mnet')
    assert train(['--network', 'mnet', '--dataset', 'retinaface', '--dataset_path', str(root), '--prefix', prefix,
                  '--anchors', 'net3a', '--batch_images', '1', '--workers', '0', '--end_epoch', '1']) == 0
    path = str(tmp_path / 'net3a.onnx')
    export_retinaface(prefix, 1, path)
    onnx_detector = RetinaFace.from_onnx(path)
    mxnet_detector = RetinaFace(prefix, 1, ctx_id=-1)
    for stride, anchors in mxnet_detector._anchors_fpn.items():
        assert anchors.shape[0] == 4  # 2 scales x 2 ratios
        np.testing.assert_array_equal(onnx_detector._anchors_fpn[stride], anchors)
    # Every anchor's candidate (threshold 0), in anchor order: random weights score every
    # anchor alike, so the detections after NMS would depend on ties.
    img = read('t4')
    got = onnx_detector._decode([out[0] for out in onnx_detector._forward([img])], img.shape, 0.0)
    ref = mxnet_detector._decode([out[0] for out in mxnet_detector._forward([img])], img.shape, 0.0)
    assert len(ref[0]) == 4 * (12 * 20 + 23 * 40 + 45 * 80)
    for a, b, tol in zip(got, ref, (PX_TOL, SCORE_TOL, PX_TOL)):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol)
    with pytest.raises(ValueError, match="net3a.onnx records anchors .* network='net3'"):
        RetinaFace.from_onnx(path, network='net3')
