"""rcnn.core.checkpoint: model files that cannot be read name themselves, nothing non-finite is
written, and optimizer state goes through mx.nd files and JSON only, never pickle."""
import hashlib
import json
import os
import pickle

import mxnet as mx
import numpy as np
import pytest

import train
from rcnn.core.checkpoint import (STATES_FORMAT, CheckpointError, load_optimizer_states, load_param_file,
                                  load_params, load_symbol, params_digest, save_checkpoint)
from rcnn.core.finite import NonFiniteError
from rcnn.fileio import states_path

BATCH = 4


def tiny_symbol():
    data = mx.sym.Variable('data')
    hidden = mx.sym.FullyConnected(data, num_hidden=3, name='fc1')
    hidden = mx.sym.BatchNorm(hidden, name='bn1')
    return mx.sym.LinearRegressionOutput(mx.sym.FullyConnected(hidden, num_hidden=2, name='fc2'), name='out')


def tiny_module(contexts, arg_params=None, aux_params=None):
    """A bound Module with SGD + momentum, made as train.py makes it."""
    return train.create_module(tiny_symbol(), contexts, [('data', (BATCH, 5))], [('out_label', (BATCH, 2))],
                               arg_params, aux_params, [], train.make_optimizer(0.1, 0.0, len(contexts)),
                               mx.kv.create('device'))


def batch(seed):
    rng = np.random.RandomState(seed)
    return mx.io.DataBatch([mx.nd.array(rng.normal(size=(BATCH, 5)))], [mx.nd.array(rng.normal(size=(BATCH, 2)))])


def step(mod, seed):
    mod.forward_backward(batch(seed))
    mod.update()


