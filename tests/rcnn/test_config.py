"""get_config: the original's values and presets, a fresh value each call."""
import pytest

from rcnn.config import get_config


def test_mnet_preset():
    config, default = get_config('mnet', 'retinaface')
    assert config.HEAD_FILTER_NUM == 64
    assert config.TRAIN.BATCH_IMAGES == 16
    assert config.COLOR_MODE == 1
    assert config.LANDMARK_LR_MULT == 2.5
    assert config.LAYER_FIX is True and config.FIXED_PARAMS
    assert config.RPN_FEAT_STRIDE == [32, 16, 8]
    assert config.NUM_ANCHORS == 2
    assert all(v['NUM_ANCHORS'] == 2 for v in config.RPN_ANCHOR_CFG.values())
    assert (default.lr, default.wd, default.lr_step) == (0.01, 0.0005, '55,68,80')
    assert (config.network, config.dataset) == ('mnet', 'retinaface')


def test_resnet_preset():
    config, default = get_config('resnet', 'retinaface')
    assert (default.lr, default.lr_step) == (0.001, '1,2,3,4,5,55,68,80')
    assert config.TRAIN.BATCH_IMAGES == 8
    assert config.HEAD_FILTER_NUM == 256
    assert config.LAYER_FIX is False


def test_spec_defaults():
    config, default = get_config('resnet', 'retinaface')
    assert list(config.PIXEL_MEANS) == [0, 0, 0] and list(config.PIXEL_STDS) == [1, 1, 1]
    assert config.PIXEL_SCALE == 1
    assert config.SCALES == [(640, 640)]
    assert config.PRE_SCALES == [0.3, 0.45, 0.6, 0.8, 1.0]
    t = config.TRAIN
    assert (t.RPN_ENABLE_OHEM, t.OHEM_MODE, t.RPN_BATCH_SIZE, t.RPN_FG_FRACTION) == (2, 1, 256, 0.25)
    assert (t.RPN_POSITIVE_OVERLAP, t.RPN_NEGATIVE_OVERLAP) == (0.5, 0.3)
    assert (t.RPN_CLOBBER_POSITIVES, t.RPN_FORCE_POSITIVE, t.MIN_BOX_SIZE) == (False, False, 0)
    assert tuple(t.BBOX_STDS) == (1, 1, 1, 1) and t.LANDMARK_STD == 1
    assert (config.FACE_LANDMARK, config.LR_MODE, config.COLOR_MODE, config.COLOR_JITTERING) == (True, 0, 2, 0.125)
    assert (config.LANDMARK_LR_MULT, config.CONTEXT_FILTER_RATIO) == (2.0, 1)
    assert config.RPN_ANCHOR_CFG['8']['SCALES'] == (2, 1)
    assert (default.frequent, default.kvstore, default.prefix, default.end_epoch) == \
        (20, 'device', 'model/retinaface', 10000)
    assert (default.dataset_path, default.image_set) == ('data/retinaface', 'train')


def test_each_call_returns_a_fresh_value():
    config, default = get_config('mnet', 'retinaface')
    config.TRAIN.BATCH_IMAGES = 99
    config.RPN_ANCHOR_CFG['8']['SCALES'] = (7,)
    config.FIXED_PARAMS.append('^extra')
    default.lr = 42.0
    again, again_default = get_config('mnet', 'retinaface')
    assert again.TRAIN.BATCH_IMAGES == 16 and again_default.lr == 0.01
    assert again.RPN_ANCHOR_CFG['8']['SCALES'] == (2, 1) and '^extra' not in again.FIXED_PARAMS
    resnet, resnet_default = get_config('resnet', 'retinaface')
    assert resnet.TRAIN.BATCH_IMAGES == 8 and resnet_default.lr == 0.001 and not resnet.LAYER_FIX


@pytest.mark.parametrize('args, listed', [(('vgg', 'retinaface'), 'mnet, resnet'), (('mnet', 'coco'), 'retinaface')])
def test_unknown_names_list_the_valid_ones(args, listed):
    with pytest.raises(ValueError, match=listed):
        get_config(*args)
