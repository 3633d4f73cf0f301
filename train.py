#!/usr/bin/env python
"""Train RetinaFace: ``python train.py --network mnet --dataset retinaface``.

One device, several (``--gpus 0,1`` or ``--cpus 2``), or several machines through
MXNet's parameter-server kvstore (``--kvstore dist_sync``, see ``tools/launch.py``).
Checkpoints ``PREFIX-symbol.json`` + ``PREFIX-%04d.params`` hold the deploy symbol, so
``RetinaFace(PREFIX, EPOCH)`` loads them; ``--begin_epoch N`` resumes from ``PREFIX-N``
(parameters and, from ``PREFIX-N.states``, the momentum; see ``rcnn.core.checkpoint``).

Exit status: 0 when the run is done (``--end_epoch`` or ``--max_iters`` reached);
130 / 143 after the checkpoint that SIGINT / SIGTERM asked for (resume with the
``--begin_epoch`` it logs); 1 when training diverged (NaN or infinity in a loss,
gradient or parameter: nothing is saved after the last finite checkpoint) or a
model file is unusable; 2 for a bad argument, reported before any work.
"""
import argparse
import logging
import os
import signal
import sys
import time
import warnings

if __name__ == '__main__':
    # OpenMP reads its settings when MXNet loads it: set them, and start measuring the CPUs
    # other processes take, before the imports below (rcnn.runtime).
    from rcnn.runtime import prepare_openmp
    _LOAD = prepare_openmp()

import mxnet as mx  # noqa: E402

from rcnn import runtime  # noqa: E402
from rcnn.cli import (  # noqa: E402
    check_writable_dir, increasing_epochs, int_at_least, int_list, non_negative_float, positive_float, setup_logging)
from rcnn.config import DEFAULT_DATASET, DEFAULT_NETWORK, get_config  # noqa: E402
from rcnn.contract import ANCHOR_PRESETS  # noqa: E402
from rcnn.core.checkpoint import (  # noqa: E402
    CheckpointError, load_optimizer_states, load_params, params_digest, save_checkpoint)
from rcnn.core.finite import ModuleCheck, NonFiniteError, describe  # noqa: E402
from rcnn.core.loader import CropLoader  # noqa: E402
from rcnn.core.metric import Speedometer, format_value, get_train_metrics, name_values  # noqa: E402
from rcnn.core.schedule import MultiFactorStepScheduler, lr_schedule  # noqa: E402
from rcnn.dataset.label_file import split_paths  # noqa: E402
from rcnn.dataset.retinaface import retinaface  # noqa: E402
from rcnn.fileio import params_path, states_path  # noqa: E402
from rcnn.runtime import DeviceError, choose_gpus  # noqa: E402
from rcnn.symbol import NETWORKS, get_fixed_params, get_symbol_test, get_symbol_train  # noqa: E402

logger = logging.getLogger('train')

DATASETS = {'retinaface': retinaface}
KVSTORES = ('local', 'device', 'nccl', 'dist_sync', 'dist_device_sync', 'dist_async')
# What a parameter-server job needs (docs/training.md, "Several machines"; tools/launch.py sets them).
DIST_ENVIRONMENT = ('DMLC_PS_ROOT_URI', 'DMLC_PS_ROOT_PORT', 'DMLC_NUM_SERVER', 'DMLC_NUM_WORKER')


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
    parser.add_argument('--root_path', default='data',
                        help="the original's roidb cache folder; accepted for its command lines, nothing is written")
    parser.add_argument('--dataset_path', default=default.dataset_path, help='dataset folder')
    parser.add_argument('--frequent', type=int_at_least(1), default=default.frequent, help='log every N batches')
    parser.add_argument('--kvstore', default=default.kvstore, choices=KVSTORES,
                        help='how gradients are aggregated: in this process (local, device, nccl) or over a '
                             'parameter-server job (dist_*; see tools/launch.py)')
    parser.add_argument('--no_flip', action='store_true', help='do not add horizontally flipped images')
    parser.add_argument('--no_shuffle', action='store_true', help='keep the roidb order')
    parser.add_argument('--pretrained', default=default.pretrained,
                        help='prefix of a model to initialise from (empty: from scratch)')
    parser.add_argument('--pretrained_epoch', type=int_at_least(0), default=default.pretrained_epoch)
    parser.add_argument('--prefix', default=default.prefix, help='checkpoint prefix')
    parser.add_argument('--begin_epoch', type=int_at_least(0), default=0, help='resume from PREFIX-BEGIN_EPOCH')
    parser.add_argument('--end_epoch', type=int_at_least(1), default=default.end_epoch)
    parser.add_argument('--lr', type=positive_float, default=default.lr)
    parser.add_argument('--lr_step', type=increasing_epochs, default=default.lr_step,
                        help='increasing epochs where the rate steps down')
    parser.add_argument('--wd', type=non_negative_float, default=default.wd)
    parser.add_argument('--gpus', type=int_list, default=None,
                        help='GPU ids, e.g. 0,1 (default: every GPU MXNet sees, else the CPU)')
    parser.add_argument('--cpus', type=int_at_least(1), default=1, help='number of CPU contexts when no GPU is used')
    parser.add_argument('--batch_images', type=int_at_least(1), default=config.TRAIN.BATCH_IMAGES,
                        help='images per device and batch')
    parser.add_argument('--seed', type=int, default=0, help='seed of the crops, shuffling and initialisation')
    parser.add_argument('--max_iters', type=int_at_least(0), default=None,
                        help='stop after this many batches and save a checkpoint (0: save at once)')
    parser.add_argument('--fix_from_scratch', action='store_true',
                        help='keep the LAYER_FIX convolutions (mnet: conv0, conv1) at their random '
                             'initialisation when training from scratch too')
    parser.add_argument('--workers', type=int_at_least(0), default=min(4, os.cpu_count() or 1),
                        help='data-loading processes (0: load in the training process)')
    parser.add_argument('--anchors', default=None, choices=sorted(ANCHOR_PRESETS),
                        help="anchor layout of rcnn.contract (default: the network preset's, net3); "
                             'the checkpoint records it for the detector')
    args = parser.parse_args(argv)
    _check_args(parser, args)
    return args


