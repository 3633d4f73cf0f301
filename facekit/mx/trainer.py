"""The one training loop of RetinaFace and MTCNN: ``Module.fit``'s loop written out, in parts.

As Detectron2's ``SimpleTrainer`` with hooks, :class:`Trainer` runs epochs of checked
steps and leaves the rest to small parts:

- the step (``facekit.mx.finite.ModuleCheck``): forward, backward, update, then every
  loss output, gradient, parameter and auxiliary state checked for NaN and infinity;
  the first one found stops training with :class:`NonFiniteError` naming the batch,
  and nothing after the last finite checkpoint is saved;
- :class:`Checkpointer`: the deploy symbol, the parameters and the optimizer state,
  atomically, without pickle (``facekit.mx.checkpoint``), after every epoch and where a
  run stops inside one;
- resume: a run starts at a ``facekit.prefix.Position`` (epoch and batch); the loader
  restarts there with the same per-sample seeds, the learning rate continues through
  ``facekit.mx.schedule.StepScheduler``'s offset, and the final parameters equal the
  uninterrupted run's, bit for bit with the same OpenMP threads;
- :class:`Interrupt`: SIGINT / SIGTERM finish the batch, save, and end the run with
  status 130 / 143; a second signal aborts at once (the same status);
- hooks (:class:`Hook`), e.g. :class:`MetricLog`: the Speedometer lines and the epoch summary.

What differs between the detectors (symbols, loaders, schedules, initialisation) is built
by their commands (``rcnn.commands.train``, ``mtcnn.commands.train``).
"""
import logging
import signal
import time
import warnings

import mxnet as mx

from facekit.command import EXIT_SIGINT, EXIT_SIGTERM, Terminated
from facekit.mx.checkpoint import params_digest, save_checkpoint
from facekit.mx.finite import ModuleCheck, NonFiniteError, describe
from facekit.mx.metric import Speedometer, format_value, name_values
from facekit.prefix import Position, params_path

__all__ = ['bind_module', 'Checkpointer', 'Interrupt', 'Hook', 'MetricLog', 'Trainer']

logger = logging.getLogger(__name__)


def bind_module(symbol, ctx, data_shapes, label_shapes, arg_params, aux_params, optimizer, optimizer_params=None,
                kvstore='local', fixed_params=(), initializer=None, seed=0):
    """A Module bound for training, its parameters set (``initializer``, Xavier by default, seeded
    by ``seed``, for those not given) and its optimizer created (an ``mx.optimizer.Optimizer``, or
    a name with ``optimizer_params``, as ``Module.init_optimizer`` takes them)."""
    mod = mx.mod.Module(symbol, data_names=[name for name, _ in data_shapes],
                        label_names=[name for name, _ in label_shapes], context=ctx,
                        fixed_param_names=list(fixed_params), logger=logger)
    mod.bind(data_shapes=data_shapes, label_shapes=label_shapes, for_training=True)
    mx.random.seed(seed)
    mod.init_params(initializer=initializer or mx.init.Xavier(), arg_params=arg_params, aux_params=aux_params,
                    allow_missing=True)
    with warnings.catch_warnings():
        # The losses are normalised in the symbols; 1 / num_devices is the intended rescale.
        warnings.filterwarnings('ignore', message='Optimizer created manually outside Module')
        mod.init_optimizer(kvstore=kvstore, optimizer=optimizer, optimizer_params=optimizer_params or ())
    return mod


class Checkpointer:
    """Saves a training module's checkpoints under ``prefix`` (``facekit.prefix`` names).

    Args:
        prefix: the checkpoint prefix.
        deploy_symbol: the symbol saved with the parameters (the one the detectors load).
        is_chief: whether this process writes (one worker of a distributed job does).
        save_states: whether the optimizer state is saved (not on a distributed kvstore,
            where it lives on the servers).
        last: the Position of the checkpoint the run started from, if any.
    """

    def __init__(self, prefix, deploy_symbol, is_chief=True, save_states=True, last=None):
        self.prefix = prefix
        self.deploy_symbol = deploy_symbol
        self.is_chief = is_chief
        self.save_states = save_states
        self.last = last

    def describe_last(self):
        if self.last is None:
            return 'this run wrote no checkpoint'
        return 'last checkpoint: %s' % params_path(self.prefix, self.last.epoch, self.last.batch)

    def save(self, module, position):
        """Save ``module`` at ``position``; returns its (arg_params, aux_params) on the CPU."""
        # The engine does not order BatchNorm's update of its running statistics before
        # get_params' copies: without the wait a checkpoint can miss the last batches' update.
        mx.nd.waitall()
        arg, aux = module.get_params()
        if self.is_chief:
            save_checkpoint(self.prefix, position, self.deploy_symbol, arg, aux,
                            module=module if self.save_states else None)
            self.last = position
        # Workers of a dist kvstore share the trained arguments; BatchNorm running
        # statistics (auxiliary states) stay local to each worker, as in MXNet.
        logger.info('parameter digest %s (arguments)', params_digest(arg, {}))
        return arg, aux


class Interrupt:
    """SIGINT / SIGTERM as a flag checked between batches, so that a checkpoint can be saved.

    ``status`` is then the shell's status for that signal: 130 (SIGINT) or 143 (SIGTERM).
    A second signal aborts at once: ``KeyboardInterrupt`` or ``facekit.command.Terminated``.
    """

    def __init__(self):
        self.requested = False
        self.aborted = False
        self.status = 0

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            self.aborted = True
            raise self.abort()
        self.requested = True
        self.status = EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM
        logger.warning('interrupt received: saving a checkpoint after this batch (again to abort)')

    def abort(self):
        """The exception of an aborted run: as the first signal's."""
        return KeyboardInterrupt() if self.status == EXIT_SIGINT else Terminated()

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False


