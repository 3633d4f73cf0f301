"""The cascade (``mtcnn.detector``): each stage equals the original MXNet implementation's outputs."""
import cv2
import mxnet as mx
import numpy as np
import pytest

from facekit.mx.checkpoint import load_param_file
from mtcnn.commands.train import init_params
from mtcnn.detector import MtcnnDetector, transform
from mtcnn.predictor import Predictor
from mtcnn.symbol import get_symbol
from facekit.mx import runtime
from support import require_shared


MODELS = 'assets/models/mtcnn-mxnet'
NETS = ('pnet', 'rnet', 'onet')


def released(net):
    return str(require_shared('%s/%s-0016.params' % (MODELS, net)))


@pytest.fixture(scope='module')
def released_detector():
    return MtcnnDetector(released('pnet'), released('rnet'), released('onet'))


def test_stages_match_original_outputs(released_detector):
    """Each stage's calibrated boxes on test01.jpg equal the original MXNet implementation's
    (default settings): same count and order, boxes within 0.01 px, scores within 1e-4."""
    golden = np.load(require_shared('golden/mtcnn_mxnet_test01.npz'))
    img = cv2.imread(str(require_shared('assets/images/test01.jpg')))
    detector = released_detector
    pnet = detector.detect_pnet(img)
    rnet = detector.detect_rnet(img, pnet)
    onet, landmarks = detector.detect_onet(img, rnet)
    assert landmarks is None
    for name, got in (('pnet', pnet), ('rnet', rnet), ('onet', onet)):
        want = golden['test01_' + name]
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got[:, :4], want[:, :4], rtol=0, atol=0.01, err_msg=name)
        np.testing.assert_allclose(got[:, 4], want[:, 4], rtol=0, atol=1e-4, err_msg=name)
    boxes, _ = detector.detect(img)
    np.testing.assert_array_equal(boxes, onet)


def test_detector_graphs_give_the_stock_graphs_boxes(released_detector):
    """The detector's nets (oneDNN PReLU form, crops in chunks) find exactly the boxes of the
    stock test graphs run one batch at a time on test01.jpg."""
    img = cv2.imread(str(require_shared('assets/images/test01.jpg')))
    stock = MtcnnDetector(*[Predictor(get_symbol(net, 'test'), load_param_file(released(net))[0])
                            for net in NETS])
    np.testing.assert_array_equal(released_detector.detect(img)[0], stock.detect(img)[0])


def test_detect_on_blank_image_finds_nothing(released_detector):
    boxes, landmarks = released_detector.detect(np.full((100, 120, 3), 127, np.uint8))
    assert boxes.shape == (0, 5) and landmarks is None


def test_detect_rejects_non_images(released_detector):
    with pytest.raises(ValueError, match='BGR uint8'):
        released_detector.detect(np.zeros((10, 10), np.uint8))


def test_pyramid_scales():
    detector = MtcnnDetector(Predictor(get_symbol('pnet', 'test'), init_params(
        get_symbol('pnet', 'test'), {'data': (1, 3, 12, 12)})), min_face_size=24)
    scales = detector.scales(100, 200)
    assert scales[0] == 0.5 and scales[1] == pytest.approx(0.5 * 0.709)
    assert min(int(100 * scales[-1]), int(200 * scales[-1])) > 12
    assert min(int(100 * scales[-1] * 0.709), int(200 * scales[-1] * 0.709)) <= 12


def test_onet_landmarks_are_relative_to_the_square_crop():
    """With a landmark branch that always outputs the same normalised points,
    landmarks are box_x1 + r * side of the squared (unclipped) R-Net box."""
    points = np.array([0.3, 0.35, 0.7, 0.35, 0.5, 0.55, 0.35, 0.75, 0.65, 0.75], np.float32)
    symbol = get_symbol('onet', 'test', with_landmark=True)
    params = init_params(symbol, {'data': (1, 3, 48, 48)})
    params['fc2_weight'][:] = 0
    params['fc2_bias'][:] = mx.nd.array([-5, 5])       # every crop is a face
    params['fc3_weight'][:] = 0
    params['fc3_bias'][:] = 0
    params['fc4_weight'][:] = 0
    params['fc4_bias'][:] = mx.nd.array(points)
    pnet = Predictor(get_symbol('pnet', 'test'), init_params(get_symbol('pnet', 'test'),
                                                             {'data': (1, 3, 12, 12)}))
    detector = MtcnnDetector(pnet, onet=Predictor(symbol, params))
    img = np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8)
    dets = np.array([[10.0, 20.0, 29.0, 59.0, 0.9]])   # 20 x 40 -> square [0, 20, 39, 59]
    boxes, landmarks = detector.detect_onet(img, dets)
    np.testing.assert_allclose(boxes[:, :4], [[0, 20, 39, 59]])
    expected = np.array([0.0, 20.0]) + points.reshape(5, 2).astype(np.float64) * 40
    np.testing.assert_allclose(landmarks[0], expected, atol=1e-5)


def test_transform_is_exact():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    data = transform(pixels)
    assert data.shape == (1, 3, 16, 16) and data.dtype == np.float32 and data.flags.c_contiguous
    np.testing.assert_array_equal(data[0, 0].ravel(), (np.arange(256) - 127.5) * 0.0078125)


def test_boxes_outside_the_image_give_zero_crops(released_detector):
    img = np.full((60, 80, 3), 200, np.uint8)
    dets = np.array([[100.0, 10.0, 130.0, 40.0, 0.9],    # right of the image
                     [10.0, 10.0, 5.0, 4.0, 0.9],        # degenerate (x2 < x1)
                     [-10.0, -10.0, 19.0, 19.0, 0.9]])   # partly inside
    clipped, squared, data = released_detector._crops(img, dets, 24)
    assert data.shape == (3, 3, 24, 24)
    zero = (0 - 127.5) * 0.0078125
    assert (data[0] == zero).all() and (data[1] == zero).all()
    assert (data[2, :, :7] == zero).all() and (data[2, :, :, :7] == zero).all()  # 10 of 30 px outside
    assert (data[2, :, -6:, -6:] != zero).all()
    np.testing.assert_array_equal(clipped[2, :4], [0, 0, 19, 19])
    np.testing.assert_array_equal(squared[2, :4], [-10, -10, 19, 19])
    released_detector.detect_rnet(img, dets)


def must_not_run(*args, **kwargs):
    raise AssertionError('work started')


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
