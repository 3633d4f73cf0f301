#!/usr/bin/env python
"""Train RetinaFace: ``python train.py --network mnet --dataset retinaface``.

One device, several (``--gpus 0,1`` or ``--cpus 2``), or several machines through
MXNet's parameter-server kvstore (``--kvstore dist_sync``, see ``tools/launch.py``).
Checkpoints ``PREFIX-symbol.json`` + ``PREFIX-%04d.params`` hold the deploy symbol, so
``RetinaFace(PREFIX, EPOCH)`` loads them; ``--begin_epoch N`` resumes from ``PREFIX-N``.
"""
import argparse
import logging
import os
import signal
import sys
import time
import warnings

import mxnet as mx
import numpy as np

from rcnn.cli import setup_logging
from rcnn.config import DEFAULT_DATASET, DEFAULT_NETWORK, get_config
from rcnn.contract import ANCHOR_PRESETS
from rcnn.core.checkpoint import load_params, params_digest, save_checkpoint, states_path
from rcnn.core.loader import CropLoader
from rcnn.core.metric import get_train_metrics
from rcnn.core.schedule import MultiFactorStepScheduler, lr_schedule
from rcnn.dataset.retinaface import retinaface
from rcnn.symbol import NETWORKS, get_fixed_params, get_symbol_test, get_symbol_train

logger = logging.getLogger('train')

DATASETS = {'retinaface': retinaface}


