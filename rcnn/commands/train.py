"""Train RetinaFace: ``python train.py --network mnet --dataset retinaface``.

One device, several (``--gpus 0,1`` or ``--cpus 2``), or several machines through
MXNet's parameter-server kvstore (``--kvstore dist_sync``, see ``tools/launch.py``).
Checkpoints ``PREFIX-symbol.json`` + ``PREFIX-%04d.params`` hold the deploy symbol, so
``RetinaFace(PREFIX, EPOCH)`` loads them. ``--begin_epoch N`` resumes from ``PREFIX-N``,
``--begin_epoch N --begin_batch B`` from the checkpoint a run stopped inside epoch N
saved (parameters and, from the ``.states`` file, the momentum; ``facekit.mx.checkpoint``).
The loop is ``facekit.mx.trainer``'s, shared with MTCNN.

A run that does not resume refuses a prefix holding checkpoints, and a resumed run one
holding checkpoints after its start, unless ``--overwrite`` (which removes them first);
one process at a time writes a prefix (``facekit.prefix.PrefixLock``).

Exit status: 0 when the run is done (``--end_epoch`` or ``--max_iters`` reached);
130 / 143 after the checkpoint that SIGINT / SIGTERM asked for (resume with the flags
it logs); 1 when training diverged (NaN or infinity in a loss, gradient or parameter:
nothing is saved after the last finite checkpoint), a file is unusable or the prefix is
in use; 2 for a bad argument, reported before any work.
"""
import argparse
import contextlib
import logging
import os

import mxnet as mx

from facekit import args as cli
from facekit.args import UsageError
from facekit.labels import split_paths
from facekit.mx import runtime
from facekit.mx.checkpoint import CheckpointError, load_optimizer_states, load_params, params_digest
from facekit.mx.schedule import StepScheduler
from facekit.mx.trainer import Checkpointer, MetricLog, Trainer, bind_module
from facekit.prefix import Position, PrefixLock, params_path, remove_checkpoints, \
    states_path
from rcnn.config import DEFAULT_DATASET, DEFAULT_NETWORK, get_config
from rcnn.core.loader import CropLoader
from rcnn.core.metric import get_train_metrics
from rcnn.core.schedule import lr_steps
from rcnn.dataset.retinaface import retinaface
from rcnn.symbol import NETWORKS, anchor_layouts, get_fixed_params, get_symbol_test, get_symbol_train

__all__ = ['build_parser', 'check_args', 'run', 'get_context', 'load_roidb', 'load_pretrained', 'load_resumed',
           'make_optimizer', 'DIST_ENVIRONMENT']

logger = logging.getLogger('train')

DATASETS = {'retinaface': retinaface}
KVSTORES = ('local', 'device', 'nccl', 'dist_sync', 'dist_device_sync', 'dist_async')
# What a parameter-server job needs (docs/training.md, "Several machines"; tools/launch.py sets them).
DIST_ENVIRONMENT = ('DMLC_PS_ROOT_URI', 'DMLC_PS_ROOT_PORT', 'DMLC_NUM_SERVER', 'DMLC_NUM_WORKER')
# The defaults that --network and --dataset choose, as the original's two passes over the arguments.
_PRESET_DEFAULTS = ('image_set', 'dataset_path', 'frequent', 'kvstore', 'pretrained', 'pretrained_epoch', 'prefix',
                    'end_epoch', 'lr', 'lr_step', 'wd')


class _PresetParser(cli.ArgumentParser):
    """--network and --dataset pick the presets the other defaults come from (``rcnn.config``)."""

    def parse_known_args(self, args=None, namespace=None):
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument('--network', default=DEFAULT_NETWORK)
        pre.add_argument('--dataset', default=DEFAULT_DATASET)
        known, _ = pre.parse_known_args(self._canonical(args))
        if known.network not in NETWORKS:
            self.error('unknown network %r; valid networks: %s' % (known.network, ', '.join(NETWORKS)))
        if known.dataset not in DATASETS:
            self.error('unknown dataset %r; valid datasets: %s' % (known.dataset, ', '.join(DATASETS)))
        config, default = get_config(known.network, known.dataset)
        defaults = {name: default[name] for name in _PRESET_DEFAULTS}
        defaults['lr_step'] = cli.increasing_epochs(defaults['lr_step'])
        self.set_defaults(batch_images=config.TRAIN.BATCH_IMAGES, **defaults)
        return super().parse_known_args(args, namespace)


