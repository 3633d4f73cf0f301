"""Train one net of the cascade on a sample list (see ``mtcnn.samples``).

    python -m mtcnn.train --net pnet --samples data/mtcnn/train_12.txt --prefix model/pnet

Checkpoints are ``<prefix>-symbol.json`` (the test symbol) and
``<prefix>-%04d.params`` after each epoch, written atomically;
``--begin-epoch N`` resumes from ``<prefix>-%04d.params`` of epoch N (the
momentum restarts, as in the original).
Defaults follow the original MXNet implementation: SGD, momentum 0.9, wd 1e-5,
lr 0.01 divided by 10 at epochs 8 and 14, 16 epochs, batch 128.

The loop is ``Module.fit``'s, written out so that every batch's losses,
gradients and parameters are checked for NaN and infinity (``rcnn.core.finite``):
training that diverges stops with an error naming the batch (exit status 1)
and saves nothing more. Bad arguments are argparse errors (status 2) before any
work; SIGINT stops with Python's KeyboardInterrupt (no checkpoint of the
unfinished epoch).
"""
import argparse
import logging
import os
import time

if __name__ == '__main__':
    # OpenMP reads its settings when MXNet loads it: set them, and start measuring the CPUs
    # other processes take, before the imports below (rcnn.runtime).
    from rcnn.runtime import prepare_openmp
    _LOAD = prepare_openmp()

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

from mtcnn.loader import ImageListIter, read_sample_list  # noqa: E402
from mtcnn.metric import metrics  # noqa: E402
from mtcnn.symbol import INPUT_SIZE, get_symbol  # noqa: E402
from rcnn import runtime  # noqa: E402
from rcnn.cli import (  # noqa: E402
    check_writable_dir, increasing_epochs, int_at_least, int_list, non_negative_float, positive_float, setup_logging)
from rcnn.core.checkpoint import CheckpointError, load_param_file  # noqa: E402
from rcnn.core.finite import ModuleCheck, NonFiniteError, check_finite, describe  # noqa: E402
from rcnn.core.metric import Speedometer, format_value, name_values  # noqa: E402
from rcnn.fileio import atomic_path, params_path, symbol_path  # noqa: E402
from rcnn.runtime import DeviceError, choose_gpus  # noqa: E402

__all__ = ['train_net', 'init_params', 'save_checkpoint', 'main']

logger = logging.getLogger(__name__)

PRELU_INIT = 0.25


def init_params(symbol, data_shapes):
    """Fresh parameters for a train symbol: Xavier (gaussian, fan-in, magnitude 2)
    weights, fully connected ones scaled by 1/10 as in the original, zero biases
    and PReLU slopes of 0.25."""
    arg_shapes, _, _ = symbol.infer_shape(**data_shapes)
    xavier = mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)
    params = {}
    for name, shape in zip(symbol.list_arguments(), arg_shapes):
        if name in data_shapes:
            continue
        array = mx.nd.zeros(shape)
        if name.endswith('_weight'):
            xavier(mx.init.InitDesc(name), array)
            if name.startswith('fc'):
                array /= 10
        elif name.endswith('_gamma'):
            array[:] = PRELU_INIT
        params[name] = array
    return params


def save_checkpoint(prefix, epoch, arg_params, aux_params):
    """Write ``<prefix>-%04d.params`` atomically; NonFiniteError, writing nothing, for NaN or infinity."""
    blob = {'arg:%s' % k: v.as_in_context(mx.cpu()) for k, v in arg_params.items()}
    blob.update({'aux:%s' % k: v.as_in_context(mx.cpu()) for k, v in aux_params.items()})
    path = params_path(prefix, epoch)
    check_finite(list(blob.items()), 'the parameters for %s (not written)' % path)
    with atomic_path(path) as tmp:
        mx.nd.save(tmp, blob)
    logger.info('saved %s', path)
    return path


def _lr_schedule(base_lr, lr_epochs, begin_epoch, epoch_size, factor=0.1):
    """Learning rate at ``begin_epoch`` and a scheduler for the steps still ahead."""
    ahead = [e - begin_epoch for e in lr_epochs if e > begin_epoch]
    lr = base_lr * factor ** (len(lr_epochs) - len(ahead))
    steps = [e * epoch_size for e in ahead if e * epoch_size > 0]
    scheduler = mx.lr_scheduler.MultiFactorScheduler(steps, factor) if steps else None
    return lr, scheduler


