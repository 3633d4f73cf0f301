"""The contract between the RetinaFace heads, their training labels and the detector.

Everything that training, the loader, the anchor assignment and the detector must
agree on lives here: the anchor layouts, the tensor names, the per-anchor
prediction lengths and the landmark order under a horizontal flip.

Per stride ``s`` with ``A`` anchors per position and a feature map of H x W, three
1x1 convolutions predict

* ``face_rpn_cls_score_stride{s}``: (B, 2A, H, W), channel ``c * A + a`` is the class
  ``c`` (0 background, 1 face) logit of anchor ``a``;
* ``face_rpn_bbox_pred_stride{s}``: (B, 4A, H, W), channel ``a * 4 + k``;
* ``face_rpn_landmark_pred_stride{s}``: (B, 10A, H, W), channel ``a * 10 + 2p + {0: x, 1: y}``.

Deploy outputs, in this order for every stride (descending):
``face_rpn_cls_prob_reshape_stride{s}`` (B, 2A, H, W), the softmax over the two classes;
``face_rpn_bbox_pred_stride{s}``; ``face_rpn_landmark_pred_stride{s}`` (only with landmarks).
The weight of each stride's class head records that stride's anchors
(``anchor_attr``), so a checkpoint's symbol says which layout it was trained with
(``recorded_anchors``).

Training labels per stride, flattened in anchor order (a, h, w) for the labels and
by (h, w) position for the rest: ``face_label_stride{s}`` (B, A*H*W),
``face_bbox_target_stride{s}`` and ``face_bbox_weight_stride{s}`` (B, 4A, H*W),
``face_landmark_target_stride{s}`` and ``face_landmark_weight_stride{s}`` (B, 10A, H*W).

Anchors are boxes x1, y1, x2, y2 in pixels with the +1 convention; a layout maps
each stride to its scales (multiples of ``base_size``) and aspect ratios.
"""
import dataclasses
import json

from facekit.faces import LANDMARK_FLIP_ORDER, LANDMARK_POINTS

__all__ = ['PREFIX', 'BBOX_PRED_LEN', 'LANDMARK_POINTS', 'LANDMARK_PRED_LEN', 'LANDMARK_FLIP_ORDER',
           'AnchorLevel', 'ANCHOR_PRESETS', 'DEFAULT_ANCHORS', 'anchor_settings', 'rpn_anchor_cfg',
           'tensor_name', 'label_names', 'anchor_attr', 'recorded_anchors', 'record_anchors', 'same_anchors',
           'anchors_to_json', 'anchors_from_json']

PREFIX = 'face'
BBOX_PRED_LEN = 4
LANDMARK_PRED_LEN = 2 * LANDMARK_POINTS

_LABEL_KINDS = ('label', 'bbox_target', 'bbox_weight')
_LANDMARK_LABEL_KINDS = ('landmark_target', 'landmark_weight')
_ANCHOR_ATTR = '__anchors__'


@dataclasses.dataclass(frozen=True)
class AnchorLevel:
    """The anchors of one stride: every ratio, then every scale of a ``base_size`` box.

    ``allowed_border`` (pixels) bounds the anchors that take part in training.
    """
    scales: tuple
    ratios: tuple = (1.0,)
    base_size: int = 16
    allowed_border: int = 9999


def _geometric(strides, per_level, ratios):
    """Scales 1, 2^(1/3), 2^(2/3), 2, ... multiplied up in turn (the original's rounding), smallest stride first."""
    step, scale, levels = 2.0 ** (1.0 / per_level), 1.0, {}
    for stride in sorted(strides):
        scales = []
        for _ in range(per_level):
            scales.append(scale)
            scale *= step
        levels[stride] = AnchorLevel(tuple(scales), ratios)
    return levels


def _ssh(strides, ratios):
    scales = {32: (32, 16), 16: (8, 4), 8: (2, 1), 4: (2, 1)}
    return {s: AnchorLevel(scales[s], ratios) for s in strides}


_ASPECT = (1.0, 1.5)

# The layouts of the original ``RetinaFace(network=...)``; 'net3' is the released models'
# and the training configuration's (``RAC_SSH``). A new layout is one more entry.
ANCHOR_PRESETS = {
    'net3': _ssh((32, 16, 8), (1.0,)),
    'net3a': _ssh((32, 16, 8), _ASPECT),
    'net4': _ssh((32, 16, 8, 4), (1.0,)),
    'net4a': _ssh((32, 16, 8, 4), _ASPECT),
    'net5': _geometric((64, 32, 16, 8, 4), 3, (1.0,)),
    'net5a': _geometric((64, 32, 16, 8, 4), 3, _ASPECT),
    'net6': {s: AnchorLevel((scale,)) for s, scale in ((128, 32), (64, 16), (32, 8), (16, 4), (8, 2), (4, 1))},
}
DEFAULT_ANCHORS = 'net3'


