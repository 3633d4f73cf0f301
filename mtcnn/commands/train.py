"""Train one net of the cascade on a sample list (see ``mtcnn.samples``).

    python -m mtcnn.train --net pnet --samples data/mtcnn/train_12.txt --prefix model/pnet

Defaults follow the original MXNet implementation: SGD, momentum 0.9, wd 1e-5, lr 0.01
divided by 10 after epochs 8 and 14 (``--lr_step``), 16 epochs, batch 128. The loop is
``facekit.mx.trainer``'s, shared with RetinaFace's ``train.py``: every batch's losses,
gradients and parameters are checked for NaN and infinity; checkpoints
``<prefix>-symbol.json`` (the test symbol), ``<prefix>-%04d.params`` and the optimizer
state are written atomically after each epoch and where a run stops inside one;
``--begin_epoch N [--begin_batch B]`` resumes exactly (the momentum too), SIGINT /
SIGTERM save and exit 130 / 143, and a prefix holding another run's checkpoints is
refused unless ``--overwrite``.
"""
import logging

import mxnet as mx
import numpy as np

from facekit import args as cli
from facekit.args import UsageError
from facekit.mx import runtime
from facekit.mx.checkpoint import CheckpointError, load_optimizer_states, load_param_file, params_digest
from facekit.mx.schedule import StepScheduler
from facekit.mx.trainer import Checkpointer, MetricLog, Trainer, bind_module
from facekit.prefix import Position, PrefixLock, params_path, remove_checkpoints, states_path
from mtcnn.defaults import INPUT_SIZE
from mtcnn.loader import ImageListIter, read_sample_list
from mtcnn.metric import metrics
from mtcnn.symbol import get_symbol

__all__ = ['build_parser', 'check_args', 'run', 'init_params', 'lr_steps', 'train_net']

logger = logging.getLogger('mtcnn.train')

PRELU_INIT = 0.25
LR_FACTOR = 0.1


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


def lr_steps(lr_step, iters_per_epoch):
    """The original's schedule as steps (iteration, factor) from the start of training: the rate
    is divided by 10 for the updates after epoch e, for each e of ``lr_step`` (MXNet's
    ``MultiFactorScheduler``: update u > e * iters_per_epoch)."""
    return [(e * iters_per_epoch + 1, LR_FACTOR) for e in lr_step]


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


def train_net(net, samples, prefix, ctx=None, begin=Position(0), end_epoch=16, base_lr=0.01, lr_step=(8, 14),
              batch_size=128, frequent=50, with_landmark=False, mirror=True, wd=1e-5, seed=0, max_iters=None):
    """Train ``net`` ('pnet', 'rnet', 'onet') on a SampleList from ``begin`` (a
    ``facekit.prefix.Position``; resumed from its checkpoint when past the start); returns the
    exit status (0, or 130 / 143 after an interrupt's checkpoint).

    Raises:
        NonFiniteError: NaN or infinity in a loss output, gradient or parameter (the
            message names the epoch and batch); the checkpoints before it are kept.
        CheckpointError: a resume checkpoint that is unreadable or lacks parameters.
    """
    if end_epoch <= begin.epoch:
        raise ValueError('end_epoch (%d) must exceed begin_epoch (%d)' % (end_epoch, begin.epoch))
    ctx = list(ctx or [mx.cpu()])
    data = ImageListIter(samples, INPUT_SIZE[net], batch_size, shuffle=True, mirror=mirror,
                         with_landmark=with_landmark, seed=seed, begin_epoch=begin.epoch, begin_batch=begin.batch)
    # Same function and parameters as the 'leaky' graph, with a much faster CPU backward.
    symbol = get_symbol(net, 'train', with_landmark, prelu='decomposed')
    shapes = dict(data.provide_data + data.provide_label)
    resumed = begin > Position(0)
    if resumed:
        path = params_path(prefix, begin.epoch, begin.batch)
        arg_params, aux_params = _resumed_params(path, symbol, shapes)
        logger.info('resuming from %s (%s)', path, begin)
    else:
        mx.random.seed(seed)
        arg_params, aux_params = init_params(symbol, shapes), {}

    done = begin.epoch * data.batches_per_epoch + begin.batch
    steps = lr_steps(lr_step, data.batches_per_epoch)
    logger.info('%s: %d samples, lr %g, steps (iteration, factor) %s, %d iterations done, epochs %d..%d', net,
                len(samples), base_lr, steps, done, begin.epoch, end_epoch)
    optimizer_params = {'momentum': 0.9, 'wd': wd, 'learning_rate': base_lr, 'rescale_grad': 1.0,
                        'lr_scheduler': StepScheduler(base_lr, steps, offset=done)}
    module = bind_module(symbol, ctx, data.provide_data, data.provide_label, arg_params, aux_params, 'sgd',
                         optimizer_params, initializer=mx.init.Uniform(0.01), seed=seed)
    if resumed:
        load_optimizer_states(module, states_path(prefix, begin.epoch, begin.batch),
                              params_digest(*load_param_file(path)))
    checkpointer = Checkpointer(prefix, get_symbol(net, 'test', with_landmark), last=begin if resumed else None)
    trainer = Trainer(module, data, metrics(with_landmark), checkpointer, begin, end_epoch, max_iters,
                      [MetricLog(batch_size, frequent, auto_reset=True)])
    return trainer.train()