def _resumed_params(path, symbol, shapes):
    """Parameters of checkpoint ``path``, which must hold every parameter of ``symbol`` with its shape."""
    arg_params, aux_params = load_param_file(path)
    arg_shapes, _, _ = symbol.infer_shape(**shapes)
    needed = {n: s for n, s in zip(symbol.list_arguments(), arg_shapes) if n not in shapes}
    missing = sorted(set(needed) - set(arg_params))
    if missing:
        raise CheckpointError('cannot resume from %s: it lacks parameters %s' % (path, ', '.join(missing)))
    for name, shape in needed.items():
        if tuple(arg_params[name].shape) != tuple(shape):
            raise CheckpointError('cannot resume from %s: parameter %s has shape %s, the network needs %s'
                                  % (path, name, arg_params[name].shape, shape))
    return arg_params, aux_params


def train_net(net, samples, prefix, ctx=(mx.cpu(),), begin_epoch=0, end_epoch=16, base_lr=0.01,
              lr_epochs=(8, 14), batch_size=128, frequent=50, with_landmark=False, mirror=True,
              wd=1e-5, seed=0):
    """Train ``net`` ('pnet', 'rnet', 'onet') on a SampleList; returns the last params path.

    Raises:
        NonFiniteError: NaN or infinity in a loss output, gradient or parameter (the
            message names the epoch and batch); the checkpoints of earlier epochs are kept.
        CheckpointError: a resume checkpoint that is unreadable or lacks parameters.
    """
    if end_epoch <= begin_epoch:
        raise ValueError('end_epoch (%d) must exceed begin_epoch (%d)' % (end_epoch, begin_epoch))
    mx.random.seed(seed)
    size = INPUT_SIZE[net]
    data = ImageListIter(samples, size, batch_size, shuffle=True, mirror=mirror,
                         with_landmark=with_landmark, seed=seed + begin_epoch)
    # Same function and parameters as the 'leaky' graph, with a much faster CPU backward.
    symbol = get_symbol(net, 'train', with_landmark, prelu='decomposed')
    shapes = dict(data.provide_data + data.provide_label)
    if begin_epoch > 0:
        arg_params, aux_params = _resumed_params(params_path(prefix, begin_epoch), symbol, shapes)
    else:
        arg_params, aux_params = init_params(symbol, shapes), {}

    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with atomic_path(symbol_path(prefix)) as tmp:
        get_symbol(net, 'test', with_landmark).save(tmp)

    lr, scheduler = _lr_schedule(base_lr, lr_epochs, begin_epoch, len(samples) // batch_size)
    logger.info('%s: %d samples, lr %g at epoch %d, epochs %d..%d', net, len(samples), lr, begin_epoch,
                begin_epoch, end_epoch)
    optimizer_params = {'momentum': 0.9, 'wd': wd, 'learning_rate': lr, 'rescale_grad': 1.0}
    if scheduler is not None:
        optimizer_params['lr_scheduler'] = scheduler

    # Module.fit's set-up and loop (MXNet 1.9.1), with the finiteness check after each update.
    module = mx.mod.Module(symbol, data_names=['data'], label_names=[d.name for d in data.provide_label],
                           context=list(ctx), logger=logger)
    module.bind(data_shapes=data.provide_data, label_shapes=data.provide_label, for_training=True)
    module.init_params(initializer=mx.init.Uniform(0.01), arg_params=arg_params, aux_params=aux_params,
                       allow_missing=False)
    module.init_optimizer(kvstore='local', optimizer='sgd', optimizer_params=optimizer_params)
    metric = metrics(with_landmark)
    speedometer = Speedometer(batch_size, frequent, logger=logger)
    check = ModuleCheck(module)
    for epoch in range(begin_epoch, end_epoch):
        tic = time.time()
        metric.reset()
        for nbatch, batch in enumerate(data):
            found = check.step(batch, metric)
            if found:
                last = ('last checkpoint: %s' % params_path(prefix, epoch) if epoch > 0
                        else 'no checkpoint was written')
                raise NonFiniteError('%s diverged in epoch %d, batch %d: NaN or infinity in %s; nothing after it was '
                                     'saved (%s)' % (net, epoch, nbatch, describe(found), last), found)
            summary = name_values(metric)  # before the speedometer's reset, as fit logs it
            speedometer(mx.model.BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=metric, locals=None))
        for name, value in summary:
            logger.info('Epoch[%d] Train-%s=%s', epoch, name, format_value(value))
        logger.info('Epoch[%d] Time cost=%.3f', epoch, time.time() - tic)
        arg, aux = module.get_params()
        module.set_params(arg, aux)
        save_checkpoint(prefix, epoch + 1, arg, aux)
        data.reset()
    return params_path(prefix, end_epoch)


