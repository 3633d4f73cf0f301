"""Training and network configuration (SPEC section 3).

``config`` holds the model and training settings, ``default`` the command-line
defaults; ``generate_config(network, dataset)`` rebuilds both from the defaults
below and overlays the chosen ``network`` and ``dataset`` presets. The module-level
objects keep their identity (``from rcnn.config import config`` stays valid) and
every call starts from the defaults, so nothing leaks from one call to the next.
"""
import copy

import numpy as np
from easydict import EasyDict as edict

_RATIOS = (1.0,)

# Anchors of the SSH head: two scales per stride, base size 16 -> 512/256, 128/64, 32/16 px.
RAC_SSH = {
    '32': {'SCALES': (32, 16), 'BASE_SIZE': 16, 'RATIOS': _RATIOS, 'ALLOWED_BORDER': 9999},
    '16': {'SCALES': (8, 4), 'BASE_SIZE': 16, 'RATIOS': _RATIOS, 'ALLOWED_BORDER': 9999},
    '8': {'SCALES': (2, 1), 'BASE_SIZE': 16, 'RATIOS': _RATIOS, 'ALLOWED_BORDER': 9999},
}


def _base_config():
    c = edict()
    # Images are fed RGB, raw 0..255: (pixel - mean) / std * scale.
    c.PIXEL_MEANS = np.array([0.0, 0.0, 0.0])
    c.PIXEL_STDS = np.array([1.0, 1.0, 1.0])
    c.PIXEL_SCALE = 1.0
    c.SCALES = [(640, 640)]
    c.PRE_SCALES = [0.3, 0.45, 0.6, 0.8, 1.0]
    c.RPN_ANCHOR_CFG = copy.deepcopy(RAC_SSH)
    c.FACE_LANDMARK = True
    c.LR_MODE = 0
    c.LANDMARK_LR_MULT = 2.0
    c.HEAD_FILTER_NUM = 256
    c.CONTEXT_FILTER_RATIO = 1
    c.LAYER_FIX = False
    c.FIXED_PARAMS = []
    c.COLOR_MODE = 2
    c.COLOR_JITTERING = 0.125

    c.network = 'resnet'
    c.dataset = 'retinaface'

    c.TRAIN = edict()
    c.TRAIN.BATCH_IMAGES = 8
    c.TRAIN.RPN_ENABLE_OHEM = 2
    c.TRAIN.OHEM_MODE = 1
    c.TRAIN.RPN_BATCH_SIZE = 256
    c.TRAIN.RPN_FG_FRACTION = 0.25
    c.TRAIN.RPN_POSITIVE_OVERLAP = 0.5
    c.TRAIN.RPN_NEGATIVE_OVERLAP = 0.3
    c.TRAIN.RPN_CLOBBER_POSITIVES = False
    c.TRAIN.RPN_FORCE_POSITIVE = False
    c.TRAIN.MIN_BOX_SIZE = 0
    c.TRAIN.BBOX_STDS = (1.0, 1.0, 1.0, 1.0)
    c.TRAIN.LANDMARK_STD = 1.0
    _derive_anchor_settings(c)
    return c


def _derive_anchor_settings(c):
    """Set NUM_ANCHORS per stride, the common ``NUM_ANCHORS`` and ``RPN_FEAT_STRIDE`` (descending)."""
    num_anchors = []
    for anchor_cfg in c.RPN_ANCHOR_CFG.values():
        count = len(anchor_cfg['SCALES']) * len(anchor_cfg['RATIOS'])
        anchor_cfg['NUM_ANCHORS'] = count
        num_anchors.append(count)
    if len(set(num_anchors)) != 1:
        raise ValueError('every stride must have the same number of anchors, got %s' % num_anchors)
    c.RPN_FEAT_STRIDE = sorted((int(k) for k in c.RPN_ANCHOR_CFG), reverse=True)
    c.NUM_ANCHORS = num_anchors[0]


def _base_default():
    d = edict()
    d.network = 'resnet'
    d.pretrained = ''
    d.pretrained_epoch = 0
    d.dataset = 'retinaface'
    d.image_set = 'train'
    d.test_image_set = 'val'
    d.root_path = 'data'
    d.dataset_path = 'data/retinaface'
    d.frequent = 20
    d.kvstore = 'device'
    d.prefix = 'model/retinaface'
    d.end_epoch = 10000
    d.lr_step = '55,68,80'
    d.lr = 0.01
    d.wd = 0.0005
    return d


def _network_presets():
    n = edict()
    n.mnet = edict()
    n.mnet.HEAD_FILTER_NUM = 64
    n.mnet.BATCH_IMAGES = 16
    n.mnet.COLOR_MODE = 1
    n.mnet.LANDMARK_LR_MULT = 2.5
    n.mnet.LAYER_FIX = True
    # The first two conv + BN layers of the MobileNet backbone stay as pretrained (as the original).
    n.mnet.FIXED_PARAMS = ['^mobilenet0_conv[01]_', '^mobilenet0_batchnorm[01]_']
    n.mnet.RPN_ANCHOR_CFG = copy.deepcopy(RAC_SSH)

    n.resnet = edict()
    n.resnet.lr = 0.001
    n.resnet.lr_step = '1,2,3,4,5,55,68,80'
    n.resnet.BATCH_IMAGES = 8
    n.resnet.HEAD_FILTER_NUM = 256
    n.resnet.RPN_ANCHOR_CFG = copy.deepcopy(RAC_SSH)
    return n


def _dataset_presets():
    s = edict()
    s.retinaface = edict()
    s.retinaface.dataset = 'retinaface'
    s.retinaface.image_set = 'train'
    s.retinaface.test_image_set = 'val'
    s.retinaface.root_path = 'data'
    s.retinaface.dataset_path = 'data/retinaface'
    return s


config = _base_config()
default = _base_default()
network = _network_presets()
dataset = _dataset_presets()


def _reset(target, fresh):
    for key in list(target):
        target.pop(key)
    target.update(fresh)


def _overlay(preset):
    """Copy preset values over ``config``, ``config.TRAIN`` or ``default``, wherever the key lives."""
    for key, value in preset.items():
        value = copy.deepcopy(value)
        if key in config.TRAIN:
            config.TRAIN[key] = value
        elif key in config:
            config[key] = value
        elif key in default:
            default[key] = value
        else:
            raise KeyError('preset key %r is neither a config nor a default setting' % key)


def generate_config(_network, _dataset):
    """Rebuild ``config`` and ``default`` for a network ('mnet', 'resnet') and dataset ('retinaface').

    Derives ``config.RPN_FEAT_STRIDE`` (descending), ``NUM_ANCHORS`` per stride in
    ``RPN_ANCHOR_CFG`` and the common ``config.NUM_ANCHORS``.
    """
    if _network not in network:
        raise ValueError('unknown network %r; valid networks: %s' % (_network, ', '.join(sorted(network))))
    if _dataset not in dataset:
        raise ValueError('unknown dataset %r; valid datasets: %s' % (_dataset, ', '.join(sorted(dataset))))
    _reset(config, _base_config())
    _reset(default, _base_default())
    _overlay(network[_network])
    _overlay(dataset[_dataset])
    config.network = default.network = _network
    config.dataset = default.dataset = _dataset
    _derive_anchor_settings(config)
    return config, default