def parse_args(argv=None):
    """Two passes, as the original: --network/--dataset pick the presets the defaults come from."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument('--network', default=DEFAULT_NETWORK)
    pre.add_argument('--dataset', default=DEFAULT_DATASET)
    known, _ = pre.parse_known_args(argv)
    if known.network not in NETWORKS:
        pre.error('unknown network %r; valid networks: %s' % (known.network, ', '.join(NETWORKS)))
    if known.dataset not in DATASETS:
        pre.error('unknown dataset %r; valid datasets: %s' % (known.dataset, ', '.join(DATASETS)))
    config, default = get_config(known.network, known.dataset)

    parser = argparse.ArgumentParser(description='Train RetinaFace', parents=[pre])
    parser.add_argument('--image_set', default=default.image_set, help='split to train on')
    parser.add_argument('--root_path', default=default.root_path, help='output data folder')
    parser.add_argument('--dataset_path', default=default.dataset_path, help='dataset folder')
    parser.add_argument('--frequent', type=int, default=default.frequent, help='log every N batches')
    parser.add_argument('--kvstore', default=default.kvstore,
                        help='device, local, dist_sync, dist_device_sync or dist_async')
    parser.add_argument('--no_flip', action='store_true', help='do not add horizontally flipped images')
    parser.add_argument('--no_shuffle', action='store_true', help='keep the roidb order')
    parser.add_argument('--pretrained', default=default.pretrained,
                        help='prefix of a model to initialise from (empty: from scratch)')
    parser.add_argument('--pretrained_epoch', type=int, default=default.pretrained_epoch)
    parser.add_argument('--prefix', default=default.prefix, help='checkpoint prefix')
    parser.add_argument('--begin_epoch', type=int, default=0, help='resume from PREFIX-BEGIN_EPOCH')
    parser.add_argument('--end_epoch', type=int, default=default.end_epoch)
    parser.add_argument('--lr', type=float, default=default.lr)
    parser.add_argument('--lr_step', default=default.lr_step, help='epochs where the rate steps down')
    parser.add_argument('--wd', type=float, default=default.wd)
    parser.add_argument('--gpus', default=None,
                        help='GPU ids, e.g. 0,1 (default: every GPU CUDA_VISIBLE_DEVICES makes visible, else CPU)')
    parser.add_argument('--cpus', type=int, default=1, help='number of CPU contexts when no GPU is used')
    parser.add_argument('--batch_images', type=int, default=config.TRAIN.BATCH_IMAGES,
                        help='images per device and batch')
    parser.add_argument('--seed', type=int, default=0, help='seed of the crops, shuffling and initialisation')
    parser.add_argument('--max_iters', type=int, default=None,
                        help='stop after this many batches and save a checkpoint (0: save at once)')
    parser.add_argument('--fix_from_scratch', action='store_true',
                        help='keep the LAYER_FIX convolutions (mnet: conv0, conv1) at their random '
                             'initialisation when training from scratch too')
    parser.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1),
                        help='data-loading processes (0: load in the training process)')
    parser.add_argument('--anchors', default=None, choices=sorted(ANCHOR_PRESETS),
                        help="anchor layout of rcnn.contract (default: the network preset's, net3); "
                             'the checkpoint records it for the detector')
    return parser.parse_args(argv)


def get_context(args):
    if args.gpus is None:
        # As the original: CUDA renumbers the visible devices from 0.
        visible = [g for g in os.environ.get('CUDA_VISIBLE_DEVICES', '').split(',') if g.strip()]
        gpus = list(range(len(visible)))
    else:
        gpus = [int(g) for g in args.gpus.split(',') if g.strip()]
    if gpus:
        return [mx.gpu(g) for g in gpus]
    if args.cpus < 1:
        raise SystemExit('--cpus must be >= 1')
    return [mx.cpu(i) for i in range(args.cpus)]


def load_roidb(args, cfg):
    path = os.path.join(args.dataset_path, args.image_set, 'label.txt')
    if not os.path.isfile(path):
        raise SystemExit(
            'no training labels at %s.\n'
            'Use real WIDER FACE with the RetinaFace annotations (README, "Preparing WIDER FACE"), or make '
            'synthetic data:\n  python -m rcnn.dataset.synthetic --output %s' % (path, args.dataset_path))
    imdb = DATASETS[args.dataset](args.image_set, args.root_path, args.dataset_path, cfg)
    roidb = imdb.gt_roidb()
    if not args.no_flip:
        roidb = imdb.append_flipped_images(roidb)
    logger.info('%d training images (%s, flip %s)', len(roidb), path, not args.no_flip)
    return roidb


def load_pretrained(prefix, epoch, arg_shapes, aux_shapes):
    """Parameters of ``prefix-epoch`` whose name and shape match the training symbol.

    A name that matches with another shape is an error naming the parameter;
    names the checkpoint lacks are initialised fresh (logged).
    """
    arg_params, aux_params = load_params(prefix, epoch)
    loaded = {}
    for params, shapes, kind in ((arg_params, arg_shapes, 'arg'), (aux_params, aux_shapes, 'aux')):
        for name, value in params.items():
            if name not in shapes:
                continue
            if tuple(value.shape) != tuple(shapes[name]):
                raise SystemExit('pretrained parameter %s in %s-%04d.params has shape %s, the network needs %s'
                                 % (name, prefix, epoch, value.shape, shapes[name]))
            loaded[(kind, name)] = value
    fresh = sorted(set(arg_shapes) - {n for k, n in loaded if k == 'arg'}) + \
        sorted(set(aux_shapes) - {n for k, n in loaded if k == 'aux'})
    logger.info('loaded %d parameters from %s-%04d; initialised fresh: %s', len(loaded), prefix, epoch,
                ', '.join(fresh) if fresh else 'none')
    return ({n: v for (k, n), v in loaded.items() if k == 'arg'},
            {n: v for (k, n), v in loaded.items() if k == 'aux'})


def make_optimizer(lr, wd, num_devices, steps=()):
    """SGD, momentum 0.9, gradients rescaled by 1 / num_devices, stepped by ``steps`` (iteration, factor)."""
    return mx.optimizer.SGD(learning_rate=lr, momentum=0.9, wd=wd, rescale_grad=1.0 / num_devices,
                            lr_scheduler=MultiFactorStepScheduler(lr, steps) if steps else None)


def create_module(sym, ctx, data_shapes, label_shapes, arg_params, aux_params, fixed_params, optimizer, kvstore,
                  seed=0):
    """Bind a Module for training and initialise parameters (Xavier where none is given)."""
    mod = mx.mod.Module(sym, data_names=[name for name, _ in data_shapes],
                        label_names=[name for name, _ in label_shapes], context=ctx,
                        fixed_param_names=fixed_params, logger=logger)
    mod.bind(data_shapes=data_shapes, label_shapes=label_shapes, for_training=True)
    mx.random.seed(seed)
    np.random.seed(seed)
    mod.init_params(initializer=mx.init.Xavier(), arg_params=arg_params, aux_params=aux_params,
                    allow_missing=True)
    with warnings.catch_warnings():
        # The losses are normalised in the symbol; 1 / num_devices is the intended rescale.
        warnings.filterwarnings('ignore', message='Optimizer created manually outside Module')
        mod.init_optimizer(kvstore=kvstore, optimizer=optimizer)
    return mod


class _Interrupt:
    """Turn SIGINT/SIGTERM into a flag checked between batches, so a checkpoint can be saved."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning('interrupt received: saving a checkpoint after this batch (again to abort)')

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False


def train(args):
    cfg, _ = get_config(args.network, args.dataset, anchors=args.anchors)
    ctx = get_context(args)
    kv = mx.kv.create(args.kvstore)
    distributed = 'dist' in kv.type
    num_parts, part_index = (kv.num_workers, kv.rank) if distributed else (1, 0)
    batch_size = args.batch_images * len(ctx)
    logger.info('network %s, anchors %s, context %s, kvstore %s (worker %d of %d), batch %d',
                args.network, args.anchors or 'of the preset', ctx, kv.type, part_index, num_parts, batch_size)

    roidb = load_roidb(args, cfg)
    sym = get_symbol_train(args.network, cfg, num_devices=len(ctx))
    with CropLoader(sym, roidb, cfg, batch_size=batch_size, shuffle=not args.no_shuffle, seed=args.seed,
                    num_workers=args.workers, num_parts=num_parts, part_index=part_index,
                    begin_epoch=args.begin_epoch) as loader:
        return _fit(args, cfg, ctx, kv, sym, loader, distributed, is_chief=part_index == 0)