def parse_args(argv=None):
    """Arguments, checked (argparse errors, status 2) before any work; ``gpus`` becomes the
    device list: the GPUs asked for or, by default, GPU 0 if MXNet sees one, else [] (the CPU)."""
    parser = argparse.ArgumentParser(prog='python -m mtcnn.train', description='Train P-Net, R-Net or O-Net',
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--net', required=True, choices=sorted(INPUT_SIZE))
    parser.add_argument('--samples', required=True, help='merged sample list (train_<size>.txt)')
    parser.add_argument('--prefix', required=True, help='checkpoint prefix, e.g. model/pnet')
    parser.add_argument('--begin-epoch', type=int_at_least(0), default=0, help='resume from this checkpoint')
    parser.add_argument('--end-epoch', type=int_at_least(1), default=16)
    parser.add_argument('--lr', type=positive_float, default=0.01)
    parser.add_argument('--lr-epochs', type=increasing_epochs, default='8,14',
                        help='epochs where lr is divided by 10')
    parser.add_argument('--batch-size', type=int_at_least(1), default=128)
    parser.add_argument('--wd', type=non_negative_float, default=1e-5)
    parser.add_argument('--frequent', type=int_at_least(1), default=50, help='log every N batches')
    parser.add_argument('--with-landmark', action='store_true', help='train the landmark branch too')
    parser.add_argument('--no-mirror', action='store_true', help='do not mirror samples at random')
    parser.add_argument('--gpus', type=int_list, default=None,
                        help='comma-separated GPU ids, empty for the CPU (default: GPU 0 if MXNet sees one, '
                             'else the CPU)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.end_epoch <= args.begin_epoch:
        parser.error('--end-epoch (%d) must be greater than --begin-epoch (%d)' % (args.end_epoch, args.begin_epoch))
    if not os.path.isfile(args.samples):
        parser.error('--samples: no such file: %s' % args.samples)
    if not os.path.basename(args.prefix):
        parser.error('--prefix %r names a folder; give a file-name prefix in it, e.g. %s'
                     % (args.prefix, os.path.join(args.prefix, args.net)))
    check_writable_dir(parser, os.path.dirname(args.prefix), '--prefix')
    resume = params_path(args.prefix, args.begin_epoch)
    if args.begin_epoch > 0 and not os.path.isfile(resume):
        parser.error('--begin-epoch %d: no checkpoint %s to resume from' % (args.begin_epoch, resume))
    try:
        args.gpus = choose_gpus(args.gpus)[:1] if args.gpus is None else choose_gpus(args.gpus)
    except DeviceError as error:
        parser.error(str(error))
    return args


def main(argv=None, load=None):
    """``load``: a ``rcnn.runtime.CpuLoad`` started before MXNet loaded (the command line's), else
    one started now."""
    load = load or runtime.CpuLoad()
    setup_logging()
    args = parse_args(argv)
    ctx = [mx.gpu(i) for i in args.gpus] or [mx.cpu()]
    if not args.gpus:
        runtime.configure_cpu_training(load)
    try:
        samples = read_sample_list(args.samples)
        labels, counts = np.unique(samples.labels, return_counts=True)
        logger.info('sample labels %s', dict(zip(labels.tolist(), counts.tolist())))
        path = train_net(args.net, samples, args.prefix, ctx, args.begin_epoch, args.end_epoch, args.lr,
                         args.lr_epochs, args.batch_size, args.frequent, args.with_landmark,
                         not args.no_mirror, args.wd, args.seed)
    except (ValueError, NonFiniteError) as error:  # a bad sample list or checkpoint (named), divergence
        raise SystemExit('mtcnn.train: error: %s' % error) from None
    print('trained %s -> %s' % (args.net, path))


if __name__ == '__main__':
    main(load=_LOAD)
