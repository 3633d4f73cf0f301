"""MtcnnDetector.detect_batch: each image's boxes and landmarks are ``detect``'s for it (within 1e-4 px,
the same number of faces), with the released MXNet weights and with a landmark branch; images of
several sizes, one without a face, P-Net forwards of a few images."""
import cv2
import numpy as np
import pytest

from mtcnn.detector import MtcnnDetector
from support import require_shared

PX_TOL = 1e-4


def released(net):
    return str(require_shared('assets/models/mtcnn-mxnet/%s-0016.params' % net))


@pytest.fixture(scope='module')
def detector():
    return MtcnnDetector(released('pnet'), released('rnet'), released('onet'))


def images():
    """test01 (640 x 480), two 640 x 384 views of it, a blank 640 x 384 image and t6 (596 x 334)."""
    test01 = cv2.imread(str(require_shared('assets/images/test01.jpg')))
    t6 = cv2.imread(str(require_shared('assets/images/t6.jpg')))
    return [test01[:384].copy(), test01, np.full((384, 640, 3), 127, np.uint8), test01[96:].copy(), t6]


def assert_batch_is_detect(detector, imgs, **kwargs):
    got = detector.detect_batch(imgs, **kwargs)
    assert len(got) == len(imgs)
    found = 0
    for img, (boxes, landmarks) in zip(imgs, got):
        ref_boxes, ref_landmarks = detector.detect(img)
        assert boxes.shape == ref_boxes.shape
        np.testing.assert_allclose(boxes[:, :4], ref_boxes[:, :4], rtol=0, atol=PX_TOL)
        np.testing.assert_allclose(boxes[:, 4], ref_boxes[:, 4], rtol=0, atol=1e-6)
        assert (landmarks is None) == (ref_landmarks is None)
        if landmarks is not None:
            np.testing.assert_allclose(landmarks, ref_landmarks, rtol=0, atol=PX_TOL)
        found += len(boxes)
    return found


def test_batch_equals_detect(detector):
    assert assert_batch_is_detect(detector, images(), max_batch=2) > 10


def test_p_net_runs_the_images_of_one_size_together(detector, monkeypatch):
    """Three 640 x 384 images and one 640 x 480, max_batch 2: at each pyramid level of the first size
    forwards of 2 and 1 images, of the second one of 1."""
    batches = []
    pnet = detector.pnet
    monkeypatch.setattr(detector, 'pnet', lambda data: batches.append((len(data), data.shape[2:])) or pnet(data))
    detector.detect_batch(images()[:4], max_batch=2)
    expected = []
    for height, count in ((384, [2, 1]), (480, [1])):
        for scale in detector.scales(height, 640):
            expected += [(n, (int(height * scale), int(640 * scale))) for n in count]
    assert sorted(batches) == sorted(expected)


def test_landmarks_of_a_batch(detector):
    """The same cascade whose O-Net also returns landmarks (fixed points of each crop)."""
    onet = detector.onet

    def onet_with_landmarks(data):
        prob, box = onet(data)[:2]
        return [prob, box, np.tile(np.linspace(0.1, 0.9, 10, dtype=np.float32), (len(data), 1))]

    with_landmarks = MtcnnDetector(detector.pnet, detector.rnet, onet_with_landmarks)
    assert assert_batch_is_detect(with_landmarks, images(), max_batch=3) > 10


def test_stages_left_out(detector):
    """Without R-Net and O-Net the batch gives each image's P-Net boxes, as detect does."""
    assert assert_batch_is_detect(MtcnnDetector(detector.pnet), images()[:2]) > 10


@pytest.mark.parametrize('max_batch', [0, 1.5, False])
def test_max_batch_is_checked(detector, max_batch):
    with pytest.raises(ValueError, match='max_batch must be an integer >= 1, got %r' % max_batch):
        detector.detect_batch(images()[:1], max_batch=max_batch)


def test_a_bad_image_is_named_by_its_index_before_any_work(monkeypatch):
    detector = MtcnnDetector(pytest.fail, max_megapixels=0.05)
    imgs = images()
    with pytest.raises(ValueError, match=r'MtcnnDetector.detect_batch \(image 1\): the 640x480 image at the first '
                                         r'pyramid scale 0.5 .* above the limit of 0.05'):
        detector.detect_batch([imgs[2][:100], imgs[1]])
    with pytest.raises(ValueError, match=r'MtcnnDetector.detect_batch \(image 0\) expects a BGR uint8 image'):
        detector.detect_batch([imgs[0][:, :, 0]])
    assert detector.detect_batch([]) == []
