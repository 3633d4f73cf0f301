"""Training metrics per FPN stride: RPNAcc, RPNL1Loss and RPNLandMarkL1Loss, and how they are logged.

They read the train symbol's outputs by position. For each stride (32, 16, 8) the
symbol emits, in order: cls_prob (B, 2, N), label (B, N), bbox_loss, bbox_weight
(B, 4A, HW), landmark_loss, landmark_weight (B, 10A, HW); see ``rcnn.symbol``.

A metric that has counted nothing (a stride without a positive anchor: 0/0) is
logged as ``n/a``, so a logged ``nan`` is a real NaN. MXNet's ``get()`` returns
NaN for both, and ``mx.callback.Speedometer`` prints every value with ``%f``:
log through :func:`name_values` and :class:`Speedometer` instead.
"""
import logging
import time

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


def name_values(metric):
    """[(name, value)] of an EvalMetric or CompositeEvalMetric; value None where the metric
    has counted nothing (0/0), else its float value (NaN only if the sums are)."""
    if isinstance(metric, mx.metric.CompositeEvalMetric):
        return [pair for child in metric.metrics for pair in name_values(child)]
    name, value = metric.get()
    if isinstance(name, str):
        name, value = [name], [value]
    undefined = metric.num_inst == 0
    return [(n, None if undefined else float(v)) for n, v in zip(name, value)]


def format_value(value):
    """'%f' of a metric value, 'n/a' for None (0/0)."""
    return 'n/a' if value is None else '%f' % value


class Speedometer:
    """``mx.callback.Speedometer`` (same lines, same schedule) that logs 0/0 as ``n/a``.

    Every ``frequent`` batches: ``Epoch[E] Batch [0-N]\tSpeed: S samples/sec\tname=value...``
    (``Batch [N-frequent-N]`` and the metric reset after each line with ``auto_reset``).
    """

    def __init__(self, batch_size, frequent=50, auto_reset=True, logger=None):
        self.batch_size = batch_size
        self.frequent = frequent
        self.auto_reset = auto_reset
        self.logger = logger or logging.getLogger(__name__)
        self.started = False
        self.tic = 0.0
        self.last_count = 0

    def __call__(self, param):
        """``param``: an ``mx.model.BatchEndParam`` (epoch, nbatch, eval_metric)."""
        count = param.nbatch
        if count < self.last_count:  # a new epoch: restart the clock
            self.started = False
        self.last_count = count
        if not self.started:
            self.started = True
            self.tic = time.time()
            return
        if count % self.frequent:
            return
        elapsed = time.time() - self.tic
        speed = self.frequent * self.batch_size / elapsed if elapsed > 0 else float('inf')
        values = '\t'.join('%s=%s' % (n, format_value(v)) for n, v in name_values(param.eval_metric))
        if self.auto_reset:
            param.eval_metric.reset_local()
            self.logger.info('Epoch[%d] Batch [%d-%d]\tSpeed: %.2f samples/sec\t%s', param.epoch,
                             count - self.frequent, count, speed, values)
        else:
            self.logger.info('Epoch[%d] Batch [0-%d]\tSpeed: %.2f samples/sec\t%s', param.epoch, count, speed, values)
        self.tic = time.time()
