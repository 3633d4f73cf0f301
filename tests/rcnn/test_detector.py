"""RetinaFace detector: the original's detections on the released mnet.25 (golden), from the
shipped JSON and from our own symbol; flip, multi-scale, nocrop, voting, decay4 and the API."""
import copy
import os

import cv2
import mxnet as mx
import numpy as np
import pytest
from easydict import EasyDict as edict

from facekit.image import input_shape
from facekit.mx import runtime
from rcnn.evaluation.modes import get_scales
from rcnn.config import get_config
from rcnn.contract import anchor_settings
from rcnn.symbol import get_symbol_test
from rcnn.symbol.symbol_common import deploy_outputs
from retinaface import RetinaFace, bbox_vote
from support import require_shared

GOLDEN = 'golden/retinaface_mnet25_single_scale.npz'
MNET_PARAMS = 'assets/models/retinaface-mnet025/mnet.25-0000.params'
# Golden tolerances: boxes and landmarks within 0.01 px, scores within 1e-4.
PX_TOL, SCORE_TOL = 0.01, 1e-4


def shared_prefix():
    return str(require_shared(MNET_PARAMS))[:-len('-0000.params')]


def read_image(name):
    img = cv2.imread(str(require_shared('assets/images/%s.jpg' % name)))
    assert img is not None
    return img


@pytest.fixture(scope='module')
def released():
    """Detector on the shipped mnet.25 symbol and parameters (CPU)."""
    return RetinaFace(shared_prefix(), 0, ctx_id=-1)


@pytest.fixture(scope='module')
def ours(tmp_path_factory):
    """Detector on our code-built mnet deploy symbol with the released parameters."""
    params = require_shared(MNET_PARAMS)
    prefix = str(tmp_path_factory.mktemp('ours') / 'mnet')
    cfg, _ = get_config('mnet', 'retinaface')
    get_symbol_test('mnet', copy.deepcopy(cfg)).save(prefix + '-symbol.json')
    os.symlink(params, prefix + '-0000.params')
    return RetinaFace(prefix, 0, ctx_id=-1)


def assert_same_detections(det, landmarks, ref_det, ref_landmarks):
    assert det.shape == ref_det.shape and det.dtype == np.float64
    np.testing.assert_allclose(det[:, :4], ref_det[:, :4], rtol=0, atol=PX_TOL)
    np.testing.assert_allclose(det[:, 4], ref_det[:, 4], rtol=0, atol=SCORE_TOL)
    if ref_landmarks is not None:
        assert landmarks.shape == ref_landmarks.shape and landmarks.dtype == np.float32
        np.testing.assert_allclose(landmarks, ref_landmarks, rtol=0, atol=PX_TOL)


@pytest.mark.parametrize('detector', ['released', 'ours'])
@pytest.mark.parametrize('name', ['t4', 't6'])
def test_golden_single_scale(detector, name, request):
    golden = np.load(require_shared(GOLDEN))
    det, landmarks = request.getfixturevalue(detector).detect(read_image(name), threshold=0.02, scales=[1.0],
                                                              do_flip=False)
    assert_same_detections(det, landmarks, golden['%s_single_det' % name], golden['%s_single_landmarks' % name])


def mirror(det, landmarks, width):
    det = det.copy()
    det[:, [0, 2]] = width - det[:, [2, 0]] - 1
    landmarks = landmarks.copy()
    landmarks[:, :, 0] = width - landmarks[:, :, 0] - 1
    return det, landmarks[:, [1, 0, 2, 4, 3]]


def sort_rows(det, landmarks):
    order = np.lexsort((det[:, 1], det[:, 0], -det[:, 4]))
    return det[order], landmarks[order]


def detect_both(detector, img, **kwargs):
    """Detections of ``img`` and, mirrored back, of its mirror image (rows sorted alike)."""
    det, landmarks = detector.detect(img, **kwargs)
    det_m, landmarks_m = detector.detect(np.ascontiguousarray(img[:, ::-1]), **kwargs)
    return sort_rows(det, landmarks), sort_rows(*mirror(det_m, landmarks_m, img.shape[1]))


def test_flip_is_mirror_invariant(released):
    """With flip an image and its mirror get the same two network inputs: the detections
    mirror each other exactly."""
    got, expected = detect_both(released, read_image('t4'), threshold=0.5, do_flip=True)
    assert got[0].shape[0] > 10
    assert_same_detections(*got, *expected)


