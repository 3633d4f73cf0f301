"""MXNet helpers of the tests: a tiny network trained as the commands train (``facekit.mx.trainer``),
and the comparison of exported models with MXNet."""
import mxnet as mx
import numpy as np

from facekit.mx.onnx_export import ATOL, RTOL
from facekit.mx.trainer import bind_module
from rcnn.commands.train import make_optimizer

BATCH = 4


def tiny_symbol():
    data = mx.sym.Variable('data')
    hidden = mx.sym.FullyConnected(data, num_hidden=3, name='fc1')
    hidden = mx.sym.BatchNorm(hidden, name='bn1')
    return mx.sym.LinearRegressionOutput(mx.sym.FullyConnected(hidden, num_hidden=2, name='fc2'), name='out')


def tiny_module(contexts, arg_params=None, aux_params=None):
    """A bound Module with SGD + momentum, made as train.py makes it."""
    return bind_module(tiny_symbol(), contexts, [('data', (BATCH, 5))], [('out_label', (BATCH, 2))], arg_params,
                       aux_params, make_optimizer(0.1, 0.0, len(contexts)), kvstore=mx.kv.create('device'))


def batch(seed):
    rng = np.random.RandomState(seed)
    return mx.io.DataBatch([mx.nd.array(rng.normal(size=(BATCH, 5)))], [mx.nd.array(rng.normal(size=(BATCH, 2)))])


def step(mod, seed):
    mod.forward_backward(batch(seed))
    mod.update()


def rgb_tensor(image):
    """RetinaFace's input: BGR (H, W, 3) uint8 -> RGB float32 (1, 3, H, W), 0..255."""
    return np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)


def mtcnn_tensor(images):
    """MTCNN's input: BGR (H, W, 3) images -> (B, 3, H, W) float32, (x - 127.5) * 0.0078125."""
    return np.ascontiguousarray(((np.stack(images).astype(np.float32) - 127.5) * 0.0078125).transpose(0, 3, 1, 2))


def mxnet_outputs(symbol, arg_params, aux_params, data):
    args = {n: arg_params[n] for n in symbol.list_arguments() if n != 'data'}
    aux = {n: aux_params[n] for n in symbol.list_auxiliary_states()}
    executor = symbol.bind(mx.cpu(), dict(args, data=mx.nd.array(data)), aux_states=aux, grad_req='null')
    return [out.asnumpy() for out in executor.forward(is_train=False)]


def assert_outputs_close(names, got, reference):
    """Every output within ATOL + RTOL * max|reference|; returns {name: error / max|reference|}."""
    assert len(got) == len(reference) == len(names)
    relative = {}
    for name, out, ref in zip(names, got, reference):
        assert out.shape == ref.shape, name
        error = float(np.abs(out - ref).max())
        scale = float(np.abs(ref).max())
        assert error <= ATOL + RTOL * scale, '%s: max error %g, scale %g' % (name, error, scale)
        relative[name] = error / scale
    return relative


def onnx_names(symbol):
    return [n[:-len('_output')] for n in symbol.list_outputs()]


def random_params(symbol, shape, seed=0):
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=shape)
    rng = np.random.RandomState(seed)
    args = {n: mx.nd.array(rng.normal(0, 0.3, s)) for n, s in zip(symbol.list_arguments(), arg_shapes) if n != 'data'}
    aux = {n: mx.nd.array(rng.uniform(0.5, 1.5, s)) for n, s in zip(symbol.list_auxiliary_states(), aux_shapes)}
    return args, aux
