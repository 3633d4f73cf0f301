"""ShapeCachedExecutor: one bound executor per input shape, least recently used evicted."""
import mxnet as mx
import numpy as np
import pytest

from support import require_shared
from facekit.mx.executor import ShapeCachedExecutor
from facekit.mx.checkpoint import load_checkpoint


@pytest.fixture(scope='module')
def released():
    prefix = str(require_shared('assets/models/retinaface-mnet025/mnet.25-symbol.json'))[:-len('-symbol.json')]
    return load_checkpoint(prefix, 0)


def plain_forward(symbol, args, aux, data):
    exe = symbol.bind(mx.cpu(), dict(args, data=mx.nd.array(data)), aux_states=aux, grad_req='null')
    return [out.asnumpy() for out in exe.forward(is_train=False)]


def test_executors_are_cached_per_shape_and_evicted(released):
    symbol, args, aux = released
    forward = ShapeCachedExecutor(symbol, args, aux, max_shapes=2)
    rng = np.random.default_rng(0)
    big = rng.uniform(0, 255, (1, 3, 96, 128)).astype(np.float32)
    first = forward(big)
    executor = forward._slots[big.shape].executor
    forward(big)
    assert forward._slots[big.shape].executor is executor
    forward(big[:, :, :64, :64])
    forward(big[:, :, :32, :64])
    assert list(forward._slots) == [(1, 3, 64, 64), (1, 3, 32, 64)]
    # Re-bound after eviction, sharing memory with the other executors: the same outputs,
    # equal to a plain executor's.
    again = forward(big)
    for a, b, c in zip(first, again, plain_forward(symbol, args, aux, big)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_input_buffer_is_read_in_place(released):
    symbol, args, aux = released
    forward = ShapeCachedExecutor(symbol, args, aux)
    data = np.random.default_rng(1).uniform(0, 255, (1, 3, 64, 64)).astype(np.float32)
    buffer = forward.input_buffer(data.shape)
    buffer[...] = data
    for a, b in zip(forward(buffer), plain_forward(symbol, args, aux, data)):
        np.testing.assert_array_equal(a, b)


def test_missing_parameters_are_named(released):
    symbol, args, aux = released
    args = dict(args)
    del args['face_rpn_bbox_pred_stride16_weight']
    with pytest.raises(ValueError, match='model.params lacks 1 parameters.*face_rpn_bbox_pred_stride16_weight'):
        ShapeCachedExecutor(symbol, args, aux, source='model.params')