def build_parser():
    parser = _PresetParser(description='Train RetinaFace')
    parser.add_argument('--network', default=DEFAULT_NETWORK, help='network preset: %s' % ', '.join(NETWORKS))
    parser.add_argument('--dataset', default=DEFAULT_DATASET, help='dataset preset: %s' % ', '.join(DATASETS))
    parser.add_argument('--image_set', help='split to train on')
    parser.add_argument('--root_path', default='data',
                        help="the original's roidb cache folder; accepted for its command lines, nothing is written")
    parser.add_argument('--dataset_path', help='dataset folder')
    parser.add_argument('--frequent', type=cli.int_at_least(1), help='log every N batches')
    parser.add_argument('--kvstore', choices=KVSTORES,
                        help='how gradients are aggregated: in this process (local, device, nccl) or over a '
                             'parameter-server job (dist_*; see tools/launch.py)')
    parser.add_argument('--no_flip', action='store_true', help='do not add horizontally flipped images')
    parser.add_argument('--no_shuffle', action='store_true', help='keep the roidb order')
    parser.add_argument('--pretrained', help='prefix of a model to initialise from (empty: from scratch)')
    parser.add_argument('--pretrained_epoch', type=cli.int_at_least(0))
    parser.add_argument('--prefix', help='checkpoint prefix')
    parser.add_argument('--begin_epoch', type=cli.int_at_least(0), default=0,
                        help='resume from PREFIX-BEGIN_EPOCH (0: a new run)')
    parser.add_argument('--begin_batch', type=cli.int_at_least(0), default=0,
                        help='with --begin_epoch: resume from the checkpoint saved after this batch of the epoch '
                             '(as an interrupted run logs it)')
    parser.add_argument('--end_epoch', type=cli.int_at_least(1))
    parser.add_argument('--lr', type=cli.positive_float)
    parser.add_argument('--lr_step', type=cli.increasing_epochs, help='increasing epochs where the rate steps down')
    parser.add_argument('--wd', type=cli.non_negative_float)
    parser.add_argument('--gpus', type=cli.int_list, default=None,
                        help='GPU ids, e.g. 0,1 (default: every GPU MXNet sees, else the CPU)')
    parser.add_argument('--cpus', type=cli.int_at_least(1), default=1,
                        help='number of CPU contexts when no GPU is used')
    parser.add_argument('--batch_images', type=cli.int_at_least(1), help='images per device and batch')
    parser.add_argument('--seed', type=int, default=0, help='seed of the crops, shuffling and initialisation')
    parser.add_argument('--max_iters', type=cli.int_at_least(0), default=None,
                        help='stop after this many batches and save a checkpoint (0: save the initial parameters)')
    parser.add_argument('--fix_from_scratch', action='store_true',
                        help='keep the LAYER_FIX convolutions (mnet: conv0, conv1) at their random '
                             'initialisation when training from scratch too')
    parser.add_argument('--workers', type=cli.int_at_least(0), default=min(4, os.cpu_count() or 1),
                        help='data-loading processes (0: load in the training process)')
    parser.add_argument('--anchors', default=None, choices=anchor_layouts(),
                        help="anchor layout of rcnn.contract with strides the networks have (default: the "
                             "network preset's, net3); the checkpoint records it for the detector")
    parser.add_argument('--overwrite', action='store_true',
                        help="start over on a prefix holding another run's checkpoints (they are removed first)")
    return parser


def _resume_position(args):
    return Position(args.begin_epoch, args.begin_batch)


