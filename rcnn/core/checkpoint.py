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


def load_params(prefix, epoch):
    """(arg_params, aux_params) of ``prefix-%04d.params``; FileNotFoundError names the file."""
    path = params_path(prefix, epoch)
    if not os.path.isfile(path):
        raise FileNotFoundError('no parameters at %s (prefix %r, epoch %d)' % (path, prefix, epoch))
    arg_params, aux_params = {}, {}
    for key, value in mx.nd.load(path).items():
        kind, name = key.split(':', 1)
        (arg_params if kind == 'arg' else aux_params)[name] = value
    return arg_params, aux_params


def params_digest(arg_params, aux_params):
    """MD5 over the parameters in name order: equal digests mean bit-identical weights."""
    digest = hashlib.md5()
    for params in (arg_params, aux_params):
        for name in sorted(params):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(params[name].asnumpy()).tobytes())
    return digest.hexdigest()
