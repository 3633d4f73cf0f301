"""NaN / infinity checks for training: one MXNet operation per context and dtype per batch.

A NaN or infinity anywhere in an array makes its sum of squares non-finite, so
``mx.nd.multi_sum_sq`` (one (n,) result for n arrays, a plain loop per array on
the CPU) flags every non-finite array; only a flagged array is then copied to
numpy, to tell a real NaN / infinity from a sum of squares that overflowed
float32 (finite values above ~1e19), which is not reported. Its cost is a small
fraction of a training step (``bench/train.py`` measures it; docs/benchmarks.md).
MXNet's ``multi_all_finite``, made for this, is slower on the CPU (its kernel
visits max(size) x count elements) and crashes the process given more than 200
arrays (a fixed-size kernel parameter).
"""
import numpy as np

import mxnet as mx

__all__ = ['NonFiniteError', 'queue_check', 'non_finite', 'check_finite', 'describe', 'ModuleCheck']


class NonFiniteError(ArithmeticError):
    """Arrays holding NaN or infinity; ``found`` lists the keys (names) of each."""

    def __init__(self, message, found):
        super().__init__(message)
        self.found = found


def queue_check(named):
    """Queue the check of ``named``, a list of (key, NDArray); returns a pending result for
    :func:`non_finite`. Does not wait: MXNet's engine orders the check after the arrays'
    writers. Integer arrays are always finite and are skipped."""
    groups = {}
    for position, (key, array) in enumerate(named):
        if np.issubdtype(array.dtype, np.floating):
            groups.setdefault((array.context, np.dtype(array.dtype)), []).append((position, key, array))
    return [(members, mx.nd.multi_sum_sq(*[a for _, _, a in members], num_arrays=len(members)))
            for members in groups.values()]


def non_finite(pending):
    """Keys of the arrays of :func:`queue_check` that hold NaN or infinity, each once, in the
    order they were given (waits for the check)."""
    found = []
    for members, sums in pending:
        for index in np.flatnonzero(~np.isfinite(sums.asnumpy())):
            position, key, array = members[index]
            if not np.isfinite(array.asnumpy()).all():
                found.append((position, key))
    keys = []
    for _, key in sorted(found, key=lambda pair: pair[0]):
        if key not in keys:
            keys.append(key)
    return keys


def check_finite(named, what):
    """Raise NonFiniteError naming the non-finite arrays of ``named`` (key: a name), e.g. before
    saving them; ``what`` says where they are ('parameters for model-0003.params')."""
    found = non_finite(queue_check(named))
    if found:
        raise NonFiniteError('NaN or infinity in %s: %s' % (what, describe([('', k) for k in found])), found)


def describe(found, limit=5):
    """'gradient of a, b; parameter c' for (kind, name) pairs; at most ``limit`` names per kind."""
    kinds = {}
    for kind, name in found:
        kinds.setdefault(kind, []).append(name)
    parts = []
    for kind, names in kinds.items():
        shown = ', '.join(names[:limit]) + (' and %d more' % (len(names) - limit) if len(names) > limit else '')
        parts.append(('%s %s' % (kind, shown)).strip())
    return '; '.join(parts)


class ModuleCheck:
    """Checks a bound, initialised ``mx.mod.Module`` for NaN and infinity in its outputs
    (the losses), gradients, parameters and auxiliary states, on every device.

    :meth:`step` is a training step of ``Module.fit`` with the check. Used piecewise, call
    :meth:`start` after ``update()`` (it queues the check and returns at once) and
    :meth:`failures` when the result is needed: the gradients are those of the last
    batch, the parameters and auxiliary states those after its update.
    """

    def __init__(self, module):
        self.module = module
        self._pending = []

    def _named(self):
        group = self.module._exec_group
        named = []
        outputs = self.module.get_outputs(merge_multi_context=False)
        for name, arrays in zip(self.module.output_names, outputs):
            named += [(('loss output', name), a) for a in arrays]
        for name, arrays in zip(group.param_names, group.grad_arrays):
            named += [(('gradient of', name), a) for a in arrays if a is not None]
        for name, arrays in zip(group.param_names, group.param_arrays):
            named += [(('parameter', name), a) for a in arrays]
        for name, arrays in zip(group.aux_names, group.aux_arrays):
            named += [(('auxiliary state', name), a) for a in arrays]
        return named

    def step(self, batch, metric):
        """forward_backward, update and update_metric on ``batch``, the check queued between
        the last two so that it runs while the metric is computed; returns :meth:`failures`."""
        self.module.forward_backward(batch)
        self.module.update()
        self.start()
        self.module.update_metric(metric, batch.label)
        return self.failures()

    def start(self):
        self._pending = queue_check(self._named())

    def failures(self):
        """(kind, name) of each array checked by :meth:`start` that holds NaN or infinity, kind
        'loss output', 'gradient of', 'parameter' or 'auxiliary state'; [] when all are finite."""
        return non_finite(self._pending)
