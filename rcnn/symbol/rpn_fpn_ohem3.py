"""``rpn_fpn_ohem3``: online hard example mining of the anchors of one FPN stride.

Per image, with ``num_fg = int(fg_fraction * rpn_batch_size)`` (64 by default):

* positives (label > 0) beyond ``num_fg`` are thinned to the ``num_fg`` with the
  LOWEST face score ``fg - bg`` logit (the hardest positives), the others become -1;
* negatives (label 0) are thinned to ``rpn_batch_size - kept positives`` with the
  HIGHEST face score (the hardest negatives), the others become -1;
* ``anchor_weight`` is 1 on the kept positives, in the (position, anchor) order of the
  regression targets, and ``valid_count`` is the number of kept positives.

Inputs: ``cls_score`` (B, 2, N) with N = A*H*W in (anchor, h, w) order (the reshaped
``face_rpn_cls_score``), ``labels`` (B, N). Outputs: ``labels_ohem`` (B, N),
``anchor_weight`` (B, N, 1), ``valid_count`` (B, 1), all float32. Nothing flows back.

Ties at the selection boundary are broken arbitrarily (the original sorted with
NumPy's unstable quicksort, so it did not define them either).
"""
import atexit

import mxnet as mx
import numpy as np

OP_TYPE = 'rpn_fpn_ohem3'
_registered = []


def register():
    """Register the custom operator with MXNet once; later calls do nothing."""
    if not _registered:
        mx.operator.register(OP_TYPE)(RPNFPNOHEM3Prop)
        # A custom-op backward still queued when Python exits deadlocks MXNet's own exit
        # handler; this one runs first (atexit is LIFO) and lets the queue drain.
        atexit.register(mx.nd.waitall)
        _registered.append(OP_TYPE)


def _keep_extreme(keys, candidates, counts, k_max):
    """Per row, a mask of the ``counts[b]`` candidates with the smallest ``keys``.

    Args:
        keys: (B, N) float; candidates: (B, N) bool; counts: (B,) int <= k_max.
    """
    batch, n = keys.shape
    k = min(k_max, n)
    keep = np.zeros((batch, n), dtype=bool)
    if k == 0:
        return keep
    keys = np.where(candidates, keys, np.inf)
    part = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (batch, 1))
    part_keys = np.take_along_axis(keys, part, axis=1)
    order = np.argsort(part_keys, axis=1, kind='stable')
    ranked = np.take_along_axis(part, order, axis=1)
    ranked_keys = np.take_along_axis(part_keys, order, axis=1)
    selected = (np.arange(k)[np.newaxis, :] < counts[:, np.newaxis]) & np.isfinite(ranked_keys)
    rows = np.repeat(np.arange(batch), k).reshape(batch, k)
    keep[rows[selected], ranked[selected]] = True
    return keep


def ohem_select(cls_score, labels, num_anchors, rpn_batch_size=256, fg_fraction=0.25):
    """The operator's computation on NumPy arrays (module docstring).

    Args:
        cls_score: (B, 2, N) logits; labels: (B, N) in {-1, 0, 1}; N = A*H*W in (a, h, w) order.

    Returns:
        labels_ohem (B, N), anchor_weight (B, N, 1), valid_count (B, 1), float32.
    """
    labels = np.asarray(labels, dtype=np.float32)
    fg_score = cls_score[:, 1, :] - cls_score[:, 0, :]
    batch, n = labels.shape
    num_fg = int(fg_fraction * rpn_batch_size)

    positive = labels > 0
    negative = labels == 0
    n_pos = positive.sum(axis=1)
    keep_pos = _keep_extreme(fg_score, positive, np.minimum(n_pos, num_fg), num_fg)
    n_fg = keep_pos.sum(axis=1)
    num_bg = rpn_batch_size - n_fg
    keep_neg = _keep_extreme(-fg_score, negative, np.minimum(negative.sum(axis=1), num_bg), rpn_batch_size)

    labels_ohem = np.full((batch, n), -1, dtype=np.float32)
    labels_ohem[keep_neg] = 0
    labels_ohem[keep_pos] = labels[keep_pos]
    # (a, h, w) -> (h, w, a): the per-anchor order of the regression targets.
    anchor_weight = keep_pos.reshape(batch, num_anchors, -1).transpose(0, 2, 1).reshape(batch, n, 1)
    return labels_ohem, anchor_weight.astype(np.float32), n_fg.reshape(batch, 1).astype(np.float32)


class RPNFPNOHEM3Operator(mx.operator.CustomOp):
    """Forward runs ``ohem_select``; backward writes zero gradients."""

    def __init__(self, num_anchors, rpn_batch_size, fg_fraction):
        super().__init__()
        self.num_anchors = num_anchors
        self.rpn_batch_size = rpn_batch_size
        self.fg_fraction = fg_fraction

    def forward(self, is_train, req, in_data, out_data, aux):
        outputs = ohem_select(in_data[0].asnumpy(), in_data[1].asnumpy(), self.num_anchors,
                              self.rpn_batch_size, self.fg_fraction)
        for i, value in enumerate(outputs):
            self.assign(out_data[i], req[i], mx.nd.array(value, ctx=out_data[i].context))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        for i, grad in enumerate(in_grad):
            self.assign(grad, req[i], 0)


class RPNFPNOHEM3Prop(mx.operator.CustomOpProp):
    """Shapes and kwargs of ``rpn_fpn_ohem3`` (kwargs arrive as strings)."""

    def __init__(self, num_anchors, rpn_batch_size='256', fg_fraction='0.25'):
        super().__init__(need_top_grad=False)
        self.num_anchors = int(num_anchors)
        self.rpn_batch_size = int(rpn_batch_size)
        self.fg_fraction = float(fg_fraction)

    def list_arguments(self):
        return ['cls_score', 'labels']

    def list_outputs(self):
        return ['labels_ohem', 'anchor_weight', 'valid_count']

    def infer_shape(self, in_shape):
        labels_shape = in_shape[1]
        return in_shape, [labels_shape, [labels_shape[0], labels_shape[1], 1], [labels_shape[0], 1]], []

    def create_operator(self, ctx, shapes, dtypes):
        return RPNFPNOHEM3Operator(self.num_anchors, self.rpn_batch_size, self.fg_fraction)

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        return []