def test_a_truncated_symbol_file_names_the_file_and_line(tmp_path):
    path = tmp_path / 'm-symbol.json'
    tiny_symbol().save(str(path))
    assert load_symbol(str(path)).list_outputs() == ['out_output']
    text = path.read_text()
    path.write_text(text[:len(text) // 2])
    with pytest.raises(CheckpointError, match=r'^%s:\d+:\d+: not a valid symbol file \(truncated\?\)' % path):
        load_symbol(str(path))
    path.write_bytes(b'\x00\xff' * 50)
    with pytest.raises(CheckpointError, match='^%s: not a symbol file' % path):
        load_symbol(str(path))
    path.write_text('{"nodes": 3}')
    with pytest.raises(CheckpointError, match='^%s: not an MXNet symbol' % path):
        load_symbol(str(path))
    with pytest.raises(FileNotFoundError, match='nowhere-symbol.json'):
        load_symbol(str(tmp_path / 'nowhere-symbol.json'))


def test_a_params_file_mxnet_cannot_read_names_the_file(tmp_path):
    path = tmp_path / 'm-0001.params'
    path.write_bytes(b'not a parameter file at all')
    with pytest.raises(CheckpointError, match='^%s: not a readable MXNet parameter file' % path):
        load_param_file(str(path))
    mx.nd.save(str(path), [mx.nd.zeros((2,))])
    with pytest.raises(CheckpointError, match='^%s: holds 1 unnamed arrays' % path):
        load_param_file(str(path))


def test_nothing_non_finite_is_written(tmp_path):
    mod = tiny_module([mx.cpu()])
    step(mod, 0)
    arg, aux = mod.get_params()
    arg['fc2_bias'][0] = np.nan
    with pytest.raises(NonFiniteError, match=r'NaN or infinity in the checkpoint .*m-0001\.params \(not written\): '
                                             r'fc2_bias$'):
        save_checkpoint(str(tmp_path / 'm'), 1, tiny_symbol(), arg, aux, module=mod)
    arg, aux = mod.get_params()
    mod._kvstore._updater.states['fc1_weight'][:] = np.inf
    with pytest.raises(NonFiniteError, match=r'momentum of fc1_weight$'):
        save_checkpoint(str(tmp_path / 'm'), 1, tiny_symbol(), arg, aux, module=mod)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('on_kvstore', ['1', '0'])
@pytest.mark.parametrize('devices', [1, 2])
def test_a_module_resumed_from_its_states_updates_exactly_as_the_original(devices, on_kvstore, tmp_path, monkeypatch):
    """On the kvstore (states keyed by name) or, with MXNET_UPDATE_ON_KVSTORE=0, in the
    Module's updater (keyed by index * devices + device), on one device or two."""
    monkeypatch.setenv('MXNET_UPDATE_ON_KVSTORE', on_kvstore)
    contexts = [mx.cpu(i) for i in range(devices)]
    original = tiny_module(contexts)
    assert original._update_on_kvstore == (on_kvstore == '1')
    for seed in range(3):
        step(original, seed)
    prefix = str(tmp_path / 'm')
    save_checkpoint(prefix, 1, tiny_symbol(), *original.get_params(), module=original)
    meta = json.loads(open(states_path(prefix, 1) + '.json').read())
    assert meta['format'] == STATES_FORMAT and meta['num_update'] == 3
    assert sorted(mx.nd.load(states_path(prefix, 1))) == ['bn1_beta', 'bn1_gamma', 'fc1_bias', 'fc1_weight',
                                                          'fc2_bias', 'fc2_weight']

    arg, aux = load_params(prefix, 1)
    resumed = tiny_module(contexts, arg, aux)
    assert load_optimizer_states(resumed, states_path(prefix, 1), params_digest(arg, aux))
    restarted = tiny_module(contexts, arg, aux)
    for mod in (original, resumed, restarted):
        step(mod, 3)
    after = [{k: v.asnumpy() for k, v in mod.get_params()[0].items()} for mod in (original, resumed, restarted)]
    for name in after[0]:
        np.testing.assert_array_equal(after[1][name], after[0][name], err_msg=name)
    assert not np.array_equal(after[2]['fc1_weight'], after[0]['fc1_weight'])  # the momentum matters


def _states_of(tmp_path):
    """(a module resumed from a saved checkpoint, its .states path, the digest of its parameters)."""
    mod = tiny_module([mx.cpu()])
    step(mod, 0)
    prefix = str(tmp_path / 'm')
    arg, aux = mod.get_params()
    save_checkpoint(prefix, 1, tiny_symbol(), arg, aux, module=mod)
    params = load_params(prefix, 1)
    return tiny_module([mx.cpu()], *params), states_path(prefix, 1), params_digest(*params)


class _Marker:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, 'w')


def test_a_crafted_pickle_with_a_forged_description_is_refused_and_creates_nothing(tmp_path):
    mod, path, digest = _states_of(tmp_path)
    marker = tmp_path / 'unpickled'
    with open(path, 'wb') as f:
        pickle.dump({'fc1_weight': _Marker(str(marker))}, f)
    meta = json.loads(open(path + '.json').read())
    meta['states_md5'] = hashlib.md5(open(path, 'rb').read()).hexdigest()
    with open(path + '.json', 'w') as f:
        json.dump(meta, f)
    with pytest.raises(CheckpointError, match='^%s: not a readable optimizer state' % path):
        load_optimizer_states(mod, path, digest)
    assert not marker.exists()


def test_inconsistent_state_files_are_errors_naming_them(tmp_path):
    mod, path, digest = _states_of(tmp_path)
    with pytest.raises(CheckpointError, match='was saved with other parameters than those resumed from'):
        load_optimizer_states(mod, path, '0' * 32)
    meta = json.loads(open(path + '.json').read())
    for broken, message in (({**meta, 'format': 'pickle'}, 'not an optimizer-state description'),
                            ({k: v for k, v in meta.items() if k != 'params_digest'}, "'params_digest' missing")):
        with open(path + '.json', 'w') as f:
            json.dump(broken, f)
        with pytest.raises(CheckpointError, match='^%s.json: .*%s' % (path, message)):
            load_optimizer_states(mod, path, digest)
    with open(path + '.json', 'w') as f:
        json.dump(meta, f)
    os.remove(path)
    with pytest.raises(CheckpointError, match=r'^%s.json describes optimizer state, but %s is missing' % (path, path)):
        load_optimizer_states(mod, path, digest)
    os.remove(path + '.json')
    assert not load_optimizer_states(mod, path, digest)  # no state at all: the momentum starts from zero
