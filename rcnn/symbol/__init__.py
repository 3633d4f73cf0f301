"""RetinaFace networks by name: ``get_symbol_train(network, cfg)`` and ``get_symbol_test(network, cfg)``.

``cfg`` is the configuration value of ``rcnn.config.get_config``; nothing here reads global state.
"""
from rcnn.contract import ANCHOR_PRESETS, label_names
from rcnn.symbol.symbol_common import FEATURE_STRIDES, get_fixed_params
from rcnn.symbol.symbol_mnet import get_mnet_test, get_mnet_train
from rcnn.symbol.symbol_resnet import get_resnet_test, get_resnet_train

_TRAIN = {'mnet': get_mnet_train, 'resnet': get_resnet_train}
_TEST = {'mnet': get_mnet_test, 'resnet': get_resnet_test}

__all__ = ['get_symbol_train', 'get_symbol_test', 'get_fixed_params', 'label_names', 'NETWORKS', 'FEATURE_STRIDES',
           'anchor_layouts']

NETWORKS = tuple(sorted(_TRAIN))


def _lookup(table, network):
    if network not in table:
        raise ValueError('unknown network %r; valid networks: %s' % (network, ', '.join(NETWORKS)))
    return table[network]


def get_symbol_train(network, cfg, num_devices=1):
    """Training symbol of ``network`` ('mnet' or 'resnet'): losses and label variables per stride.

    ``num_devices`` is the number of contexts one batch is split over.
    """
    return _lookup(_TRAIN, network)(cfg, num_devices)


def get_symbol_test(network, cfg):
    """Deploy symbol of ``network``: the checkpoint symbol ``RetinaFace`` loads."""
    return _lookup(_TEST, network)(cfg)


def anchor_layouts():
    """The anchor layouts of ``rcnn.contract.ANCHOR_PRESETS`` the networks can be trained with: those
    whose strides all have features (``FEATURE_STRIDES``)."""
    return sorted(name for name, levels in ANCHOR_PRESETS.items() if set(levels) <= set(FEATURE_STRIDES))
