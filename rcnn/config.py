"""Training and network configuration, passed around as a value.

``get_config(network, dataset)`` returns a fresh ``(config, default)`` pair:
``config`` holds the model and training settings, ``default`` the command-line
defaults, both built from the values below with the chosen ``network`` and
``dataset`` presets copied over them (the original's ``generate_config``, without
its module globals). Every class and function of this project takes the
configuration it needs as an argument.
"""
import copy

import numpy as np
from easydict import EasyDict as edict

from rcnn.contract import DEFAULT_ANCHORS, rpn_anchor_cfg

__all__ = ['RAC_SSH', 'DEFAULT_NETWORK', 'DEFAULT_DATASET', 'get_config']

# The presets the original's command lines default to.
DEFAULT_NETWORK = 'resnet'
DEFAULT_DATASET = 'retinaface'

# The original's name for the anchors of the SSH head (rcnn.contract's 'net3'): two scales
# per stride, base size 16 -> 512/256, 128/64, 32/16 px.
RAC_SSH = rpn_anchor_cfg(DEFAULT_ANCHORS)


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

    c.network = DEFAULT_NETWORK
    c.dataset = DEFAULT_DATASET

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
    d.network = DEFAULT_NETWORK
    d.pretrained = ''
    d.pretrained_epoch = 0
    d.dataset = DEFAULT_DATASET
    d.image_set = 'train'
    d.dataset_path = None  # the dataset preset's
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
    n.mnet.RPN_ANCHOR_CFG = RAC_SSH

    n.resnet = edict()
    n.resnet.lr = 0.001
    n.resnet.lr_step = '1,2,3,4,5,55,68,80'
    n.resnet.BATCH_IMAGES = 8
    n.resnet.HEAD_FILTER_NUM = 256
    n.resnet.RPN_ANCHOR_CFG = RAC_SSH
    return n


def _dataset_presets():
    s = edict()
    s.retinaface = edict()
    s.retinaface.dataset_path = 'data/retinaface'
    return s


def _overlay(cfg, dflt, preset):
    """Copy preset values over ``cfg``, ``cfg.TRAIN`` or ``dflt``, wherever the key lives."""
    for key, value in preset.items():
        value = copy.deepcopy(value)
        if key in cfg.TRAIN:
            cfg.TRAIN[key] = value
        elif key in cfg:
            cfg[key] = value
        elif key in dflt:
            dflt[key] = value
        else:
            raise KeyError('preset key %r is neither a config nor a default setting' % key)


def get_config(network_name, dataset_name, anchors=None):
    """Fresh ``(config, default)`` for a network ('mnet', 'resnet') and dataset ('retinaface').

    ``anchors`` names an anchor layout of ``rcnn.contract.ANCHOR_PRESETS`` to use
    instead of the network preset's. Derives ``config.RPN_FEAT_STRIDE``
    (descending), ``NUM_ANCHORS`` per stride in ``RPN_ANCHOR_CFG`` and the common
    ``config.NUM_ANCHORS``. Nothing outside the returned objects changes.
    """
    presets, datasets = _network_presets(), _dataset_presets()
    if network_name not in presets:
        raise ValueError('unknown network %r; valid networks: %s' % (network_name, ', '.join(sorted(presets))))
    if dataset_name not in datasets:
        raise ValueError('unknown dataset %r; valid datasets: %s' % (dataset_name, ', '.join(sorted(datasets))))
    cfg, dflt = _base_config(), _base_default()
    _overlay(cfg, dflt, presets[network_name])
    _overlay(cfg, dflt, datasets[dataset_name])
    cfg.network = dflt.network = network_name
    cfg.dataset = dflt.dataset = dataset_name
    if anchors is not None:
        cfg.RPN_ANCHOR_CFG = rpn_anchor_cfg(anchors)
    _derive_anchor_settings(cfg)
    return cfg, dflt
