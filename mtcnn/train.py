"""Train one net of the cascade on a sample list (see ``mtcnn.samples``).

    python -m mtcnn.train --net pnet --samples data/mtcnn/train_12.txt --prefix model/pnet

Checkpoints are ``<prefix>-symbol.json`` (the test symbol) and
``<prefix>-%04d.params`` after each epoch, written atomically;
``--begin-epoch N`` resumes from ``<prefix>-%04d.params`` of epoch N.
Defaults follow the original MXNet implementation: SGD, momentum 0.9, wd 1e-5,
lr 0.01 divided by 10 at epochs 8 and 14, 16 epochs, batch 128.
"""
import argparse
import logging
import os

import mxnet as mx
import numpy as np

from mtcnn.loader import ImageListIter, read_sample_list
from mtcnn.metric import metrics
from mtcnn.symbol import INPUT_SIZE, get_symbol
from rcnn.cli import setup_logging
from rcnn.core.checkpoint import load_param_file
from rcnn.fileio import atomic_path

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
    """Write ``<prefix>-%04d.params`` atomically."""
    blob = {'arg:%s' % k: v.as_in_context(mx.cpu()) for k, v in arg_params.items()}
    blob.update({'aux:%s' % k: v.as_in_context(mx.cpu()) for k, v in aux_params.items()})
    path = '%s-%04d.params' % (prefix, epoch)
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


def train_net(net, samples, prefix, ctx=(mx.cpu(),), begin_epoch=0, end_epoch=16, base_lr=0.01,
              lr_epochs=(8, 14), batch_size=128, frequent=50, with_landmark=False, mirror=True,
              wd=1e-5, seed=0):
    """Train ``net`` ('pnet', 'rnet', 'onet') on a SampleList; returns the last params path."""
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
        arg_params, aux_params = load_param_file('%s-%04d.params' % (prefix, begin_epoch))
    else:
        arg_params, aux_params = init_params(symbol, shapes), {}

    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with atomic_path('%s-symbol.json' % prefix) as tmp:
        get_symbol(net, 'test', with_landmark).save(tmp)

    lr, scheduler = _lr_schedule(base_lr, lr_epochs, begin_epoch, len(samples) // batch_size)
    logger.info('%s: %d samples, lr %g at epoch %d, epochs %d..%d', net, len(samples), lr, begin_epoch,
                begin_epoch, end_epoch)
    optimizer_params = {'momentum': 0.9, 'wd': wd, 'learning_rate': lr, 'rescale_grad': 1.0}
    if scheduler is not None:
        optimizer_params['lr_scheduler'] = scheduler

    def checkpoint(epoch, sym, arg, aux):
        save_checkpoint(prefix, epoch + 1, arg, aux)

    module = mx.mod.Module(symbol, data_names=['data'], label_names=[d.name for d in data.provide_label],
                           context=list(ctx), logger=logger)
    module.fit(data, eval_metric=metrics(with_landmark), epoch_end_callback=checkpoint,
               batch_end_callback=mx.callback.Speedometer(batch_size, frequent),
               optimizer='sgd', optimizer_params=optimizer_params,
               arg_params=arg_params, aux_params=aux_params,
               begin_epoch=begin_epoch, num_epoch=end_epoch)
    return '%s-%04d.params' % (prefix, end_epoch)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train P-Net, R-Net or O-Net',
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--net', required=True, choices=sorted(INPUT_SIZE))
    parser.add_argument('--samples', required=True, help='merged sample list (train_<size>.txt)')
    parser.add_argument('--prefix', required=True, help='checkpoint prefix, e.g. model/pnet')
    parser.add_argument('--begin-epoch', type=int, default=0, help='resume from this checkpoint')
    parser.add_argument('--end-epoch', type=int, default=16)
    parser.add_argument('--lr', type=float, default=0.01)
    parser.add_argument('--lr-epochs', default='8,14', help='epochs where lr is divided by 10')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--wd', type=float, default=1e-5)
    parser.add_argument('--frequent', type=int, default=50, help='log every N batches')
    parser.add_argument('--with-landmark', action='store_true', help='train the landmark branch too')
    parser.add_argument('--no-mirror', action='store_true', help='do not mirror samples at random')
    parser.add_argument('--gpus', default='', help='comma-separated GPU ids; CPU when empty')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    setup_logging()
    ctx = [mx.gpu(int(i)) for i in args.gpus.split(',')] if args.gpus else [mx.cpu()]
    lr_epochs = [int(e) for e in args.lr_epochs.split(',') if e.strip()]
    samples = read_sample_list(args.samples)
    labels, counts = np.unique(samples.labels, return_counts=True)
    logger.info('sample labels %s', dict(zip(labels.tolist(), counts.tolist())))
    path = train_net(args.net, samples, args.prefix, ctx, args.begin_epoch, args.end_epoch, args.lr,
                     lr_epochs, args.batch_size, args.frequent, args.with_landmark,
                     not args.no_mirror, args.wd, args.seed)
    print('trained %s -> %s' % (args.net, path))


if __name__ == '__main__':
    main()
