"""Base anchors per FPN stride (the Faster R-CNN enumeration) and their spread over a feature map.

Boxes are x1, y1, x2, y2 in pixels with the +1 convention: [0, 0, 15, 15] is 16 x 16.
"""
import numpy as np

from rcnn.contract import DEFAULT_ANCHORS, rpn_anchor_cfg
from rcnn.cython.anchors import anchors_cython


def generate_anchors(base_size=16, ratios=(0.5, 1, 2), scales=(8, 16, 32), stride=16, dense_anchor=False):
    """Anchors centred on the cell at the origin: every ratio, then every scale.

    Returns:
        (len(ratios) * len(scales) [* 2 if dense_anchor], 4) float64. With
        ``dense_anchor`` a copy shifted by half a stride doubles the set.
    """
    base_anchor = np.array([1, 1, base_size, base_size], dtype=np.float64) - 1
    ratio_anchors = _ratio_enum(base_anchor, np.asarray(ratios, dtype=np.float64))
    anchors = np.vstack([_scale_enum(anchor, np.asarray(scales, dtype=np.float64)) for anchor in ratio_anchors])
    if dense_anchor:
        if stride % 2:
            raise ValueError('dense anchors need an even stride, got %d' % stride)
        anchors = np.vstack((anchors, anchors + stride // 2))
    return anchors


def generate_anchors_fpn(dense_anchor=False, cfg=None):
    """Base anchors of every stride in ``cfg``.

    Args:
        cfg: an ``RPN_ANCHOR_CFG``: {'32': {'SCALES': (32, 16), 'BASE_SIZE': 16,
            'RATIOS': (1.0,), ...}, ...}; None is the default layout
            (``rcnn.contract.DEFAULT_ANCHORS``, the original's ``RAC_SSH``).

    Returns:
        list of (A, 4) float64 arrays, strides in descending order (32, 16, 8).
    """
    if cfg is None:
        cfg = rpn_anchor_cfg(DEFAULT_ANCHORS)
    anchors = []
    for stride in sorted((int(k) for k in cfg), reverse=True):
        v = cfg[str(stride)]
        anchors.append(generate_anchors(v['BASE_SIZE'], v['RATIOS'], v['SCALES'], stride, dense_anchor))
    return anchors


def anchors_plane(feat_h, feat_w, stride, base_anchors):
    """(feat_h, feat_w, A, 4) float32 anchors of a feature map; see ``anchors_cython``."""
    return anchors_cython(feat_h, feat_w, stride, base_anchors)


def _whctrs(anchor):
    w = anchor[2] - anchor[0] + 1
    h = anchor[3] - anchor[1] + 1
    return w, h, anchor[0] + 0.5 * (w - 1), anchor[1] + 0.5 * (h - 1)


def _mkanchors(ws, hs, x_ctr, y_ctr):
    ws = ws[:, np.newaxis]
    hs = hs[:, np.newaxis]
    return np.hstack((x_ctr - 0.5 * (ws - 1), y_ctr - 0.5 * (hs - 1),
                      x_ctr + 0.5 * (ws - 1), y_ctr + 0.5 * (hs - 1)))


def _ratio_enum(anchor, ratios):
    w, h, x_ctr, y_ctr = _whctrs(anchor)
    ws = np.round(np.sqrt(w * h / ratios))
    hs = np.round(ws * ratios)
    return _mkanchors(ws, hs, x_ctr, y_ctr)


def _scale_enum(anchor, scales):
    w, h, x_ctr, y_ctr = _whctrs(anchor)
    return _mkanchors(w * scales, h * scales, x_ctr, y_ctr)