def _fit(args, cfg, ctx, kv, sym, loader, distributed, is_chief):
    data_shapes, label_shapes = loader.provide_data, loader.provide_label
    arg_shapes, _, aux_shapes = sym.infer_shape(**dict(data_shapes + label_shapes))
    arg_shapes = dict(zip(sym.list_arguments(), arg_shapes))
    aux_shapes = dict(zip(sym.list_auxiliary_states(), aux_shapes))
    for name, _ in data_shapes + label_shapes:
        arg_shapes.pop(name)

    arg_params, aux_params = None, None
    if args.begin_epoch > 0:
        arg_params, aux_params = load_params(args.prefix, args.begin_epoch)
        logger.info('resuming from %s-%04d', args.prefix, args.begin_epoch)
    elif args.pretrained:
        arg_params, aux_params = load_pretrained(args.pretrained, args.pretrained_epoch, arg_shapes, aux_shapes)
    # LAYER_FIX belongs to runs on pretrained weights, resumed ones included.
    fixed = get_fixed_params(sym, cfg) if args.pretrained else []
    if args.fix_from_scratch and not args.pretrained:
        # The random stem's gradients are hundreds of times larger relative to its weights than
        # the deeper layers', and short CPU runs learn faster without it moving (README,
        # "Faithfulness notes"). Its BatchNorms keep training: MXNet updates the running
        # statistics in the backward pass, which it skips for a layer with nothing to learn,
        # and statistics left at their initial 0 / 1 ruin the deployed model.
        fixed = [name for name in get_fixed_params(sym, cfg) if not name.endswith(('_gamma', '_beta'))]
    if fixed:
        logger.info('fixed parameters (LAYER_FIX): %s', ', '.join(fixed))

    lr, steps = lr_schedule(args.lr, args.lr_step, args.begin_epoch, loader.batches_per_epoch)
    logger.info('lr %g, steps (iteration, factor) %s', lr, steps)
    mod = create_module(sym, ctx, data_shapes, label_shapes, arg_params, aux_params, fixed,
                        make_optimizer(lr, args.wd, len(ctx), steps), kv, seed=args.seed)
    if args.begin_epoch > 0 and os.path.isfile(states_path(args.prefix, args.begin_epoch)):
        mod.load_optimizer_states(states_path(args.prefix, args.begin_epoch))

    deploy = get_symbol_test(args.network, cfg)

    if distributed:
        logger.info('distributed kvstore: optimizer states live on the servers and are not checkpointed; '
                    'a resumed run restarts the momentum')

    def save(epoch):
        # The engine does not order BatchNorm's update of its running statistics before
        # get_params' copies: without the wait a checkpoint can miss the last batches' update.
        mx.nd.waitall()
        arg, aux = mod.get_params()
        if is_chief:
            save_checkpoint(args.prefix, epoch, deploy, arg, aux, module=None if distributed else mod)
        # Workers of a dist kvstore share the trained arguments; BatchNorm running
        # statistics (auxiliary states) stay local to each worker, as in MXNet.
        logger.info('parameter digest %s (arguments)', params_digest(arg, {}))

    metrics = get_train_metrics(cfg.RPN_FEAT_STRIDE, cfg.FACE_LANDMARK)
    speedometer = mx.callback.Speedometer(loader.batch_size, frequent=args.frequent, auto_reset=False)
    iteration = 0
    with _Interrupt() as interrupt:
        for epoch in range(args.begin_epoch, args.end_epoch):
            if args.max_iters is not None and iteration >= args.max_iters:
                save(epoch + 1)
                return mod
            tic = time.time()
            metrics.reset()
            loader.reset()  # a no-op for the epoch the loader started when it was built
            for nbatch, batch in enumerate(loader):
                mod.forward_backward(batch)
                mod.update()
                mod.update_metric(metrics, batch.label)
                speedometer(mx.model.BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=metrics, locals=None))
                iteration += 1
                if interrupt.requested or (args.max_iters is not None and iteration >= args.max_iters):
                    save(epoch + 1)
                    if interrupt.requested:
                        logger.info('interrupted in epoch %d; resume with --begin_epoch %d', epoch, epoch + 1)
                    return mod
            for name, value in metrics.get_name_value():
                logger.info('Epoch[%d] Train-%s=%f', epoch, name, value)
            logger.info('Epoch[%d] Time cost=%.3f', epoch, time.time() - tic)
            save(epoch + 1)
    return mod


def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    logger.info('called with %s', vars(args))
    train(args)


if __name__ == '__main__':
    sys.exit(main())
