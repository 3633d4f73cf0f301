"""MTCNN nets (``mtcnn.symbol``, ``mtcnn.predictor``): names and shapes of the released weights, the
PReLU forms, the oneDNN graph and chunked crops."""
import math

import mxnet as mx
import numpy as np
import pytest

from facekit.mx.checkpoint import load_param_file
from mtcnn.commands.train import init_params
from mtcnn.predictor import Predictor
from mtcnn.symbol import INPUT_SIZE, _prelu, get_symbol
from support import require_shared


MODELS = 'assets/models/mtcnn-mxnet'
NETS = ('pnet', 'rnet', 'onet')


def released(net):
    return str(require_shared('%s/%s-0016.params' % (MODELS, net)))


@pytest.mark.parametrize('net', NETS)
def test_test_symbol_matches_released_parameters(net):
    """Every parameter of the test symbol has the released name and shape, and vice versa."""
    arg_params, aux_params = load_param_file(released(net))
    size = INPUT_SIZE[net]
    symbol = get_symbol(net, 'test')
    shapes, _, _ = symbol.infer_shape(data=(2, 3, size, size))
    declared = {n: s for n, s in zip(symbol.list_arguments(), shapes) if n != 'data'}
    assert declared == {n: v.shape for n, v in arg_params.items()}
    assert aux_params == {}


@pytest.mark.parametrize('net', NETS)
def test_landmark_branch_adds_only_new_names(net):
    size = INPUT_SIZE[net]
    plain = get_symbol(net, 'test')
    branch = get_symbol(net, 'test', with_landmark=True)
    extra = set(branch.list_arguments()) - set(plain.list_arguments())
    head = 'conv4_3' if net == 'pnet' else 'fc4'
    assert extra == {head + '_weight', head + '_bias'}
    _, out_shapes, _ = branch.infer_shape(data=(2, 3, size, size))
    assert out_shapes[2] == ((2, 10, 1, 1) if net == 'pnet' else (2, 10))


@pytest.mark.parametrize('height', [12, 13, 24, 37, 240])
def test_pnet_map_size(height):
    """P-Net maps are ceil((H - 4) / 2) - 3 cells for an H-pixel input (pooling 'full')."""
    _, out_shapes, _ = get_symbol('pnet', 'test').infer_shape(data=(1, 3, height, 50))
    assert out_shapes[0][2] == math.ceil((height - 4) / 2) - 3


@pytest.mark.parametrize('net', NETS)
def test_train_symbol_outputs(net):
    size = INPUT_SIZE[net]
    symbol = get_symbol(net, 'train', with_landmark=True, prelu='decomposed')
    _, out_shapes, _ = symbol.infer_shape(data=(4, 3, size, size), label=(4,), bbox_target=(4, 4),
                                          landmark_target=(4, 10))
    assert out_shapes == [(4, 2), (4, 4), (4, 10), (4,), (4,), (4,)]
    leaky = get_symbol(net, 'train', with_landmark=True)
    assert symbol.list_arguments() == leaky.list_arguments()


def _prelu_after_conv(form, x, weight, gamma, out_grad):
    """Forward / backward of conv -> PReLU; returns output, d gamma, d data, conv output."""
    data = mx.sym.Variable('data')
    conv = mx.sym.Convolution(data, kernel=(3, 3), num_filter=4, no_bias=True, name='conv')
    sym = mx.sym.Group([_prelu(conv, 'p', 4, form), mx.sym.BlockGrad(conv)])
    grads = {'data': mx.nd.zeros(x.shape), 'p_gamma': mx.nd.zeros(4)}
    args = {'data': mx.nd.array(x), 'conv_weight': mx.nd.array(weight), 'p_gamma': mx.nd.array(gamma)}
    grad_req = {'data': 'write', 'conv_weight': 'null', 'p_gamma': 'write'}
    executor = sym.bind(mx.cpu(), args, args_grad=grads, grad_req=grad_req)
    executor.forward(is_train=True)
    executor.backward([mx.nd.array(out_grad), mx.nd.zeros(out_grad.shape)])
    return (executor.outputs[0].asnumpy(), grads['p_gamma'].asnumpy(), grads['data'].asnumpy(),
            executor.outputs[1].asnumpy())


