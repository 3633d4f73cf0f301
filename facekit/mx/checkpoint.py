"""Checkpoints as MXNet writes them (``prefix-symbol.json``, ``prefix-%04d.params``), atomically,
and the optimizer state beside them in a format that cannot carry code.

A training checkpoint holds the deploy symbol, so ``RetinaFace(prefix, epoch)`` loads
it directly. For resuming, ``.states`` holds the optimizer state (SGD's momentum) as
``mx.nd.save`` arrays keyed by parameter name, and ``.states.json`` its format tag, the
optimizer's update count and digests of the ``.params`` file it belongs to and of the
``.states`` file itself (file names: ``facekit.prefix``). MXNet's own
``Module.save_optimizer_states`` writes a pickle, which runs code when loaded; such a
file is never read (the momentum then restarts from zero).

A ``.params`` file with a ``.states.json`` beside it is checked against the digest that
records when it is loaded: a corrupt file is an error naming it, not other weights.
Every loader names the file it could not read (:class:`CheckpointError`).
"""
import hashlib
import json
import logging
import os

import mxnet as mx
import numpy as np

from facekit.files import atomic_open, atomic_path, file_digest
from facekit.mx.finite import check_finite
from facekit.prefix import params_path, remove_stale, states_meta_path, states_path, symbol_path

__all__ = ['STATES_FORMAT', 'CheckpointError', 'save_checkpoint', 'load_param_file', 'load_params', 'load_symbol',
           'load_checkpoint', 'params_digest', 'load_optimizer_states']

logger = logging.getLogger(__name__)

STATES_FORMAT = 'retinaface-optimizer-states/1'
_PICKLE_PROTOCOL_2_OR_LATER = b'\x80'


class CheckpointError(ValueError):
    """A model or optimizer-state file that cannot be used; the message names the file."""


def _mxnet_reason(error):
    """The last line of an MXNetError, without its C++ traceback."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def save_checkpoint(prefix, position, deploy_symbol, arg_params, aux_params, module=None):
    """Write symbol, parameters and (with ``module``) optimizer states of ``position`` (a
    ``facekit.prefix.Position``: whole epochs, or a batch inside an epoch), each file atomically.

    The old description of the same states file goes first, so a save killed half-way
    leaves no description that names other files. Temporary files that killed saves of
    this prefix left behind are removed. Raises NonFiniteError, writing nothing, if a
    parameter or optimizer state holds NaN or infinity. Returns the ``.params`` path.
    """
    needed = set(deploy_symbol.list_arguments()) | set(deploy_symbol.list_auxiliary_states())
    arg = {k: v.as_in_context(mx.cpu()) for k, v in arg_params.items() if k in needed}
    aux = {k: v.as_in_context(mx.cpu()) for k, v in aux_params.items() if k in needed}
    path = params_path(prefix, position.epoch, position.batch)
    states = states_path(prefix, position.epoch, position.batch)
    state_arrays = _optimizer_states(module, states) if module is not None else {}
    check_finite(list(arg.items()) + list(aux.items()) + [('momentum of ' + k, v) for k, v in state_arrays.items()],
                 'the checkpoint %s (not written)' % path)
    remove_stale(prefix)
    with atomic_path(symbol_path(prefix)) as tmp:
        deploy_symbol.save(tmp)
    if os.path.lexists(states_meta_path(states)):
        os.remove(states_meta_path(states))
    save_dict = {'arg:%s' % k: v for k, v in arg.items()}
    save_dict.update({'aux:%s' % k: v for k, v in aux.items()})
    with atomic_path(path) as tmp:
        mx.nd.save(tmp, save_dict)
    if module is not None:
        _write_states(states, state_arrays, _updater(module)[0].optimizer, params_digest(arg, aux))
    logger.info('saved checkpoint %s (%s)', path, position)
    return path


def load_param_file(path):
    """(arg_params, aux_params) dicts of NDArrays from an MXNet ``.params`` file.

    Raises FileNotFoundError, or CheckpointError (a ValueError) naming the file: one MXNet
    cannot read (truncated, not a parameter file), a key without the ``arg:``/``aux:``
    prefix, or parameters that differ from the digest a ``.states.json`` beside the file
    records (a corrupt file).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError('model parameters not found: %s' % path)
    try:
        loaded = mx.nd.load(path)
    except mx.base.MXNetError as error:
        raise CheckpointError('%s: not a readable MXNet parameter file (truncated or corrupt?): %s'
                              % (path, _mxnet_reason(error))) from None
    if not isinstance(loaded, dict):
        raise CheckpointError('%s: holds %d unnamed arrays, not MXNet parameters named arg:NAME / aux:NAME'
                              % (path, len(loaded)))
    arg_params, aux_params = {}, {}
    for key, value in loaded.items():
        kind, _, name = key.partition(':')
        if kind == 'arg':
            arg_params[name] = value
        elif kind == 'aux':
            aux_params[name] = value
        else:
            raise CheckpointError('%s: parameter %r is neither arg: nor aux:' % (path, key))
    _verify_params(path, arg_params, aux_params)
    return arg_params, aux_params