def test_multiscale_flip_is_mirror_invariant_within_the_flip_offset(released):
    """Scales 1 and 0.5 (exact on 640x360) with flip. The original mirrors boxes at the
    scaled resolution (x' = w - x - 1, then / scale), which is 1/scale - 1 px off the
    mirror at full resolution, so the property holds within 1 px at scale 0.5."""
    got, expected = detect_both(released, read_image('t4'), threshold=0.5, scales=[1.0, 0.5], do_flip=True)
    assert got[0].shape[0] > 10
    assert got[0].shape == expected[0].shape
    np.testing.assert_allclose(got[0][:, 4], expected[0][:, 4], rtol=0, atol=SCORE_TOL)
    np.testing.assert_allclose(got[0][:, 1::2], expected[0][:, 1::2], rtol=0, atol=PX_TOL)
    np.testing.assert_allclose(got[0][:, 0::2][:, :2], expected[0][:, 0::2][:, :2], rtol=0, atol=1 + PX_TOL)


def test_scale_maps_boxes_back_to_the_image(released):
    img = read_image('t4')
    det, landmarks = released.detect(img, threshold=0.3, scales=[0.5])
    small = cv2.resize(img, None, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_LINEAR)
    ref_det, ref_landmarks = released.detect(small, threshold=0.3)
    ref_det[:, :4] *= 2
    assert_same_detections(det, landmarks, ref_det, ref_landmarks * 2)


def test_flip_adds_the_mirrored_pass(released):
    img = read_image('t4')
    single, _ = released.detect(img, threshold=0.5)
    both, _ = released.detect(img, threshold=0.5, do_flip=True)
    # Every face found without flip is still found (IoU > 0.5 with some box) with it.
    for box in single:
        ix = np.maximum(0, np.minimum(box[2], both[:, 2]) - np.maximum(box[0], both[:, 0]) + 1)
        iy = np.maximum(0, np.minimum(box[3], both[:, 3]) - np.maximum(box[1], both[:, 1]) + 1)
        area = lambda b: (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)  # noqa: E731
        iou = ix * iy / (area(box) + area(both) - ix * iy)
        assert iou.max() > 0.5


def test_nocrop_equals_detecting_the_zero_padded_image(released):
    """nocrop pads (bottom, right) to multiples of 32 with zeros: t4 640x360 -> 640x384."""
    img = read_image('t4')
    padded = np.zeros((384, 640, 3), dtype=np.uint8)
    padded[:360] = img
    nocrop = RetinaFace(shared_prefix(), 0, ctx_id=-1, nocrop=True)
    det, landmarks = nocrop.detect(img, threshold=0.3)
    ref_det, ref_landmarks = released.detect(padded, threshold=0.3)
    assert_same_detections(det, landmarks, ref_det, ref_landmarks)
    # On a multiple of 32 there is nothing to pad.
    square = np.ascontiguousarray(img[:352, :608])
    assert_same_detections(*nocrop.detect(square, threshold=0.3), *released.detect(square, threshold=0.3))


def test_vote_merges_overlapping_candidates(released):
    voter = RetinaFace(shared_prefix(), 0, ctx_id=-1, vote=True)
    img = read_image('t4')
    det, landmarks = voter.detect(img, threshold=0.5)
    plain, _ = released.detect(img, threshold=0.5)
    assert landmarks is None
    assert 0 < det.shape[0] <= 750 and det.dtype == np.float64
    assert np.all(det[:, 4] >= 0.5)
    # Each voted box merges a cluster led by an NMS survivor: same top score, box within 3 px.
    for box in plain[:10]:
        match = np.argmin(np.abs(det[:, :4] - box[:4]).max(axis=1))
        assert abs(det[match, 4] - box[4]) < 1e-6
        assert np.abs(det[match, :4] - box[:4]).max() < 3.0


def test_bbox_vote_rules():
    det = np.array([[0, 0, 10, 10, 0.9],     # cluster with the next box
                    [1, 1, 11, 11, 0.6],
                    [50, 50, 60, 60, 0.8],   # lone top box: dropped
                    [100, 100, 110, 110, 0.5]], dtype=np.float32)  # lone but last: kept
    det = det[np.argsort(-det[:, 4])]
    out = bbox_vote(det, 0.4)
    merged = (np.array([0, 0, 10, 10]) * 0.9 + np.array([1, 1, 11, 11]) * 0.6) / 1.5
    np.testing.assert_allclose(out[0], np.r_[merged, 0.9], rtol=1e-6)
    np.testing.assert_allclose(out[1], [100, 100, 110, 110, 0.5], rtol=1e-6)
    assert out.shape == (2, 5)
    many = np.tile(np.array([[0, 0, 10, 10, 0.9]]), (2000, 1)) + np.repeat(np.arange(1000) * 20.0, 2)[:, None] \
        * np.array([1, 0, 1, 0, 0])
    assert bbox_vote(many, 0.4).shape == (750, 5)


