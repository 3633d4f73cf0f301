"""Training metrics over the rows each loss uses (the ``mtcnn_ohem`` masks).

preds: cls_prob (B, 2), bbox_pred (B, 4), [landmark_pred (B, 10),] cls_keep,
bbox_keep[, landmark_keep] (B,); labels: label (B,), bbox_target (B, 4)
[, landmark_target (B, 10)].
"""
import mxnet as mx
import numpy as np

from mtcnn.ohem import EPS

__all__ = ['Accuracy', 'LogLoss', 'BBoxMSE', 'LandmarkMSE', 'metrics']


class _Masked(mx.metric.EvalMetric):
    def __init__(self, name, with_landmark):
        super().__init__(name)
        self.num_heads = 3 if with_landmark else 2

    def keep(self, preds, head):
        return np.flatnonzero(preds[self.num_heads + head].asnumpy())


class Accuracy(_Masked):
    """Classification accuracy on the OHEM-kept positives and negatives."""

    def __init__(self, with_landmark=False):
        super().__init__('Accuracy', with_landmark)

    def update(self, labels, preds):
        rows = self.keep(preds, 0)
        predicted = preds[0].asnumpy()[rows].argmax(axis=1)
        self.sum_metric += (predicted == labels[0].asnumpy()[rows]).sum()
        self.num_inst += len(rows)


class LogLoss(_Masked):
    """Mean -log p(label) on the OHEM-kept rows."""

    def __init__(self, with_landmark=False):
        super().__init__('LogLoss', with_landmark)

    def update(self, labels, preds):
        rows = self.keep(preds, 0)
        label = labels[0].asnumpy()[rows].astype(np.int64)
        prob = preds[0].asnumpy()[rows, label]
        self.sum_metric += -np.log(prob + EPS).sum()
        self.num_inst += len(rows)


class _RegressionMSE(_Masked):
    head = 1

    def update(self, labels, preds):
        rows = self.keep(preds, self.head)
        error = preds[self.head].asnumpy()[rows] - labels[self.head].asnumpy()[rows]
        self.sum_metric += (error ** 2).sum()
        self.num_inst += error.size


class BBoxMSE(_RegressionMSE):
    """Mean squared box-offset error per coordinate, positives and part faces."""

    def __init__(self, with_landmark=False):
        super().__init__('BBoxMSE', with_landmark)


class LandmarkMSE(_RegressionMSE):
    """Mean squared landmark error per coordinate, landmark faces."""
    head = 2

    def __init__(self, with_landmark=True):
        super().__init__('LandmarkMSE', with_landmark)


def metrics(with_landmark):
    composite = mx.metric.CompositeEvalMetric()
    for metric in (Accuracy(with_landmark), LogLoss(with_landmark), BBoxMSE(with_landmark)):
        composite.add(metric)
    if with_landmark:
        composite.add(LandmarkMSE())
    return composite
