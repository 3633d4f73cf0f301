"""Checkpoints as MXNet writes them (``prefix-symbol.json``, ``prefix-%04d.params``), atomically.

A training checkpoint holds the deploy symbol, so ``RetinaFace(prefix, epoch)`` loads
it directly; the optimizer state goes beside it as ``prefix-%04d.states`` for resuming.
"""
import hashlib
import logging
import os

import mxnet as mx
import numpy as np

from rcnn.fileio import atomic_path

logger = logging.getLogger(__name__)


def params_path(prefix, epoch):
    return '%s-%04d.params' % (prefix, epoch)


def states_path(prefix, epoch):
    return '%s-%04d.states' % (prefix, epoch)


def save_checkpoint(prefix, epoch, deploy_symbol, arg_params, aux_params, module=None):
    """Write symbol, parameters and (with ``module``) optimizer states; each file atomically."""
    with atomic_path('%s-symbol.json' % prefix) as tmp:
        deploy_symbol.save(tmp)
    needed = set(deploy_symbol.list_arguments()) | set(deploy_symbol.list_auxiliary_states())
    save_dict = {'arg:%s' % k: v.as_in_context(mx.cpu()) for k, v in arg_params.items() if k in needed}
    save_dict.update({'aux:%s' % k: v.as_in_context(mx.cpu()) for k, v in aux_params.items() if k in needed})
    with atomic_path(params_path(prefix, epoch)) as tmp:
        mx.nd.save(tmp, save_dict)
    if module is not None:
        with atomic_path(states_path(prefix, epoch)) as tmp:
            module.save_optimizer_states(tmp)
    logger.info('saved checkpoint %s', params_path(prefix, epoch))


def load_param_file(path):
    """(arg_params, aux_params) dicts of NDArrays from an MXNet ``.params`` file.

    Raises FileNotFoundError, or ValueError for a key without the ``arg:``/``aux:`` prefix,
    naming the file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError('model parameters not found: %s' % path)
    arg_params, aux_params = {}, {}
    for key, value in mx.nd.load(path).items():
        kind, _, name = key.partition(':')
        if kind == 'arg':
            arg_params[name] = value
        elif kind == 'aux':
            aux_params[name] = value
        else:
            raise ValueError('%s: parameter %r is neither arg: nor aux:' % (path, key))
    return arg_params, aux_params


def load_params(prefix, epoch):
    """(arg_params, aux_params) of ``prefix-%04d.params``."""
    return load_param_file(params_path(prefix, epoch))


def params_digest(arg_params, aux_params):
    """MD5 over the parameters in name order: equal digests mean bit-identical weights."""
    digest = hashlib.md5()
    for params in (arg_params, aux_params):
        for name in sorted(params):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(params[name].asnumpy()).tobytes())
    return digest.hexdigest()