def toy_checkpoint(prefix, strides, fg_logits, landmark=True):
    """A deploy checkpoint whose face probability is constant per stride: softmax([0, fg_logit])."""
    layout = anchor_settings('net4')[1]  # net3's levels plus stride 4
    cfg = edict(RPN_FEAT_STRIDE=list(strides), FACE_LANDMARK=landmark,
                RPN_ANCHOR_CFG={str(s): dict(layout[str(s)], NUM_ANCHORS=2) for s in strides})
    data = mx.sym.Variable('data')
    feats = {s: mx.sym.Pooling(data, kernel=(s, s), stride=(s, s), pool_type='avg') for s in strides}
    symbol = deploy_outputs(feats, cfg)
    arg_shapes, _, _ = symbol.infer_shape(data=(1, 3, 64, 64))
    params = {n: mx.nd.zeros(s) for n, s in zip(symbol.list_arguments(), arg_shapes) if n != 'data'}
    for stride, logit in zip(strides, fg_logits):
        params['face_rpn_cls_score_stride%d_bias' % stride] = mx.nd.array([0, 0, logit, logit])
    mx.model.save_checkpoint(prefix, 0, symbol, params, {})
    return prefix


def test_decay4_scales_stride4_scores_after_the_threshold(tmp_path):
    fg = np.log(9.0)  # face probability 0.9 on stride 4, 0.1 elsewhere
    prefix = toy_checkpoint(str(tmp_path / 'toy4'), [32, 16, 8, 4], [-fg, -fg, -fg, fg])
    img = np.random.RandomState(0).randint(0, 255, (64, 64, 3)).astype(np.uint8)
    full, _ = RetinaFace(prefix, 0, ctx_id=-1, network='net4', decay4=1.0).detect(img, threshold=0.6)
    decayed, landmarks = RetinaFace(prefix, 0, ctx_id=-1, network='net4', decay4=0.5).detect(img, threshold=0.6)
    assert full.shape[0] > 0 and full.shape == decayed.shape
    np.testing.assert_allclose(full[:, 4], 0.9, rtol=1e-5)
    # Kept at 0.9 >= 0.6, then halved below the threshold, as the original does.
    np.testing.assert_allclose(decayed[:, 4], 0.45, rtol=1e-5)
    np.testing.assert_array_equal(decayed[:, :4], full[:, :4])
    assert landmarks.shape == (decayed.shape[0], 5, 2)


def test_model_without_landmarks(tmp_path):
    prefix = toy_checkpoint(str(tmp_path / 'nolm'), [32, 16, 8], [3.0, -3.0, -3.0], landmark=False)
    detector = RetinaFace(prefix, 0, ctx_id=-1)
    assert not detector.use_landmarks
    det, landmarks = detector.detect(np.zeros((64, 96, 3), np.uint8), threshold=0.5)
    assert det.shape[0] > 0 and landmarks is None
    # Zero deltas: boxes are stride-32 anchors (512 / 256 px) clipped to the image.
    assert np.all(det[:, :4] >= 0) and np.all(det[:, [2]] <= 95) and np.all(det[:, [3]] <= 63)


def test_no_detection_returns_empty_arrays(released):
    det, landmarks = released.detect(np.zeros((64, 64, 3), np.uint8), threshold=0.99)
    assert det.shape == (0, 5) and landmarks.shape == (0, 5, 2)


def test_missing_files_and_parameters_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere-symbol.json'):
        RetinaFace(str(tmp_path / 'nothere'), 0, ctx_id=-1)
    prefix = toy_checkpoint(str(tmp_path / 'toy'), [32, 16, 8], [0, 0, 0])
    with pytest.raises(FileNotFoundError, match='toy-0003.params'):
        RetinaFace(prefix, 3, ctx_id=-1)
    params = mx.nd.load(prefix + '-0000.params')
    del params['arg:face_rpn_bbox_pred_stride16_weight']
    mx.nd.save(prefix + '-0001.params', params)
    with pytest.raises(ValueError, match='toy-0001.params lacks 1 parameters.*face_rpn_bbox_pred_stride16_weight'):
        RetinaFace(prefix, 1, ctx_id=-1)
    with pytest.raises(ValueError, match='toy-symbol.json records anchors .* network=.net4.'):
        RetinaFace(prefix, 0, ctx_id=-1, network='net4')
    with pytest.raises(ValueError, match='unsupported network'):
        RetinaFace(prefix, 0, ctx_id=-1, network='ssh')
    # The released symbol records no anchors: the network's layout must fit its outputs.
    with pytest.raises(ValueError, match='needs 2 or 3 per stride'):
        RetinaFace(shared_prefix(), 0, ctx_id=-1, network='net4')


