"""RetinaFace.detect_batch: each image's detections are ``detect``'s for it (boxes and landmarks within
1e-4 px, the same number of faces) on the MXNet FP32 checkpoint, an INT8 checkpoint, and the dynamic
and static ONNX exports; images of several sizes, scales and flip, forwards of a few inputs."""
import shutil

import cv2
import numpy as np
import pytest

from facekit.draw import face_region
from facekit.mx.quantize import is_quantized
from rcnn.commands import retinaface_quantize
from rcnn.export import export_retinaface
from retinaface import RetinaFace, blur_faces
from support import channel_variance, released_mnet, require_shared, shifted_frames

PX_TOL = 1e-4


def photo(name):
    return cv2.imread(str(require_shared('assets/images/%s.jpg' % name)))


def images():
    """Five images of three sizes, in mixed order: video frames, t6 and t4."""
    frames = shifted_frames(3)
    return [frames[0], photo('t6'), frames[1], photo('t4'), frames[2]]


def assert_batch_is_detect(detector, imgs, **kwargs):
    got = detector.detect_batch(imgs, **kwargs)
    kwargs.pop('max_batch', None)
    assert len(got) == len(imgs)
    for img, (det, landmarks) in zip(imgs, got):
        ref_det, ref_landmarks = detector.detect(img, **kwargs)
        assert det.shape == ref_det.shape and det.shape[0] > 0
        np.testing.assert_allclose(det[:, :4], ref_det[:, :4], rtol=0, atol=PX_TOL)
        np.testing.assert_allclose(det[:, 4], ref_det[:, 4], rtol=0, atol=1e-6)
        np.testing.assert_allclose(landmarks, ref_landmarks, rtol=0, atol=PX_TOL)


@pytest.fixture(scope='module')
def released():
    return RetinaFace(released_mnet(), 0, ctx_id=-1)


@pytest.fixture(scope='module')
def int8_prefix(tmp_path_factory):
    """mnet.25 quantized to INT8 by tools/quantize.py, calibrated on t4."""
    folder = tmp_path_factory.mktemp('int8')
    shutil.copy(str(require_shared('assets/images/t4.jpg')), str(folder))
    prefix = str(folder / 'mnet.25-int8')
    assert retinaface_quantize(['--prefix', released_mnet(), '--epoch', '0', '--calib', str(folder), '--output',
                                prefix]) == 0
    return prefix


@pytest.fixture(scope='module')
def onnx_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('onnx') / 'mnet.25.onnx')
    export_retinaface(released_mnet(), 0, path)
    return path


@pytest.mark.parametrize('kwargs', [dict(threshold=0.5, max_batch=2),
                                    dict(threshold=0.3, scales=[1.0, 0.5], do_flip=True, max_batch=3)])
def test_mxnet_batch_equals_detect(released, kwargs):
    assert_batch_is_detect(released, images(), **kwargs)


@pytest.mark.slow
def test_int8_batch_equals_detect(int8_prefix):
    detector = RetinaFace(int8_prefix, 0, ctx_id=-1)
    assert is_quantized(detector.net.symbol)
    assert_batch_is_detect(detector, images(), threshold=0.5, do_flip=True, max_batch=4)


def test_onnx_batch_equals_detect(onnx_file):
    assert_batch_is_detect(RetinaFace.from_onnx(onnx_file), images(), threshold=0.3, scales=[1.0, 0.5],
                           do_flip=True, max_batch=4)


def test_a_static_export_runs_its_batch_of_one(tmp_path):
    path = str(tmp_path / 'static.onnx')
    export_retinaface(released_mnet(), 0, path, static_shape=(384, 640))
    detector = RetinaFace.from_onnx(path)
    assert detector.net.input_shape == (1, 3, 384, 640)
    assert_batch_is_detect(detector, shifted_frames(3), threshold=0.5, do_flip=True, max_batch=8)


def test_batches_of_one_size_run_as_one_forward(released, monkeypatch):
    """Three frames and t4, flip, max_batch 4: the six 640 x 384 inputs in forwards of 4 and 2, t4's two in one."""
    shapes = []
    forward = released._forward
    monkeypatch.setattr(released, '_forward', lambda ims: shapes.append((len(ims),) + ims[0].shape[:2])
                        or forward(ims))
    frames = shifted_frames(3)
    released.detect_batch(frames[:2] + [photo('t4'), frames[2]], do_flip=True, max_batch=4)
    assert sorted(shapes) == [(2, 360, 640), (2, 384, 640), (4, 384, 640)]


def test_no_image_gives_no_result(released):
    assert released.detect_batch([]) == []


@pytest.mark.parametrize('kwargs, message', [
    (dict(max_batch=0), 'max_batch must be an integer >= 1, got 0'),
    (dict(max_batch=2.0), 'max_batch must be an integer >= 1, got 2.0'),
    (dict(max_batch=True), 'max_batch must be an integer >= 1, got True'),
    (dict(threshold=2), r'threshold must be a number in \[0, 1\]'),
    (dict(scales=[100.0]), 'scale 100 turns the 640x384 image into a 64000x38400 network input'),
])
def test_arguments_are_checked_before_any_work(released, monkeypatch, kwargs, message):
    monkeypatch.setattr(released, '_forward', pytest.fail)
    with pytest.raises(ValueError, match=message):
        released.detect_batch(shifted_frames(2), **kwargs)


def test_a_bad_image_is_named_by_its_index(released, monkeypatch):
    monkeypatch.setattr(released, '_forward', pytest.fail)
    frames = shifted_frames(2)
    with pytest.raises(ValueError, match=r'RetinaFace.detect_batch \(image 2\) expects a BGR uint8 image'):
        released.detect_batch(frames + [frames[0].astype(np.float32)])


def test_the_python_api_blurs_the_faces_of_a_batch(released):
    """``from retinaface import RetinaFace, blur_faces``: the README's example on video frames."""
    frames = shifted_frames(2)
    for frame, (faces, _) in zip(frames, released.detect_batch(frames, threshold=0.8)):
        anonymised = blur_faces(frame, faces)
        assert len(faces) > 10
        for box in faces:
            region = face_region(box, *frame.shape[:2])
            assert channel_variance(anonymised[region]) < 0.1 * channel_variance(frame[region])