def build_parser():
    parser = cli.ArgumentParser(description='Train P-Net, R-Net or O-Net',
                                formatter_class=cli.DefaultsHelpFormatter)
    parser.add_argument('--net', required=True, choices=sorted(INPUT_SIZE))
    parser.add_argument('--samples', required=True, help='merged sample list (train_<size>.txt)')
    parser.add_argument('--prefix', required=True, help='checkpoint prefix, e.g. model/pnet')
    parser.add_argument('--begin_epoch', type=cli.int_at_least(0), default=0, help='resume from this checkpoint')
    parser.add_argument('--begin_batch', type=cli.int_at_least(0), default=0,
                        help='with --begin_epoch: resume from the checkpoint saved after this batch of the epoch')
    parser.add_argument('--end_epoch', type=cli.int_at_least(1), default=16)
    parser.add_argument('--lr', type=cli.positive_float, default=0.01)
    parser.add_argument('--lr_step', aliases=['--lr-epochs', '--lr_epochs'], type=cli.increasing_epochs,
                        default='8,14', help='epochs after which the rate is divided by 10')
    parser.add_argument('--batch_size', type=cli.int_at_least(1), default=128)
    parser.add_argument('--wd', type=cli.non_negative_float, default=1e-5)
    parser.add_argument('--frequent', type=cli.int_at_least(1), default=50, help='log every N batches')
    parser.add_argument('--with_landmark', action='store_true', help='train the landmark branch too')
    parser.add_argument('--no_mirror', action='store_true', help='do not mirror samples at random')
    parser.add_argument('--gpus', type=cli.int_list, default=None,
                        help='comma-separated GPU ids, empty for the CPU (default: GPU 0 if MXNet sees one, '
                             'else the CPU)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max_iters', type=cli.int_at_least(0), default=None,
                        help='stop after this many batches and save a checkpoint')
    parser.add_argument('--overwrite', action='store_true',
                        help="start over on a prefix holding another run's checkpoints (they are removed first)")
    return parser


def check_args(args):
    """Arguments across flags, before any work (UsageError naming the flag); ``args.gpus`` becomes the
    device list: the GPUs asked for or, by default, GPU 0 if MXNet sees one, else [] (the CPU)."""
    begin = Position(args.begin_epoch, args.begin_batch)
    if args.end_epoch <= args.begin_epoch:
        raise UsageError('--end_epoch (%d) must be greater than --begin_epoch (%d)'
                         % (args.end_epoch, args.begin_epoch))
    cli.check_existing_file(args.samples, '--samples')
    cli.check_training_prefix(args.prefix, begin, args.overwrite, args.net)
    args.gpus = runtime.choose_gpus(args.gpus)[:1] if args.gpus is None else runtime.choose_gpus(args.gpus)


def run(args, context):
    ctx = [mx.gpu(i) for i in args.gpus] or [mx.cpu()]
    if not args.gpus:
        runtime.configure_cpu_training(context.cpu_load)
    samples = read_sample_list(args.samples)
    labels, counts = np.unique(samples.labels, return_counts=True)
    logger.info('sample labels %s', dict(zip(labels.tolist(), counts.tolist())))
    begin = Position(args.begin_epoch, args.begin_batch)
    with PrefixLock(args.prefix):
        if args.overwrite:
            remove_checkpoints(args.prefix, begin)
        return train_net(args.net, samples, args.prefix, ctx, begin, args.end_epoch, args.lr, args.lr_step,
                         args.batch_size, args.frequent, args.with_landmark, not args.no_mirror, args.wd, args.seed,
                         args.max_iters)