def test_a_layout_the_model_was_not_built_for_is_refused_naming_both():
    """net3a has 4 anchors per position where mnet.25's heads have 2: the outputs say so."""
    with pytest.raises(ValueError, match=r'mnet.25-symbol.json: output face_rpn_cls_prob_reshape_stride32 is '
                                         r'\(C, H, W\) = \(4, 2, 2\) on a 64x64 input, but anchor layout net3a needs '
                                         r'\(8, 2, 2\) at stride 32 \(4 anchors per position\)'):
        RetinaFace(shared_prefix(), 0, ctx_id=-1, network='net3a')


def test_detect_rejects_non_bgr_images(released):
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        released.detect(np.zeros((32, 32), np.uint8))
    for img in (np.zeros((32, 32, 3), np.float32), np.zeros((32, 32, 4), np.uint8), np.zeros((0, 32, 3), np.uint8),
                [[[0, 0, 0]]]):
        with pytest.raises(ValueError, match=r'RetinaFace.detect expects a BGR uint8 image of shape \(H, W, 3\)'):
            released.detect(img)


@pytest.mark.parametrize('kwargs, message', [
    (dict(threshold=-0.1), r'threshold must be a number in \[0, 1\], got -0.1'),
    (dict(threshold=1.5), r'threshold must be a number in \[0, 1\]'),
    (dict(threshold=float('nan')), r'threshold must be a number in \[0, 1\]'),
    (dict(threshold='0.5'), r'threshold must be a number in \[0, 1\]'),
    (dict(scales=[]), 'scales must be a non-empty list of finite numbers > 0'),
    (dict(scales=1.0), 'scales must be a non-empty list'),
    (dict(scales=[1.0, 0.0]), 'scales must be a non-empty list'),
    (dict(scales=[-1.0]), 'scales must be a non-empty list'),
    (dict(scales=[float('inf')]), 'scales must be a non-empty list'),
    (dict(scales=[float('nan')]), 'scales must be a non-empty list'),
    (dict(scales=['1']), 'scales must be a non-empty list'),
    (dict(scales=[1e-3]), 'scale 0.001 turns the 64x48 image into an empty network input'),
])
def test_detect_validates_threshold_and_scales(released, kwargs, message):
    with pytest.raises(ValueError, match=message):
        released.detect(np.zeros((48, 64, 3), np.uint8), **kwargs)


def test_scaled_input_above_the_size_limit_is_refused_before_any_work(released, monkeypatch):
    """detect.py --scales 40 on a 1280 x 886 photo got the original the OOM killer: here the
    ValueError comes before the image is resized or the network runs."""
    def must_not_run(*args, **kwargs):
        raise AssertionError('work started')

    monkeypatch.setattr(cv2, 'resize', must_not_run)
    monkeypatch.setattr(released, '_forward', must_not_run)
    with pytest.raises(ValueError, match=r'scale 40 turns the 1280x886 image into a 51200x35440 network input '
                                         r'\(1814.5 megapixels\), above the limit of 20 megapixels'):
        released.detect(np.zeros((886, 1280, 3), np.uint8), scales=[1.0, 40])


def test_size_limit_default_admits_mode1_and_is_overridable(tmp_path):
    """The largest input of test_widerface.py --mode 1 (1700 x 2550, from an 800 x 1200 image) is
    inside the default limit; max_megapixels lowers it, and nocrop's padding counts."""
    scales, _ = get_scales((800, 1200), 1)
    assert max(input_shape(800, 1200, s) for s in scales) == (1700, 2550)
    prefix = toy_checkpoint(str(tmp_path / 'toy'), [32, 16, 8], [0, 0, 0])
    assert RetinaFace(prefix, 0, ctx_id=-1).check_input(800, 1200, scales) == scales
    with pytest.raises(ValueError, match=r'2550x1700 network input \(4.3 megapixels\), above the limit of 4'):
        RetinaFace(prefix, 0, ctx_id=-1, max_megapixels=4).check_input(800, 1200, scales)
    assert input_shape(100, 70, 1.0, nocrop=True) == (128, 96)
    with pytest.raises(ValueError, match=r'96x128 network input'):
        RetinaFace(prefix, 0, ctx_id=-1, nocrop=True, max_megapixels=0.01).detect(np.zeros((100, 70, 3), np.uint8))
    for bad in (0, -1, float('inf'), 'big'):
        with pytest.raises(ValueError, match='max_megapixels must be a finite number > 0'):
            RetinaFace(prefix, 0, ctx_id=-1, max_megapixels=bad)


