"""Training metrics per FPN stride: RPNAcc, RPNL1Loss and RPNLandMarkL1Loss.

They read the train symbol's outputs by position. For each stride (32, 16, 8) the
symbol emits, in order: cls_prob (B, 2, N), label (B, N), bbox_loss, bbox_weight
(B, 4A, HW), landmark_loss, landmark_weight (B, 10A, HW); see ``rcnn.symbol``. A stride
without a positive anchor counts nothing, logged as ``n/a`` (``facekit.mx.metric``).
"""
import mxnet as mx
import numpy as np

from rcnn.contract import BBOX_PRED_LEN, LANDMARK_PRED_LEN


class RPNAccMetric(mx.metric.EvalMetric):
    """Classification accuracy over anchors whose label is not -1 (ignored)."""

    def __init__(self, pred_idx, label_idx, name='RPNAcc'):
        super().__init__(name)
        self.pred_idx = pred_idx
        self.label_idx = label_idx

    def update(self, labels, preds):
        pred_label = preds[self.pred_idx].asnumpy().argmax(axis=1).reshape(-1)
        label = preds[self.label_idx].asnumpy().astype(np.int32).reshape(-1)
        keep = label != -1
        self.sum_metric += int(np.sum(pred_label[keep] == label[keep]))
        self.num_inst += int(np.sum(keep))


class RPNL1LossMetric(mx.metric.EvalMetric):
    """Smooth-L1 regression loss summed over anchors, averaged per positive anchor.

    ``values_per_anchor`` is 4 for boxes and 10 for five landmarks: the weight tensor
    has that many non-zero entries for each anchor that counts.
    """

    def __init__(self, loss_idx, weight_idx, values_per_anchor=BBOX_PRED_LEN, name='RPNL1Loss'):
        super().__init__(name)
        self.loss_idx = loss_idx
        self.weight_idx = weight_idx
        self.values_per_anchor = values_per_anchor

    def update(self, labels, preds):
        loss = preds[self.loss_idx].asnumpy()
        weight = preds[self.weight_idx].asnumpy()
        self.sum_metric += float(np.sum(loss))
        self.num_inst += float(np.sum(weight > 0)) / self.values_per_anchor


class RPNLandMarkL1LossMetric(RPNL1LossMetric):
    """Landmark smooth-L1 loss per anchor with a landmark target (10 values each)."""

    def __init__(self, loss_idx, weight_idx, name='RPNLandMarkL1Loss'):
        super().__init__(loss_idx, weight_idx, values_per_anchor=LANDMARK_PRED_LEN, name=name)


def get_train_metrics(feat_strides, face_landmark=True):
    """CompositeEvalMetric with one metric of each kind per stride, named as the original
    (``RPNAcc_s32``, ``RPNL1Loss_s32``, ``RPNLandMarkL1Loss_s32``, ...)."""
    metrics = mx.metric.CompositeEvalMetric()
    idx = 0
    for stride in feat_strides:
        metrics.add(RPNAccMetric(idx, idx + 1, name='RPNAcc_s%d' % stride))
        metrics.add(RPNL1LossMetric(idx + 2, idx + 3, name='RPNL1Loss_s%d' % stride))
        idx += 4
        if face_landmark:
            metrics.add(RPNLandMarkL1LossMetric(idx, idx + 1, name='RPNLandMarkL1Loss_s%d' % stride))
            idx += 2
    return metrics