def test_decomposed_prelu_is_exact_and_has_the_true_slope_gradient():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 9, 9)).astype(np.float32)
    weight = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    gamma = np.array([0.25, -0.5, 1.5, 0.8], np.float32)
    out_grad = rng.normal(size=(3, 4, 7, 7)).astype(np.float32)
    leaky_out, leaky_dgamma, leaky_ddata, conv = _prelu_after_conv('leaky', x, weight, gamma, out_grad)
    out, dgamma, ddata, _ = _prelu_after_conv('decomposed', x, weight, gamma, out_grad)
    expected = np.where(conv > 0, conv, conv * gamma[None, :, None, None])
    np.testing.assert_array_equal(out, expected)          # bit-exact
    np.testing.assert_array_equal(out, leaky_out)
    np.testing.assert_allclose(ddata, leaky_ddata, rtol=1e-5, atol=1e-5)
    true_dgamma = (out_grad * np.minimum(conv, 0)).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(dgamma, true_dgamma, rtol=1e-4, atol=1e-4)
    # The reason the trainer avoids the plain op: MXNet 1.9.1 scales this gradient by gamma.
    np.testing.assert_allclose(leaky_dgamma, gamma * true_dgamma, rtol=1e-4, atol=1e-4)


def _random_params(symbol, data_shape, seed):
    """init_params with random biases and PReLU slopes of both signs (as in the released nets)."""
    params = init_params(symbol, {'data': data_shape})
    rng = np.random.default_rng(seed)
    for name, value in params.items():
        if name.endswith(('_bias', '_gamma')):
            value[:] = rng.uniform(-1, 1.5, value.shape)
    return params


@pytest.mark.parametrize('net', NETS)
@pytest.mark.parametrize('with_landmark', [False, True])
def test_onednn_graph_is_bit_identical_to_the_stock_graph(net, with_landmark):
    """prelu='onednn' (the detector's graph, both PReLU layouts, P-Net's merged heads) takes the
    stock graph's parameters and returns exactly its outputs, here on a P-Net map of odd size."""
    stock = get_symbol(net, 'test', with_landmark)
    onednn = get_symbol(net, 'test', with_landmark, prelu='onednn')
    assert sorted(onednn.list_arguments()) == sorted(stock.list_arguments())
    assert onednn.list_outputs() == stock.list_outputs()
    size = INPUT_SIZE[net]
    params = _random_params(stock, (1, 3, size, size), seed=2 * NETS.index(net) + with_landmark)
    shape = (1, 3, 61, 47) if net == 'pnet' else (5, 3, size, size)
    data = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    got, want = Predictor(onednn, params)(data), Predictor(stock, params)(data)
    assert len(got) == len(want) == 2 + with_landmark
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_predictor_chunks_rows_without_changing_outputs():
    """Rows run in chunks, the last one padded to the batch multiple: the same outputs as one
    batch, and every chunk reuses one executor."""
    symbol = get_symbol('rnet', 'test', prelu='onednn')
    params = _random_params(symbol, (1, 3, 24, 24), seed=3)
    data = np.random.default_rng(2).uniform(-1, 1, (37, 3, 24, 24)).astype(np.float32)
    chunked = Predictor(symbol, params, batch_multiple=16, chunk=16)
    for a, b in zip(chunked(data), Predictor(symbol, params)(data)):
        assert a.shape[0] == 37
        np.testing.assert_array_equal(a, b)
    assert list(chunked.forward._slots) == [(16, 3, 24, 24)]
    with pytest.raises(ValueError, match='at least one row'):
        chunked(data[:0])