def test_missing_gpu_is_a_one_line_error(tmp_path, monkeypatch):
    prefix = toy_checkpoint(str(tmp_path / 'toy'), [32, 16, 8], [0, 0, 0])
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 0)
    with pytest.raises(runtime.DeviceError, match=r'^mx.gpu\(0\): this MXNet build has no CUDA support .*; '
                                                  r'to run on the CPU, pass ctx_id=-1$'):
        RetinaFace(prefix, 0, ctx_id=0)
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 1)
    with pytest.raises(runtime.DeviceError, match=r'mx.gpu\(1\): MXNet sees 1 GPU\(s\) here'):
        RetinaFace(prefix, 0, ctx_id=1)


def test_corrupt_symbol_files_are_named(tmp_path):
    prefix = toy_checkpoint(str(tmp_path / 'toy'), [32, 16, 8], [0, 0, 0])
    symbol = open(prefix + '-symbol.json', 'rb').read()
    truncated = r'toy-symbol.json:\d+:\d+: not a valid symbol file \(truncated\?\)'
    for content, message in ((symbol[:len(symbol) // 2], truncated),
                             (b'\x00\xff' * 50, 'toy-symbol.json: not a symbol file'),
                             (b'[1, 2]', 'toy-symbol.json: not an MXNet symbol'),
                             (symbol.replace(b'"op": "Pooling"', b'"op": "NoSuchOperator"'),
                              'toy-symbol.json: not an MXNet symbol: .*NoSuchOperator')):
        with open(prefix + '-symbol.json', 'wb') as f:
            f.write(content)
        with pytest.raises(ValueError, match=message):
            RetinaFace(prefix, 0, ctx_id=-1)


def test_anchor_settings():
    strides, cfg = anchor_settings('net3')
    assert strides == [32, 16, 8]
    assert {k: v['SCALES'] for k, v in cfg.items()} == {'32': (32, 16), '16': (8, 4), '8': (2, 1)}
    assert anchor_settings('net4')[0] == [32, 16, 8, 4]
    assert anchor_settings('net3a')[1]['8']['RATIOS'] == (1.0, 1.5)
    strides, cfg = anchor_settings('net5')
    assert strides == [64, 32, 16, 8, 4]
    np.testing.assert_allclose(cfg['8']['SCALES'], 2.0 * 2.0 ** (np.arange(3) / 3.0))
    assert anchor_settings('net6')[1]['128']['SCALES'] == (32,)


def test_detect_center_prefers_large_central_faces(released):
    img = read_image('t4')
    det, landmarks = released.detect(img, threshold=0.5)
    box, landmark = released.detect_center(img, threshold=0.5)
    centre = np.array([img.shape[1], img.shape[0]]) / 2.0
    merit = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1]) \
        - 2.0 * (((det[:, 0] + det[:, 2]) / 2 - centre[0]) ** 2 + ((det[:, 1] + det[:, 3]) / 2 - centre[1]) ** 2)
    np.testing.assert_array_equal(box, det[np.argmax(merit)])
    np.testing.assert_array_equal(landmark, landmarks[np.argmax(merit)])
    assert released.detect_center(np.zeros((64, 64, 3), np.uint8), threshold=0.99) == (None, None)


def test_check_large_pose():
    frontal = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], dtype=np.float32)
    box = [10, 10, 90, 100]
    assert RetinaFace.check_large_pose(frontal, box)[0] == 0
    left = frontal.copy()
    left[2, 0] = 20  # nose beyond the left eye and mouth corner
    assert RetinaFace.check_large_pose(left, box)[:2] == (1, 10.0)
    right = frontal.copy()
    right[2, 0] = 80
    assert RetinaFace.check_large_pose(right, box)[0] == 2
    with pytest.raises(ValueError):
        RetinaFace.check_large_pose(frontal[:4], box)