def check_args(args):
    """What argparse cannot see one argument at a time (UsageError naming the flag)."""
    begin = _resume_position(args)
    if args.end_epoch <= args.begin_epoch:
        raise UsageError('--end_epoch (%d) must be greater than --begin_epoch (%d)'
                         % (args.end_epoch, args.begin_epoch))
    cli.check_training_prefix(args.prefix, begin, args.overwrite, args.network)
    if args.pretrained and not os.path.isfile(params_path(args.pretrained, args.pretrained_epoch)):
        raise UsageError('--pretrained %s --pretrained_epoch %d: no file %s' % (
            args.pretrained, args.pretrained_epoch, params_path(args.pretrained, args.pretrained_epoch)))
    args.gpus = runtime.choose_gpus(args.gpus)
    if args.kvstore == 'nccl' and not (args.gpus and mx.runtime.Features().is_enabled('NCCL')):
        raise UsageError('--kvstore nccl needs GPUs and an MXNet build with NCCL; use --kvstore device')
    if args.kvstore.startswith('dist'):
        unset = [name for name in DIST_ENVIRONMENT if name not in os.environ]
        if unset:
            raise UsageError('--kvstore %s runs as a worker of a parameter-server job, but %s %s not set: start it '
                             'with tools/launch.py, or set the DMLC_* variables as docs/training.md says'
                             % (args.kvstore, ', '.join(unset), 'is' if len(unset) == 1 else 'are'))


def get_context(args):
    """The training contexts: ``args.gpus`` (as chosen by check_args), else ``args.cpus`` CPUs."""
    if args.gpus:
        return [mx.gpu(g) for g in args.gpus]
    return [mx.cpu(i) for i in range(args.cpus)]