def _check_args(parser, args):
    """What parse_args cannot see one argument at a time: exits through parser.error."""
    if args.end_epoch <= args.begin_epoch:
        parser.error('--end_epoch (%d) must be greater than --begin_epoch (%d)' % (args.end_epoch, args.begin_epoch))
    if not os.path.basename(args.prefix):
        parser.error('--prefix %r names a folder; give a file-name prefix in it, e.g. %s'
                     % (args.prefix, os.path.join(args.prefix, args.network)))
    check_writable_dir(parser, os.path.dirname(args.prefix), '--prefix')
    if args.begin_epoch > 0 and not os.path.isfile(params_path(args.prefix, args.begin_epoch)):
        parser.error('--begin_epoch %d: no checkpoint %s to resume from'
                     % (args.begin_epoch, params_path(args.prefix, args.begin_epoch)))
    if args.pretrained and not os.path.isfile(params_path(args.pretrained, args.pretrained_epoch)):
        parser.error('--pretrained %s --pretrained_epoch %d: no file %s'
                     % (args.pretrained, args.pretrained_epoch, params_path(args.pretrained, args.pretrained_epoch)))
    try:
        args.gpus = choose_gpus(args.gpus)
    except DeviceError as error:
        parser.error(str(error))
    if args.kvstore == 'nccl' and not (args.gpus and mx.runtime.Features().is_enabled('NCCL')):
        parser.error('--kvstore nccl needs GPUs and an MXNet build with NCCL; use --kvstore device')
    if args.kvstore.startswith('dist'):
        unset = [name for name in DIST_ENVIRONMENT if name not in os.environ]
        if unset:
            parser.error('--kvstore %s runs as a worker of a parameter-server job, but %s %s not set: start it '
                         'with tools/launch.py, or set the DMLC_* variables as docs/training.md says'
                         % (args.kvstore, ', '.join(unset), 'is' if len(unset) == 1 else 'are'))


def get_context(args):
    """The training contexts: ``args.gpus`` (as chosen by parse_args), else ``args.cpus`` CPUs."""
    if args.gpus:
        return [mx.gpu(g) for g in args.gpus]
    return [mx.cpu(i) for i in range(args.cpus)]


def load_roidb(args, cfg):
    path, _ = split_paths(args.dataset_path, args.image_set)
    if not os.path.isfile(path):
        fresh = args.dataset_path
        if os.path.isdir(fresh) and os.listdir(fresh):  # the generator writes only into a new folder
            fresh = os.path.normpath(fresh) + '-synthetic'
        raise SystemExit(
            'no training labels at %s.\n'
            'Use real WIDER FACE with the RetinaFace annotations (README, "Train on WIDER FACE"), or make '
            'synthetic data in a new folder and train on it:\n  python -m rcnn.dataset.synthetic --output %s\n'
            '  python train.py ... --dataset_path %s' % (path, fresh, fresh))
    imdb = DATASETS[args.dataset](args.image_set, args.dataset_path, cfg)
    roidb = imdb.gt_roidb()
    if not args.no_flip:
        roidb = imdb.append_flipped_images(roidb)
    logger.info('%d training images (%s, flip %s)', len(roidb), path, not args.no_flip)
    return roidb


