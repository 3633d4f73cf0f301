"""The per-stride training metrics (``rcnn.core.metric``) as logged (``facekit.mx.metric``): n/a for 0/0."""
import logging
import re

import mxnet as mx
import numpy as np
import pytest

from facekit.mx.metric import Speedometer, format_value, name_values
from rcnn.core.metric import RPNAccMetric, RPNL1LossMetric, RPNLandMarkL1LossMetric, get_train_metrics


def nd(*arrays):
    return [mx.nd.array(a) for a in arrays]


def test_accuracy_ignores_label_minus_one():
    prob = np.zeros((1, 2, 4))
    prob[0, 1] = [0.9, 0.2, 0.8, 0.1]  # predicted face, bg, face, bg
    prob[0, 0] = 1 - prob[0, 1]
    label = np.array([[1, 1, -1, 0]])
    metric = RPNAccMetric(0, 1)
    metric.update(None, nd(prob, label))
    assert metric.get()[1] == pytest.approx(2 / 3)


def test_l1_loss_is_averaged_per_positive_anchor():
    loss = np.full((1, 8, 3), 0.5)          # 2 anchors x 4 values, 3 positions
    weight = np.zeros((1, 8, 3))
    weight[0, 0:4, 1] = 1                    # one positive anchor
    weight[0, 4:8, 2] = 1                    # a second one
    metric = RPNL1LossMetric(0, 1)
    metric.update(None, nd(loss, weight))
    assert metric.get()[1] == pytest.approx(0.5 * 24 / 2)
    landmark = RPNLandMarkL1LossMetric(0, 1)
    landmark.update(None, nd(np.ones((1, 20, 1)), np.ones((1, 20, 1))))
    assert landmark.get()[1] == pytest.approx(20 / 2)


def test_composite_metric_names_and_output_positions():
    metrics = get_train_metrics([32, 16, 8], face_landmark=True)
    names = [m.name for m in metrics.metrics]
    assert names == ['RPNAcc_s32', 'RPNL1Loss_s32', 'RPNLandMarkL1Loss_s32',
                     'RPNAcc_s16', 'RPNL1Loss_s16', 'RPNLandMarkL1Loss_s16',
                     'RPNAcc_s8', 'RPNL1Loss_s8', 'RPNLandMarkL1Loss_s8']
    assert [m.pred_idx for m in metrics.metrics[::3]] == [0, 6, 12]
    assert len(get_train_metrics([32, 16, 8], face_landmark=False).metrics) == 6


def test_zero_over_zero_is_n_a_and_a_real_nan_stays_nan(caplog):
    """A stride without a positive anchor has nothing to average (n/a); a NaN loss is nan."""
    metrics = get_train_metrics([32], face_landmark=False)
    prob = np.full((1, 2, 2), 0.5)
    label = np.array([[0, -1]])
    no_positive = np.zeros((1, 4, 2))
    metrics.update(None, nd(prob, label, np.ones((1, 4, 2)), no_positive))
    assert name_values(metrics) == [('RPNAcc_s32', 1.0), ('RPNL1Loss_s32', None)]
    assert [format_value(v) for _, v in name_values(metrics)] == ['1.000000', 'n/a']

    nan_loss = np.full((1, 4, 2), np.nan)
    metrics.update(None, nd(prob, label, nan_loss, np.ones((1, 4, 2))))
    assert format_value(name_values(metrics)[1][1]) == 'nan'

    speedometer = Speedometer(batch_size=1, frequent=1, auto_reset=False, logger=logging.getLogger('speed'))
    fresh = get_train_metrics([32], face_landmark=False)
    fresh.update(None, nd(prob, label, np.ones((1, 4, 2)), no_positive))
    with caplog.at_level(logging.INFO, logger='speed'):
        for nbatch in range(2):
            speedometer(mx.model.BatchEndParam(epoch=0, nbatch=nbatch, eval_metric=fresh, locals=None))
    assert re.fullmatch(r'Epoch\[0\] Batch \[0-1\]\tSpeed: [\d.]+ samples/sec\tRPNAcc_s32=1\.000000\t'
                        r'RPNL1Loss_s32=n/a', caplog.records[-1].getMessage()), caplog.records[-1].getMessage()