def load_roidb(args, cfg):
    """The training roidb of ``--dataset_path`` / ``--image_set`` (with flipped copies unless ``--no_flip``).

    Raises FileNotFoundError saying how to get data when the split has no label file.
    """
    path, _ = split_paths(args.dataset_path, args.image_set)
    if not os.path.isfile(path):
        fresh = args.dataset_path
        if os.path.isdir(fresh) and os.listdir(fresh):  # the generator writes only into a new folder
            fresh = os.path.normpath(fresh) + '-synthetic'
        raise FileNotFoundError(
            'no training labels at %s. Use real WIDER FACE with the RetinaFace annotations (README, "Train on WIDER '
            'FACE"), or make synthetic data in a new folder and train on it: python -m rcnn.dataset.synthetic '
            '--output %s, then train.py ... --dataset_path %s' % (path, fresh, fresh))
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
                raise CheckpointError('parameter %s in %s has shape %s, the network needs %s'
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
        raise CheckpointError('--pretrained %s matches none of the network\'s %d parameters and auxiliary states '
                              '(the network has e.g. %s; the file has %s)'
                              % (path, len(arg_shapes) + len(aux_shapes), _names(sorted(arg_shapes), 5),
                                 _names(sorted(file_args) + sorted(file_aux), 5) or 'nothing'))
    logger.info('loaded %d parameters from %s-%04d; initialised fresh: %s', len(arg_params) + len(aux_params),
                prefix, epoch, ', '.join(fresh) if fresh else 'none')
    return arg_params, aux_params


def load_resumed(prefix, position, arg_shapes, aux_shapes):
    """(arg_params, aux_params, digest) of the checkpoint of ``prefix`` at ``position``, which must
    hold every parameter and auxiliary state of the network (an error lists those it lacks);
    ``digest``: :func:`params_digest` of the whole file, as its ``.states`` records it."""
    path = params_path(prefix, position.epoch, position.batch)
    file_args, file_aux = load_params(prefix, position.epoch, position.batch)
    arg_params, aux_params, missing = _network_params(path, file_args, file_aux, arg_shapes, aux_shapes)
    if missing:
        raise CheckpointError('cannot resume from %s: it lacks %d of the network\'s parameters and auxiliary states: '
                              '%s (a checkpoint of another --network or --anchors?)'
                              % (path, len(missing), _names(missing)))
    return arg_params, aux_params, params_digest(file_args, file_aux)


def make_optimizer(lr, wd, num_devices, scheduler=None):
    """SGD, momentum 0.9, gradients rescaled by 1 / num_devices, the rate from ``scheduler`` if given."""
    return mx.optimizer.SGD(learning_rate=lr, momentum=0.9, wd=wd, rescale_grad=1.0 / num_devices,
                            lr_scheduler=scheduler)


def _fixed_params(args, sym, cfg, arg_params, resumed):
    """The LAYER_FIX parameters kept fixed: with pretrained weights (resumed runs included), or the
    random stem's convolutions with --fix_from_scratch."""
    fixed = get_fixed_params(sym, cfg) if args.pretrained else []
    if fixed and not resumed:
        random = [name for name in fixed if name not in arg_params]
        if random:
            raise CheckpointError('--pretrained %s lacks LAYER_FIX parameters, which would stay fixed at their random '
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
    return fixed


def _fit(args, cfg, ctx, kv, sym, loader, begin, is_chief):
    distributed = 'dist' in kv.type
    data_shapes, label_shapes = loader.provide_data, loader.provide_label
    arg_shapes, _, aux_shapes = sym.infer_shape(**dict(data_shapes + label_shapes))
    arg_shapes = dict(zip(sym.list_arguments(), arg_shapes))
    aux_shapes = dict(zip(sym.list_auxiliary_states(), aux_shapes))
    for name, _ in data_shapes + label_shapes:
        arg_shapes.pop(name)

    resumed = begin > Position(0)
    arg_params, aux_params = None, None
    if resumed:
        arg_params, aux_params, digest = load_resumed(args.prefix, begin, arg_shapes, aux_shapes)
        logger.info('resuming from %s (%s)', params_path(args.prefix, begin.epoch, begin.batch), begin)
    elif args.pretrained:
        arg_params, aux_params = load_pretrained(args.pretrained, args.pretrained_epoch, arg_shapes, aux_shapes)
    fixed = _fixed_params(args, sym, cfg, arg_params, resumed)

    steps = lr_steps(args.lr_step, loader.batches_per_epoch)
    done = begin.epoch * loader.batches_per_epoch + begin.batch
    logger.info('lr %g, steps (iteration, factor) %s, %d iterations done', args.lr, steps, done)
    optimizer = make_optimizer(args.lr, args.wd, len(ctx), StepScheduler(args.lr, steps, offset=done))
    mod = bind_module(sym, ctx, data_shapes, label_shapes, arg_params, aux_params, optimizer, kvstore=kv,
                      fixed_params=fixed, seed=args.seed)
    if distributed:
        logger.info('distributed kvstore: optimizer states live on the servers and are not checkpointed; '
                    'a resumed run restarts the momentum')
    elif resumed:
        load_optimizer_states(mod, states_path(args.prefix, begin.epoch, begin.batch), digest)

    checkpointer = Checkpointer(args.prefix, get_symbol_test(args.network, cfg), is_chief=is_chief,
                                save_states=not distributed, last=begin if resumed else None)
    hooks = [MetricLog(loader.batch_size, args.frequent, auto_reset=False)]
    trainer = Trainer(mod, loader, get_train_metrics(cfg.RPN_FEAT_STRIDE, cfg.FACE_LANDMARK), checkpointer, begin,
                      args.end_epoch, args.max_iters, hooks)
    return trainer.train()


def run(args, context):
    """Train as ``args`` say; returns the exit status (see the module docstring). On CPU contexts
    the process runtime is chosen first (``facekit.mx.runtime.configure_cpu_training``)."""
    logger.info('called with %s', vars(args))
    cfg, _ = get_config(args.network, args.dataset, anchors=args.anchors)
    ctx = get_context(args)
    if not args.gpus:
        runtime.configure_cpu_training(context.cpu_load,
                                       single_context=len(ctx) == 1 and 'dist' not in args.kvstore)
    kv = mx.kv.create(args.kvstore)
    distributed = 'dist' in kv.type
    num_parts, part_index = (kv.num_workers, kv.rank) if distributed else (1, 0)
    batch_size = args.batch_images * len(ctx)
    logger.info('network %s, anchors %s, context %s, kvstore %s (worker %d of %d), batch %d',
                args.network, args.anchors or 'of the preset', ctx, kv.type, part_index, num_parts, batch_size)
    begin = _resume_position(args)
    is_chief = part_index == 0
    # The other workers of a distributed job write nothing.
    with PrefixLock(args.prefix) if is_chief else contextlib.nullcontext():
        if is_chief and args.overwrite:
            remove_checkpoints(args.prefix, begin)
        roidb = load_roidb(args, cfg)
        sym = get_symbol_train(args.network, cfg, num_devices=len(ctx))
        with CropLoader(sym, roidb, cfg, batch_size=batch_size, shuffle=not args.no_shuffle, seed=args.seed,
                        num_workers=args.workers, num_parts=num_parts, part_index=part_index,
                        begin_epoch=begin.epoch, begin_batch=begin.batch) as loader:
            return _fit(args, cfg, ctx, kv, sym, loader, begin, is_chief)
