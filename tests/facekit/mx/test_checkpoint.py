"""facekit.mx.checkpoint: model files that cannot be read name themselves, nothing non-finite is
written, and optimizer state goes through mx.nd files and JSON only, never pickle."""
import hashlib
import json
import os
import pickle

import mxnet as mx
import numpy as np
import pytest

from facekit.mx.checkpoint import (STATES_FORMAT, CheckpointError, load_optimizer_states, load_param_file,
                                   load_params, load_symbol, params_digest, save_checkpoint)
from facekit.mx.finite import NonFiniteError
from facekit.prefix import Position, params_path, states_path
from mx_support import step, tiny_module, tiny_symbol


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
        save_checkpoint(str(tmp_path / 'm'), Position(1), tiny_symbol(), arg, aux, module=mod)
    arg, aux = mod.get_params()
    mod._kvstore._updater.states['fc1_weight'][:] = np.inf
    with pytest.raises(NonFiniteError, match=r'momentum of fc1_weight$'):
        save_checkpoint(str(tmp_path / 'm'), Position(1), tiny_symbol(), arg, aux, module=mod)
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
    save_checkpoint(prefix, Position(1), tiny_symbol(), *original.get_params(), module=original)
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
    save_checkpoint(prefix, Position(1), tiny_symbol(), arg, aux, module=mod)
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


def test_a_corrupt_params_file_of_a_training_checkpoint_is_named(tmp_path):
    """Its .states.json records the parameters' digest: a flipped bit is an error, not other weights."""
    _, path, _ = _states_of(tmp_path)
    params = params_path(str(tmp_path / 'm'), 1)
    data = bytearray(open(params, 'rb').read())
    data[-3] ^= 0x10  # inside the last array's values: MXNet still reads the file
    open(params, 'wb').write(bytes(data))
    with pytest.raises(CheckpointError, match=r'^%s does not hold the parameters %s.json records' % (params, path)):
        load_param_file(params)


def test_a_missing_state_file_restarts_the_momentum_with_a_warning(tmp_path, caplog):
    mod, path, digest = _states_of(tmp_path)
    os.remove(path)
    os.remove(path + '.json')
    with caplog.at_level('WARNING'):
        assert not load_optimizer_states(mod, path, digest)
    assert any(r.levelname == 'WARNING' and 'no optimizer state %s' % path in r.getMessage() for r in caplog.records)


def test_a_save_removes_what_killed_saves_of_the_prefix_left_behind(tmp_path):
    """Temporaries of any epoch of the prefix whose writer is gone go at the next save; another
    prefix's stay."""
    mod = tiny_module([mx.cpu()])
    step(mod, 0)
    dead = 2 ** 22 + 7  # above Linux's default pid_max: no such process
    from facekit.files import _host
    stale = [tmp_path / ('.m-0003.%s-%d-0123456789ab.tmp.params' % (_host(), dead)),
             tmp_path / ('.m-0002-batch000004.%s-%d-0123456789ab.tmp.states' % (_host(), dead))]
    foreign = tmp_path / ('.other-0003.%s-%d-0123456789ab.tmp.params' % (_host(), dead))
    for path in stale + [foreign]:
        path.write_text('half')
    save_checkpoint(str(tmp_path / 'm'), Position(1), tiny_symbol(), *mod.get_params(), module=mod)
    assert not any(path.exists() for path in stale) and foreign.exists()
