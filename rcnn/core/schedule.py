"""The original's learning-rate schedule: steps given in epochs, applied per iteration.

Step factors: five steps -> [0.5, 0.5, 0.4, 0.1, 0.1]; eight steps (warm-up) -> the
first five multiply by 1.5849 (10 ** 0.2, so five of them restore the base rate from a
tenth of it), the rest by 0.1; any other count -> 0.1 each. The steps run through
``facekit.mx.schedule.StepScheduler``: update ``u`` of training (1 for the first) takes
the factor of every step whose iteration ``u`` has reached.
"""
__all__ = ['WARMUP_FACTOR', 'step_factors', 'lr_steps']

WARMUP_FACTOR = 1.5849


def step_factors(num_steps):
    """Multiplicative factor of each step, by the number of steps."""
    if num_steps == 5:
        return [0.5, 0.5, 0.4, 0.1, 0.1]
    if num_steps == 8:
        return [WARMUP_FACTOR] * 5 + [0.1] * 3
    return [0.1] * num_steps


def lr_steps(lr_step, iters_per_epoch):
    """The steps (iteration, factor) of ``--lr_step`` epochs, iterations counted from the start of training.

    Args:
        lr_step: the epochs where the rate steps, increasing ints (the original's
            ``--lr_step 55,68,80`` is [55, 68, 80], ``facekit.args.increasing_epochs``).
        iters_per_epoch: batches per epoch on this worker.
    """
    epochs = [int(e) for e in lr_step]
    if epochs != sorted(epochs):
        raise ValueError('--lr_step must be increasing, got %r' % lr_step)
    return [(int(epoch * iters_per_epoch), factor) for epoch, factor in zip(epochs, step_factors(len(epochs)))]
