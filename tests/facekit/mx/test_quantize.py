"""facekit.mx.quantize: MXNet's oneDNN INT8 flow on a small convolutional network: the layers
kept FP32, the calibration, the record, determinism, and where an INT8 model may run."""
import json
import logging

import mxnet as mx
import numpy as np
import pytest

from facekit.mx import quantize as q
from facekit.mx.runtime import DeviceError


def small_net():
    """Three convolution + BatchNorm + ReLU blocks (strides 2, 2, 1) and a 1x1 head, with weights."""
    net = mx.sym.Variable('data')
    for i, stride in enumerate((2, 2, 1)):
        net = mx.sym.Convolution(net, num_filter=8, kernel=(3, 3), stride=(stride, stride), pad=(1, 1),
                                 name='conv%d' % i)
        net = mx.sym.Activation(mx.sym.BatchNorm(net, name='bn%d' % i), act_type='relu', name='relu%d' % i)
    net = mx.sym.Convolution(net, num_filter=4, kernel=(1, 1), name='head')
    shapes, _, aux_shapes = net.infer_shape(data=(1, 3, 32, 32))
    rng = np.random.RandomState(0)
    arg = {name: mx.nd.array(rng.normal(0, 0.3, shape)) for name, shape in zip(net.list_arguments(), shapes)
           if name != 'data'}
    aux = {name: mx.nd.array(rng.uniform(0.5, 1.5, shape) if 'var' in name else rng.normal(0, 0.1, shape))
           for name, shape in zip(net.list_auxiliary_states(), aux_shapes)}
    return net, arg, aux


def inputs(count=3):
    rng = np.random.RandomState(1)
    return [rng.uniform(0, 255, (1, 3, 32 + 8 * i, 40)).astype(np.float32) for i in range(count)]


def forward(symbol, arg, aux, data):
    executor = symbol.bind(mx.cpu(), args=dict(arg, data=mx.nd.array(data)), aux_states=aux, grad_req='null')
    return executor.forward(is_train=False)[0].asnumpy()


def test_int8_layers_follow_fp32_layers_and_outputs_stay_close():
    net, arg, aux = small_net()
    qsym, qarg, qaux, layers = q.quantize(net, arg, aux, inputs(), fp32_layers=['conv0'], record={'images': 3})
    assert layers == {'int8': ['conv1', 'conv2', 'head'], 'fp32': ['conv0']}
    assert q.is_quantized(qsym) and not q.is_quantized(net)
    assert q.quantization_record(qsym) == {'images': 3} and q.quantization_record(net) is None
    assert sorted(qarg) == sorted(arg)  # the FP32 weights; oneDNN quantizes them when it runs
    for data in inputs():
        reference, got = forward(net, arg, aux, data), forward(qsym, qarg, qaux, data)
        assert np.abs(got - reference).max() < 0.05 * np.abs(reference).max()


def test_the_record_and_the_ranges_survive_save_and_load(tmp_path):
    net, arg, aux = small_net()
    qsym, qarg, qaux, _ = q.quantize(net, arg, aux, inputs(), record={'images': 3})
    qsym.save(str(tmp_path / 'q-symbol.json'))
    loaded = mx.sym.load(str(tmp_path / 'q-symbol.json'))
    assert q.quantization_record(loaded) == {'images': 3}
    data = inputs()[0]
    np.testing.assert_array_equal(forward(loaded, qarg, qaux, data), forward(qsym, qarg, qaux, data))


def test_the_same_inputs_give_the_same_model():
    net, arg, aux = small_net()
    first, second = (q.quantize(net, arg, aux, inputs())[0].tojson() for _ in range(2))
    assert first == second
    ranges = [node['attrs']['min_calib_range'] for node in json.loads(first)['nodes']
              if 'min_calib_range' in node.get('attrs', {})]
    assert ranges  # calibrated, so the same text is not the same empty text


def test_unknown_layers_and_no_inputs_are_errors():
    net, arg, aux = small_net()
    with pytest.raises(ValueError, match='no layer named conv9 in the model'):
        q.quantize(net, arg, aux, inputs(), fp32_layers=['conv9'])
    with pytest.raises(ValueError, match='cannot calibrate on no inputs'):
        q.quantize(net, arg, aux, [])


def test_a_build_without_onednn_cannot_quantize(monkeypatch):
    class NoOneDnn:
        def is_enabled(self, name):
            return name != 'MKLDNN'

    monkeypatch.setattr(mx.runtime, 'Features', NoOneDnn)
    assert 'no oneDNN' in q.int8_problem()
    net, arg, aux = small_net()
    with pytest.raises(ValueError, match='cannot quantize: this MXNet build has no oneDNN'):
        q.quantize(net, arg, aux, inputs())


def test_int8_is_faster_only_with_vnni():
    assert q.int8_is_faster({'sse4_1', 'avx512f', 'avx512_vnni'})
    assert q.int8_is_faster({'avx2', 'avx_vnni'})
    assert not q.int8_is_faster({'sse4_1', 'avx2', 'avx512f'})


def test_an_int8_model_runs_on_the_cpu_only_and_warns_without_vnni(monkeypatch, caplog):
    with pytest.raises(DeviceError, match=r'm-0000.params is an INT8 model, which runs on the CPU only .*--gpu -1'):
        q.check_int8_context('m-0000.params', mx.gpu(0))
    monkeypatch.setattr(q, 'cpu_flags', lambda: {'avx2'})
    with caplog.at_level(logging.WARNING, logger='facekit.mx.quantize'):
        q.check_int8_context('m-0000.params', mx.cpu())
    assert 'm-0000.params is an INT8 model, but this CPU lacks VNNI' in caplog.text