def _network_params(path, arg_params, aux_params, arg_shapes, aux_shapes):
    """(arg, aux, missing): the parameters of file ``path`` that the network has, shapes checked,
    and the network's parameters and auxiliary states the file lacks (sorted names)."""
    loaded = {'arg': {}, 'aux': {}}
    for params, shapes, kind in ((arg_params, arg_shapes, 'arg'), (aux_params, aux_shapes, 'aux')):
        for name, value in params.items():
            if name not in shapes:
                continue
            if tuple(value.shape) != tuple(shapes[name]):
                raise SystemExit('parameter %s in %s has shape %s, the network needs %s'
                                 % (name, path, value.shape, shapes[name]))
            loaded[kind][name] = value
    missing = sorted(set(arg_shapes) - set(loaded['arg'])) + sorted(set(aux_shapes) - set(loaded['aux']))
    return loaded['arg'], loaded['aux'], missing


def _names(names, limit=20):
    return ', '.join(names[:limit]) + (' and %d more' % (len(names) - limit) if len(names) > limit else '')


def load_pretrained(prefix, epoch, arg_shapes, aux_shapes):
    """Parameters of ``prefix-epoch`` whose name and shape match the training symbol.

    A name that matches with another shape is an error naming the parameter, and so is
    a model that matches nothing; names the checkpoint lacks are initialised fresh (logged).
    """
    path = params_path(prefix, epoch)
    file_args, file_aux = load_params(prefix, epoch)
    arg_params, aux_params, fresh = _network_params(path, file_args, file_aux, arg_shapes, aux_shapes)
    if not arg_params and not aux_params:
        raise SystemExit('--pretrained %s matches none of the network\'s %d parameters and auxiliary states '
                         '(the network has e.g. %s; the file has %s)'
                         % (path, len(arg_shapes) + len(aux_shapes), _names(sorted(arg_shapes), 5),
                            _names(sorted(file_args) + sorted(file_aux), 5) or 'nothing'))
    logger.info('loaded %d parameters from %s-%04d; initialised fresh: %s', len(arg_params) + len(aux_params),
                prefix, epoch, ', '.join(fresh) if fresh else 'none')
    return arg_params, aux_params


def load_resumed(prefix, epoch, arg_shapes, aux_shapes):
    """(arg_params, aux_params, digest) of checkpoint ``prefix-epoch``, which must hold every
    parameter and auxiliary state of the network (an error lists those it lacks);
    ``digest``: :func:`params_digest` of the whole file, as its ``.states`` records it."""
    path = params_path(prefix, epoch)
    file_args, file_aux = load_params(prefix, epoch)
    arg_params, aux_params, missing = _network_params(path, file_args, file_aux, arg_shapes, aux_shapes)
    if missing:
        raise SystemExit('cannot resume from %s: it lacks %d of the network\'s parameters and auxiliary states: %s '
                         '(a checkpoint of another --network or --anchors?)' % (path, len(missing), _names(missing)))
    return arg_params, aux_params, params_digest(file_args, file_aux)


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
    mod.init_params(initializer=mx.init.Xavier(), arg_params=arg_params, aux_params=aux_params,
                    allow_missing=True)
    with warnings.catch_warnings():
        # The losses are normalised in the symbol; 1 / num_devices is the intended rescale.
        warnings.filterwarnings('ignore', message='Optimizer created manually outside Module')
        mod.init_optimizer(kvstore=kvstore, optimizer=optimizer)
    return mod


class _Interrupt:
    """Turn SIGINT/SIGTERM into a flag checked between batches, so a checkpoint can be saved.

    ``status`` is then the shell's status for that signal: 130 (SIGINT) or 143 (SIGTERM).
    """

    def __init__(self):
        self.requested = False
        self.status = 0

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.status = 128 + signum
        logger.warning('interrupt received: saving a checkpoint after this batch (again to abort)')

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False


