"""The original's learning-rate schedule: steps given in epochs, applied per iteration.

Step factors: five steps -> [0.5, 0.5, 0.4, 0.1, 0.1]; eight steps (warm-up) -> the
first five multiply by 1.5849 (10 ** 0.2, so five of them restore the base rate from a
tenth of it), the rest by 0.1; any other count -> 0.1 each.
"""
import logging

import mxnet as mx

logger = logging.getLogger(__name__)

WARMUP_FACTOR = 1.5849


def step_factors(num_steps):
    """Multiplicative factor of each step, by the number of steps."""
    if num_steps == 5:
        return [0.5, 0.5, 0.4, 0.1, 0.1]
    if num_steps == 8:
        return [WARMUP_FACTOR] * 5 + [0.1] * 3
    return [0.1] * num_steps


def lr_schedule(base_lr, lr_step, begin_epoch, iters_per_epoch):
    """Learning rate at ``begin_epoch`` and the remaining steps as (iteration, factor).

    Args:
        base_lr: learning rate at epoch 0.
        lr_step: the epochs where the rate steps, increasing ints (the original's
            ``--lr_step 55,68,80`` is [55, 68, 80], ``rcnn.cli.increasing_epochs``).
        begin_epoch: first epoch of this run (0, or the epoch a resumed run starts from).
        iters_per_epoch: batches per epoch on this worker.

    Iterations count from the start of this run. Steps already passed when resuming
    are folded into the starting rate with their own factors.
    """
    epochs = [int(e) for e in lr_step]
    if epochs != sorted(epochs):
        raise ValueError('--lr_step must be increasing, got %r' % lr_step)
    lr = base_lr
    steps = []
    for epoch, factor in zip(epochs, step_factors(len(epochs))):
        if epoch <= begin_epoch:
            lr *= factor
        else:
            steps.append((int((epoch - begin_epoch) * iters_per_epoch), factor))
    return lr, steps


class MultiFactorStepScheduler(mx.lr_scheduler.LRScheduler):
    """Multiply the rate by ``factor`` once ``num_update`` reaches each step's iteration."""

    def __init__(self, base_lr, steps):
        super().__init__(base_lr=base_lr)
        self.steps = sorted(steps)

    def __call__(self, num_update):
        lr = self.base_lr
        for iteration, factor in self.steps:
            if num_update >= iteration:
                lr *= factor
        return lr