def _verify_params(path, arg_params, aux_params):
    """CheckpointError unless the parameters of ``path`` have the digest its ``.states.json``
    records (files without one, e.g. released models, are not checked)."""
    if not path.endswith('.params'):
        return
    meta_path = states_meta_path(path[:-len('.params')] + '.states')
    if not os.path.isfile(meta_path):
        return
    recorded = _read_meta(meta_path)['params_digest']
    if params_digest(arg_params, aux_params) != recorded:
        raise CheckpointError('%s does not hold the parameters %s records (parameter digest %s): the file is '
                              'corrupt or was replaced' % (path, meta_path, recorded))


def load_params(prefix, epoch, batch=0):
    """(arg_params, aux_params) of ``prefix-%04d.params`` (with ``batch``, the checkpoint inside the epoch)."""
    return load_param_file(params_path(prefix, epoch, batch))


def load_symbol(path):
    """The ``mx.sym.Symbol`` of a ``-symbol.json`` file.

    Raises FileNotFoundError, or CheckpointError naming the file (and the line and
    column for text that is not JSON, e.g. a truncated file).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError('model symbol not found: %s' % path)
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        json.loads(text)
    except UnicodeDecodeError as error:
        raise CheckpointError('%s: not a symbol file (not UTF-8 text at byte %d)' % (path, error.start)) from None
    except json.JSONDecodeError as error:
        raise CheckpointError('%s:%d:%d: not a valid symbol file (truncated?): %s'
                              % (path, error.lineno, error.colno, error.msg)) from None
    try:
        return mx.sym.load_json(text)
    except mx.base.MXNetError as error:
        raise CheckpointError('%s: not an MXNet symbol: %s' % (path, _mxnet_reason(error))) from None


def load_checkpoint(prefix, epoch):
    """(symbol, arg_params, aux_params) of ``prefix-symbol.json`` and ``prefix-%04d.params``.

    Raises FileNotFoundError, or CheckpointError naming the file that cannot be read.
    """
    symbol = load_symbol(symbol_path(prefix))
    arg_params, aux_params = load_params(prefix, epoch)
    return symbol, arg_params, aux_params


def params_digest(arg_params, aux_params):
    """MD5 over the parameters in name order: equal digests mean bit-identical weights."""
    digest = hashlib.md5()
    for params in (arg_params, aux_params):
        for name in sorted(params):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(params[name].asnumpy()).tobytes())
    return digest.hexdigest()


def _updater(module):
    """(Updater, {parameter name: [keys]}) holding a Module's optimizer state.

    Measured on MXNet 1.9.1: given a KVStore (any type, one device or several),
    Module updates on the kvstore, whose updater keys the state by parameter name;
    with ``MXNET_UPDATE_ON_KVSTORE=0`` the Module's own updater keys it by
    ``index * num_devices + device``, one state per device, all equal (each device
    applies the same aggregated gradient). Workers of a dist kvstore hold none
    (it lives on the servers): the Updater is then None.
    """
    if module._update_on_kvstore:
        updater = module._kvstore._updater
        keys = {name: [name] for name in module._exec_group.param_names}
    else:
        updater = module._updater
        keys = {}
        for key, name in sorted(module._optimizer.idx2name.items()):
            keys.setdefault(name, []).append(key)
    return updater, keys


def _optimizer_states(module, path):
    """{parameter name: state NDArray on the CPU} of ``module``'s optimizer (parameters not
    updated yet have none)."""
    updater, keys = _updater(module)
    if updater is None:
        raise CheckpointError('%s: the optimizer state lives on the kvstore servers and cannot be saved' % path)
    arrays = {}
    for name, name_keys in keys.items():
        state = updater.states.get(name_keys[0])
        if state is None:
            continue
        if not isinstance(state, mx.nd.NDArray):
            raise CheckpointError('%s: cannot save the optimizer state of %s (%s, not one NDArray)'
                                  % (path, name, type(state).__name__))
        arrays[name] = state.as_in_context(mx.cpu())
    return arrays


def _write_states(path, arrays, optimizer, digest):
    """``arrays`` to ``path`` and their description to :func:`states_meta_path`, each atomically;
    the JSON last, so it names a complete ``.states`` file. ``digest``: :func:`params_digest`
    of the ``.params`` file they belong to."""
    with atomic_path(path) as tmp:
        mx.nd.save(tmp, arrays)
    meta = {'format': STATES_FORMAT, 'optimizer': type(optimizer).__name__, 'num_update': int(optimizer.num_update),
            'params_digest': digest, 'states_md5': file_digest(path, 'md5')}
    with atomic_open(states_meta_path(path)) as f:
        json.dump(meta, f, indent=1)


def _read_meta(meta_path):
    try:
        with open(meta_path, encoding='utf-8') as f:
            meta = json.load(f)
    except UnicodeDecodeError:
        raise CheckpointError('%s: not a JSON text file' % meta_path) from None
    except json.JSONDecodeError as error:
        raise CheckpointError('%s:%d:%d: not valid JSON (truncated?): %s'
                              % (meta_path, error.lineno, error.colno, error.msg)) from None
    if not isinstance(meta, dict) or meta.get('format') != STATES_FORMAT:
        raise CheckpointError('%s: not an optimizer-state description of format %s'
                              % (meta_path, STATES_FORMAT))
    for field, kind in (('num_update', int), ('params_digest', str), ('states_md5', str)):
        if not isinstance(meta.get(field), kind):
            raise CheckpointError('%s: field %r missing or not a %s' % (meta_path, field, kind.__name__))
    return meta


def load_optimizer_states(module, path, digest):
    """Set ``module``'s optimizer state from ``path`` (written by :func:`save_checkpoint`),
    without pickle. ``digest``: :func:`params_digest` of the parameters resumed from.

    A missing state file, or one without its ``.json`` (MXNet's pickled format, or a
    save killed between the two files), is not read: logged, the momentum restarts
    from zero. Parameters without a saved state start from zero too (logged).

    Returns:
        whether a state was loaded.

    Raises:
        CheckpointError naming the file: unreadable or inconsistent files, a state
        saved with other parameters than ``digest``'s, a state of the wrong shape.
    """
    meta_path = states_meta_path(path)
    if not os.path.isfile(meta_path):
        if not os.path.isfile(path):
            logger.warning('no optimizer state %s (a save stopped before it?): the momentum restarts from zero', path)
            return False
        with open(path, 'rb') as f:
            pickled = f.read(1) == _PICKLE_PROTOCOL_2_OR_LATER
        logger.warning('%s is not read: %s; the momentum restarts from zero', path,
                       "it is in MXNet's pickled format (Module.save_optimizer_states), which can run code "
                       'when loaded' if pickled else 'its description %s is missing' % os.path.basename(meta_path))
        return False
    meta = _read_meta(meta_path)
    if not os.path.isfile(path):
        raise CheckpointError('%s describes optimizer state, but %s is missing' % (meta_path, path))
    if file_digest(path, 'md5') != meta['states_md5']:
        raise CheckpointError('%s is not the file %s describes (its MD5 differs: truncated, corrupt or from '
                              'another save); remove both to resume with the momentum restarted' % (path, meta_path))
    if digest != meta['params_digest']:
        raise CheckpointError('%s was saved with other parameters than those resumed from (parameter digest %s, '
                              'saved with %s): the .params and .states files come from different saves; remove '
                              '%s and %s to resume with the momentum restarted'
                              % (path, digest, meta['params_digest'], path, meta_path))
    try:
        arrays = mx.nd.load(path)
    except mx.base.MXNetError as error:
        raise CheckpointError('%s: not a readable optimizer state: %s' % (path, _mxnet_reason(error))) from None
    if not isinstance(arrays, dict):
        raise CheckpointError('%s: holds unnamed arrays, not optimizer states named by parameter' % path)

    updater, keys = _updater(module)
    if updater is None:
        raise CheckpointError('%s: the optimizer state lives on the kvstore servers and cannot be loaded' % path)
    group = module._exec_group
    weights = {name: arrays_[0] for name, arrays_, grads in
               zip(group.param_names, group.param_arrays, group.grad_arrays) if grads[0] is not None}
    unused = sorted(set(arrays) - set(weights))
    for name, state in arrays.items():
        if name in weights and (state.shape != weights[name].shape or state.dtype != weights[name].dtype):
            raise CheckpointError('%s: state of %s has shape %s (%s), the parameter %s (%s)'
                                  % (path, name, state.shape, np.dtype(state.dtype).name, weights[name].shape,
                                     np.dtype(weights[name].dtype).name))
    for name in weights:
        if name in arrays:
            for key in keys[name]:
                # As MXNet's Updater.set_states: moved to the weight's device at its first update.
                updater.states[key] = arrays[name].copy()
                updater.states_synced[key] = False
    # The update count is not restored, as with MXNet's format (which holds the states
    # only): a resumed run's learning-rate steps count from its own start (lr_schedule).
    fresh = sorted(set(weights) - set(arrays))
    logger.info('optimizer state of %d parameters from %s (%d updates)%s%s', len(weights) - len(fresh), path,
                meta['num_update'], '; momentum from zero: %s' % ', '.join(fresh) if fresh else '',
                '; not trained now, ignored: %s' % ', '.join(unused) if unused else '')
    return True