def train(args, load=None):
    """Run the training ``args`` (from :func:`parse_args`) describe; returns the exit status:
    0 when done, 130 / 143 when interrupted by SIGINT / SIGTERM after its checkpoint.

    On CPU contexts the process runtime is chosen first (``rcnn.runtime.configure_cpu_training``;
    ``load``, a ``rcnn.runtime.CpuLoad``, measures what other processes leave of the CPUs).
    """
    cfg, _ = get_config(args.network, args.dataset, anchors=args.anchors)
    ctx = get_context(args)
    if not args.gpus:
        runtime.configure_cpu_training(load or runtime.CpuLoad(),
                                       single_context=len(ctx) == 1 and 'dist' not in args.kvstore)
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
        arg_params, aux_params, digest = load_resumed(args.prefix, args.begin_epoch, arg_shapes, aux_shapes)
        logger.info('resuming from %s-%04d', args.prefix, args.begin_epoch)
    elif args.pretrained:
        arg_params, aux_params = load_pretrained(args.pretrained, args.pretrained_epoch, arg_shapes, aux_shapes)
    # LAYER_FIX belongs to runs on pretrained weights, resumed ones included.
    fixed = get_fixed_params(sym, cfg) if args.pretrained else []
    if fixed and args.begin_epoch == 0:
        random = [name for name in fixed if name not in arg_params]
        if random:
            raise SystemExit('--pretrained %s lacks LAYER_FIX parameters, which would stay fixed at their random '
                             'initialisation: %s' % (params_path(args.pretrained, args.pretrained_epoch),
                                                     _names(random)))
    if args.fix_from_scratch and not args.pretrained:
        # The random stem's gradients are hundreds of times larger relative to its weights than
        # the deeper layers', and short CPU runs learn faster without it moving
        # (docs/faithfulness.md). Its BatchNorms keep training: MXNet updates the running
        # statistics in the backward pass, which it skips for a layer with nothing to learn,
        # and statistics left at their initial 0 / 1 ruin the deployed model.
        fixed = [name for name in get_fixed_params(sym, cfg) if not name.endswith(('_gamma', '_beta'))]
    if fixed:
        logger.info('fixed parameters (LAYER_FIX): %s', ', '.join(fixed))

    lr, steps = lr_schedule(args.lr, args.lr_step, args.begin_epoch, loader.batches_per_epoch)
    logger.info('lr %g, steps (iteration, factor) %s', lr, steps)
    mod = create_module(sym, ctx, data_shapes, label_shapes, arg_params, aux_params, fixed,
                        make_optimizer(lr, args.wd, len(ctx), steps), kv, seed=args.seed)
    if distributed:
        logger.info('distributed kvstore: optimizer states live on the servers and are not checkpointed; '
                    'a resumed run restarts the momentum')
    elif args.begin_epoch > 0:
        load_optimizer_states(mod, states_path(args.prefix, args.begin_epoch), digest)

    deploy = get_symbol_test(args.network, cfg)
    kept = ['%s-%04d' % (args.prefix, args.begin_epoch)] if args.begin_epoch > 0 else []

    def save(epoch):
        # The engine does not order BatchNorm's update of its running statistics before
        # get_params' copies: without the wait a checkpoint can miss the last batches' update.
        mx.nd.waitall()
        arg, aux = mod.get_params()
        if is_chief:
            save_checkpoint(args.prefix, epoch, deploy, arg, aux, module=None if distributed else mod)
            kept[:] = ['%s-%04d' % (args.prefix, epoch)]
        # Workers of a dist kvstore share the trained arguments; BatchNorm running
        # statistics (auxiliary states) stay local to each worker, as in MXNet.
        logger.info('parameter digest %s (arguments)', params_digest(arg, {}))

    metrics = get_train_metrics(cfg.RPN_FEAT_STRIDE, cfg.FACE_LANDMARK)
    speedometer = Speedometer(loader.batch_size, frequent=args.frequent, auto_reset=False, logger=logger)
    check = ModuleCheck(mod)
    iteration = 0
    with _Interrupt() as interrupt:
        for epoch in range(args.begin_epoch, args.end_epoch):
            if args.max_iters is not None and iteration >= args.max_iters:
                save(epoch + 1)
                return 0
            tic = time.time()
            metrics.reset()
            loader.reset()  # a no-op for the epoch the loader started when it was built
            for nbatch, batch in enumerate(loader):
                found = check.step(batch, metrics)
                if found:
                    last = 'last checkpoint: %s' % kept[0] if kept else 'this run wrote no checkpoint'
                    raise NonFiniteError('training diverged in epoch %d, batch %d: NaN or infinity in %s; nothing '
                                         'after it was saved (%s)' % (epoch, nbatch, describe(found), last), found)
                speedometer(mx.model.BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=metrics, locals=None))
                iteration += 1
                if interrupt.requested or (args.max_iters is not None and iteration >= args.max_iters):
                    save(epoch + 1)
                    if interrupt.requested:
                        logger.info('interrupted in epoch %d; resume with --begin_epoch %d', epoch, epoch + 1)
                    return interrupt.status
            for name, value in name_values(metrics):
                logger.info('Epoch[%d] Train-%s=%s', epoch, name, format_value(value))
            logger.info('Epoch[%d] Time cost=%.3f', epoch, time.time() - tic)
            save(epoch + 1)
    return 0


def main(argv=None, load=None):
    """Exit status: see the module docstring. ``load``: a ``rcnn.runtime.CpuLoad`` started
    as early as possible (the command line's, before MXNet loads), else one started now."""
    load = load or runtime.CpuLoad()
    setup_logging()
    args = parse_args(argv)
    logger.info('called with %s', vars(args))
    try:
        return train(args, load)
    except (CheckpointError, NonFiniteError) as error:
        raise SystemExit('train.py: error: %s' % error) from None


if __name__ == '__main__':
    sys.exit(main(load=_LOAD))