def _levels_cfg(levels):
    """{stride: AnchorLevel} -> (strides descending, the config's ``RPN_ANCHOR_CFG`` dict keyed by str(stride))."""
    strides = sorted(levels, reverse=True)
    cfg = {str(s): {'SCALES': tuple(levels[s].scales), 'BASE_SIZE': levels[s].base_size,
                    'RATIOS': tuple(levels[s].ratios), 'ALLOWED_BORDER': levels[s].allowed_border}
           for s in strides}
    return strides, cfg


def anchor_settings(name):
    """Strides (descending) and ``RPN_ANCHOR_CFG``-style dict of the layout ``name``.

    Raises:
        ValueError naming the known layouts.
    """
    if name not in ANCHOR_PRESETS:
        raise ValueError('unsupported network (anchor layout) %r; known layouts: %s'
                         % (name, ', '.join(ANCHOR_PRESETS)))
    return _levels_cfg(ANCHOR_PRESETS[name])


def rpn_anchor_cfg(name):
    """The configuration's ``RPN_ANCHOR_CFG`` for the layout ``name`` (a fresh dict)."""
    return anchor_settings(name)[1]


def tensor_name(kind, stride, prefix=PREFIX):
    """``{prefix}_{kind}_stride{stride}``, e.g. ``tensor_name('rpn_cls_score', 32)`` is
    ``face_rpn_cls_score_stride32``."""
    return '%s_%s_stride%d' % (prefix, kind, stride)


def label_names(cfg):
    """Training label names, for each stride of ``cfg.RPN_FEAT_STRIDE``: label, bbox target and
    weight and, with ``cfg.FACE_LANDMARK``, landmark target and weight."""
    kinds = _LABEL_KINDS + (_LANDMARK_LABEL_KINDS if cfg.FACE_LANDMARK else ())
    return [tensor_name(kind, stride) for stride in cfg.RPN_FEAT_STRIDE for kind in kinds]


def _level_record(level_cfg):
    return {'scales': [float(s) for s in level_cfg['SCALES']], 'ratios': [float(r) for r in level_cfg['RATIOS']],
            'base_size': int(level_cfg['BASE_SIZE'])}


def anchor_attr(stride, level_cfg):
    """Symbol attribute recording the anchors of ``stride`` (an entry of ``RPN_ANCHOR_CFG``).

    A hidden (double-underscore) attribute: operators ignore it, and it survives
    ``Symbol.save`` / ``mx.sym.load``.
    """
    return {_ANCHOR_ATTR: json.dumps(dict(_level_record(level_cfg), stride=int(stride)), sort_keys=True)}


def _from_records(levels):
    cfg = {str(level['stride']): {'SCALES': tuple(level['scales']), 'BASE_SIZE': level['base_size'],
                                  'RATIOS': tuple(level['ratios'])} for level in levels}
    return sorted((int(s) for s in cfg), reverse=True), cfg


def recorded_anchors(symbol):
    """The anchors a symbol records (``anchor_attr``), as ``anchor_settings`` returns them, or None.

    Symbols without the record (the released models) give None.
    """
    levels = [json.loads(attrs[_ANCHOR_ATTR]) for attrs in symbol.attr_dict().values() if _ANCHOR_ATTR in attrs]
    return _from_records(levels) if levels else None


def record_anchors(symbol, settings):
    """Record ``settings`` (an ``anchor_settings`` result) in ``symbol`` as the network builds it
    (``anchor_attr`` on each stride's class-head weight), in place; for a model made from a
    released one, which records nothing."""
    strides, cfg = settings
    internals = symbol.get_internals()
    for stride in strides:
        internals[tensor_name('rpn_cls_score', stride) + '_weight']._set_attr(**anchor_attr(stride, cfg[str(stride)]))


def anchors_to_json(settings):
    """An ``anchor_settings`` result as JSON text (an exported model's metadata)."""
    strides, cfg = settings
    return json.dumps([dict(_level_record(cfg[str(s)]), stride=int(s)) for s in strides], sort_keys=True)


def anchors_from_json(text):
    """The inverse of ``anchors_to_json``."""
    return _from_records(json.loads(text))


def same_anchors(a, b):
    """Whether two ``anchor_settings`` results describe the same anchors (scales, ratios, base size)."""
    (strides_a, cfg_a), (strides_b, cfg_b) = a, b
    return list(strides_a) == list(strides_b) and all(
        _level_record(cfg_a[str(s)]) == _level_record(cfg_b[str(s)]) for s in strides_a)
