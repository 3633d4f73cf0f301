"""Learning rates stepped at given iterations, counted from the start of training.

Each detector keeps its own schedule (RetinaFace's step factors, ``rcnn.core.schedule``;
MTCNN's x0.1 per step, ``mtcnn.train``) and hands the steps here as (iteration, factor).
A resumed run passes the iterations done before it as ``offset``: its k-th update then gets
the rate of update ``offset + k`` of the uninterrupted run, bit for bit (the factors are
multiplied in the same order).
"""
import mxnet as mx

__all__ = ['StepScheduler']


class StepScheduler(mx.lr_scheduler.LRScheduler):
    """``base_lr`` times the factor of every step whose iteration the update has reached.

    Args:
        base_lr: the rate of the first update of training.
        steps: (iteration, factor) pairs; update ``u`` (1 for the first of training) takes the
            factor of every step with ``u >= iteration``.
        offset: updates done before this run (a resumed run's position in iterations).
    """

    def __init__(self, base_lr, steps, offset=0):
        super().__init__(base_lr=base_lr)
        self.steps = sorted(steps)
        self.offset = offset

    def __call__(self, num_update):
        lr = self.base_lr
        for iteration, factor in self.steps:
            if self.offset + num_update >= iteration:
                lr *= factor
        return lr