class Hook:
    """Called by :class:`Trainer` around epochs and steps; override what is needed."""

    def before_epoch(self, trainer, epoch):
        pass

    def after_step(self, trainer, epoch, nbatch):
        pass

    def after_epoch(self, trainer, epoch):
        pass


class MetricLog(Hook):
    """``mx.callback.Speedometer``'s lines every ``frequent`` batches (``n/a`` for 0/0), then
    per epoch ``Epoch[E] Train-name=value`` and ``Epoch[E] Time cost=...``, as ``Module.fit``.

    With ``auto_reset`` the metric restarts after each Speedometer line, and the epoch
    summary gives the values up to the last batch before that reset.
    """

    def __init__(self, batch_size, frequent, auto_reset):
        self.speedometer = Speedometer(batch_size, frequent=frequent, auto_reset=auto_reset, logger=logger)
        self._summary = []
        self._tic = 0.0

    def before_epoch(self, trainer, epoch):
        self._tic = time.time()
        self._summary = []

    def after_step(self, trainer, epoch, nbatch):
        self._summary = name_values(trainer.metric)
        self.speedometer(mx.model.BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=trainer.metric, locals=None))

    def after_epoch(self, trainer, epoch):
        for name, value in self._summary:
            logger.info('Epoch[%d] Train-%s=%s', epoch, name, format_value(value))
        logger.info('Epoch[%d] Time cost=%.3f', epoch, time.time() - self._tic)


class Trainer:
    """Train ``module`` on ``data`` from ``begin`` to the end of epoch ``end_epoch - 1``.

    Args:
        module: a bound Module with parameters and optimizer (``bind_module``).
        data: a DataIter that starts at ``begin`` and has ``batches_per_epoch``; ``reset()``
            starts the next epoch (a no-op before the first batch of one is taken).
        metric: updated with every batch.
        checkpointer: a :class:`Checkpointer`.
        begin: the ``facekit.prefix.Position`` training starts at.
        end_epoch: epochs to reach.
        max_iters: stop (and save) after this many batches of this run; None for no limit.
        hooks: :class:`Hook` instances, called in order.
    """

    def __init__(self, module, data, metric, checkpointer, begin, end_epoch, max_iters=None, hooks=()):
        self.module = module
        self.data = data
        self.metric = metric
        self.checkpointer = checkpointer
        self.begin = begin
        self.end_epoch = end_epoch
        self.max_iters = max_iters
        self.hooks = list(hooks)
        self.iteration = 0  # batches of this run

    def _limit_reached(self):
        return self.max_iters is not None and self.iteration >= self.max_iters

    def train(self):
        """Run; returns the exit status: 0 when done (``end_epoch`` or ``max_iters`` reached),
        130 / 143 after the checkpoint SIGINT / SIGTERM asked for.

        Raises:
            NonFiniteError: the step of the message's epoch and batch diverged.
        """
        with Interrupt() as interrupt:
            try:
                return self._train(interrupt)
            except Exception:
                if interrupt.aborted:
                    raise interrupt.abort() from None
                raise

    def _train(self, interrupt):
        check = ModuleCheck(self.module)
        if self._limit_reached():
            return self._stop(self.begin, interrupt)
        for epoch in range(self.begin.epoch, self.end_epoch):
            first = self.begin.batch if epoch == self.begin.epoch else 0
            self.metric.reset()
            self.data.reset()
            for hook in self.hooks:
                hook.before_epoch(self, epoch)
            for nbatch, batch in enumerate(self.data, first):
                found = check.step(batch, self.metric)
                if found:
                    raise NonFiniteError('training diverged in epoch %d, batch %d: NaN or infinity in %s; nothing '
                                         'after it was saved (%s)' % (epoch, nbatch, describe(found),
                                                                      self.checkpointer.describe_last()), found)
                self.iteration += 1
                for hook in self.hooks:
                    hook.after_step(self, epoch, nbatch)
                stop = interrupt.requested or self._limit_reached()
                if stop and nbatch + 1 < self.data.batches_per_epoch:
                    return self._stop(Position(epoch, nbatch + 1), interrupt)
                if stop:
                    break
            for hook in self.hooks:
                hook.after_epoch(self, epoch)
            # As Module.fit: the devices continue from the parameters saved (BatchNorm statistics averaged).
            self.module.set_params(*self.checkpointer.save(self.module, Position(epoch + 1)))
            if interrupt.requested or self._limit_reached():
                return self._stop(Position(epoch + 1), interrupt, saved=True)
        return 0

    def _stop(self, position, interrupt, saved=False):
        """Save ``position`` (unless just saved, or it is the checkpoint resumed from) and say how to go on."""
        if not saved and position != self.checkpointer.last:
            self.checkpointer.save(self.module, position)
        why = 'interrupted' if interrupt.requested else 'stopped by --max_iters'
        if position.epoch >= self.end_epoch:
            logger.info('%s at the end of training', why)
        elif position == Position(0):
            logger.info('%s before the first batch: %s holds the initial parameters', why,
                        params_path(self.checkpointer.prefix, 0))
        elif not position.batch:
            logger.info('%s at the end of epoch %d; resume with %s', why, position.epoch - 1, position.resume_flags())
        else:
            logger.info('%s in epoch %d; resume with %s', why, position.epoch, position.resume_flags())
        return interrupt.status
