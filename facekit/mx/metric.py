"""How training metrics are logged: ``n/a`` for a metric that has counted nothing.

A metric that has counted nothing (0/0, e.g. a stride without a positive anchor) is
logged as ``n/a``, so a logged ``nan`` is a real NaN. MXNet's ``get()`` returns NaN for
both, and ``mx.callback.Speedometer`` prints every value with ``%f``: log through
:func:`name_values` and :class:`Speedometer` instead.
"""
import logging
import time

import mxnet as mx

__all__ = ['name_values', 'format_value', 'Speedometer']


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
