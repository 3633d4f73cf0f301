"""facekit.mx.finite: the per-batch NaN / infinity check names what is non-finite, and only that."""
import mxnet as mx
import numpy as np
import pytest

from facekit.mx.finite import ModuleCheck, NonFiniteError, check_finite, describe, non_finite, queue_check
from mx_support import batch, step, tiny_module


def test_every_kind_of_array_is_checked_and_named():
    mod = tiny_module([mx.cpu(0), mx.cpu(1)])
    step(mod, 0)
    check = ModuleCheck(mod)
    check.start()
    assert check.failures() == []

    group = mod._exec_group
    names = group.param_names
    group.grad_arrays[names.index('fc1_bias')][1][0] = np.nan       # the second device's gradient
    group.param_arrays[names.index('fc2_weight')][0][0, 0] = -np.inf
    group.aux_arrays[group.aux_names.index('bn1_moving_var')][0][1] = np.nan
    mod.get_outputs(merge_multi_context=False)[0][0][0, 0] = np.inf
    group.param_arrays[names.index('fc1_weight')][0][:] = 1e30    # finite: its sum of squares overflows
    check.start()
    assert check.failures() == [('loss output', 'out_output'), ('gradient of', 'fc1_bias'), ('parameter', 'fc2_weight'),
                                ('auxiliary state', 'bn1_moving_var')]


def test_step_trains_updates_the_metric_and_names_what_the_batch_made_non_finite():
    mod = tiny_module([mx.cpu(0)])
    check, metric = ModuleCheck(mod), mx.metric.RMSE()
    before = mod.get_params()[0]['fc1_weight'].asnumpy()
    assert check.step(batch(0), metric) == []
    assert metric.num_inst == 1 and np.isfinite(metric.get()[1])
    assert not np.array_equal(mod.get_params()[0]['fc1_weight'].asnumpy(), before)

    bad = batch(1)
    bad.data[0][0, 0] = np.nan
    found = check.step(bad, metric)
    assert found[0] == ('loss output', 'out_output')
    assert {('gradient of', 'fc1_weight'), ('parameter', 'fc1_weight'), ('auxiliary state', 'bn1_moving_mean')} <= \
        set(found)
    assert metric.num_inst == 2


def test_large_and_integer_arrays_are_finite_and_messages_name_the_arrays():
    named = [('big', mx.nd.full((4,), 3e38)), ('ints', mx.nd.array([1, 2], dtype='int32')),
             ('half', mx.nd.array([np.nan], dtype='float16'))]
    assert non_finite(queue_check(named)) == ['half']
    with pytest.raises(NonFiniteError, match=r'^NaN or infinity in the weights: half$'):
        check_finite(named, 'the weights')
    found = [('gradient of', 'w%d' % i) for i in range(7)] + [('parameter', 'b')]
    assert describe(found) == 'gradient of w0, w1, w2, w3, w4 and 2 more; parameter b'
