"""rcnn.contract: a new anchor layout is one entry in the contract, and checkpoints record theirs."""
import mxnet as mx
import numpy as np
import pytest

from rcnn import contract
from rcnn.commands import retinaface_train as train
from rcnn.config import get_config
from rcnn.dataset.synthetic import generate_widerface
from rcnn.processing.generate_anchor import generate_anchors_fpn
from rcnn.symbol import get_symbol_test
from rcnn.symbol import anchor_layouts
from retinaface import RetinaFace
from support import make_cfg

# Three scales per stride: 3 anchors per position instead of the released models' 2.
THREE_SCALES = {32: contract.AnchorLevel((32, 16, 8)), 16: contract.AnchorLevel((8, 4, 2)),
                8: contract.AnchorLevel((2, 1, 0.5))}


def test_presets_are_the_original_layouts():
    strides, cfg = contract.anchor_settings('net3')
    assert strides == [32, 16, 8]
    assert {k: v['SCALES'] for k, v in cfg.items()} == {'32': (32, 16), '16': (8, 4), '8': (2, 1)}
    # The training configuration's anchors are the same layout.
    train_cfg = get_config('mnet', 'retinaface')[0]
    assert contract.same_anchors((train_cfg.RPN_FEAT_STRIDE, train_cfg.RPN_ANCHOR_CFG), (strides, cfg))
    with pytest.raises(ValueError, match="unsupported network .*'ssh'.*net3, net3a"):
        contract.anchor_settings('ssh')


def test_names_and_label_order():
    assert contract.tensor_name('rpn_cls_score', 32) == 'face_rpn_cls_score_stride32'
    assert contract.label_names(make_cfg(FACE_LANDMARK=False)) == [
        'face_%s_stride%d' % (kind, s) for s in (32, 16, 8) for kind in ('label', 'bbox_target', 'bbox_weight')]


def test_deploy_symbol_records_its_anchors(tmp_path):
    cfg, _ = get_config('mnet', 'retinaface', anchors='net3a')
    symbol = get_symbol_test('mnet', cfg)
    symbol.save(str(tmp_path / 'm-symbol.json'))
    recorded = contract.recorded_anchors(mx.sym.load(str(tmp_path / 'm-symbol.json')))
    assert contract.same_anchors(recorded, contract.anchor_settings('net3a'))
    assert not contract.same_anchors(recorded, contract.anchor_settings('net3'))


def test_a_new_layout_trains_and_detects_with_one_edit(tmp_path, monkeypatch):
    """The layout is defined in the contract alone; train.py and RetinaFace take it from there."""
    monkeypatch.setitem(contract.ANCHOR_PRESETS, 'three_scales', THREE_SCALES)
    root = tmp_path / 'data'
    generate_widerface(str(root), num_train=1, num_val=1, num_test=0, seed=4, workers=1)
    prefix = str(tmp_path / 'model' / 'mnet')
    assert train(['--network', 'mnet', '--dataset', 'retinaface', '--dataset_path', str(root), '--prefix', prefix,
                  '--anchors', 'three_scales', '--batch_images', '1', '--workers', '0', '--end_epoch', '1']) == 0

    detector = RetinaFace(prefix, 1, ctx_id=-1)  # the layout recorded in the checkpoint
    expected = generate_anchors_fpn(cfg=contract.rpn_anchor_cfg('three_scales'))
    for stride, base in zip((32, 16, 8), expected):
        assert base.shape == (3, 4)
        np.testing.assert_array_equal(detector._anchors_fpn[stride], base.astype(np.float32))
    img = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    det, landmarks = detector.detect(img, threshold=0.0)
    # Every anchor of the 3 / 6 / 12 x 4 / 8 / 16 maps is a candidate at threshold 0; NMS keeps some.
    assert 0 < len(det) <= 3 * (3 * 4 + 6 * 8 + 12 * 16) and landmarks.shape == (len(det), 5, 2)
    named = RetinaFace(prefix, 1, ctx_id=-1, network='three_scales').detect(img, threshold=0.0)
    np.testing.assert_array_equal(named[0], det)
    with pytest.raises(ValueError, match="records anchors .* network='net3'"):
        RetinaFace(prefix, 1, ctx_id=-1, network='net3')


def test_training_offers_the_layouts_whose_strides_the_networks_have():
    assert anchor_layouts() == ['net3', 'net3a']  # net4 .. net6 need strides 4, 64 or 128
