"""facekit.mx.trainer, the one training loop: a run stopped anywhere and resumed with the flags it
logs ends with the uninterrupted run's parameters, bit for bit; interrupts save and give 130 / 143."""
import os
import signal

import mxnet as mx
import numpy as np
import pytest

from facekit.mx.checkpoint import load_optimizer_states, load_params, params_digest
from facekit.mx.finite import NonFiniteError
from facekit.mx.schedule import StepScheduler
from facekit.mx.trainer import Checkpointer, Hook, MetricLog, Trainer, bind_module
from facekit.prefix import Position, params_path, saved_positions, states_path
from mx_support import BATCH, tiny_symbol

BATCHES = 5  # per epoch


class Data(mx.io.DataIter):
    """Batches drawn from (epoch, batch) alone, starting at a position, as the commands' loaders."""

    def __init__(self, begin=Position(0), poison=None):
        super().__init__(BATCH)
        self.batches_per_epoch = BATCHES
        self.poison = poison
        self.epoch, self.batch, self._first = begin.epoch, begin.batch, begin.batch

    provide_data = [mx.io.DataDesc('data', (BATCH, 5))]
    provide_label = [mx.io.DataDesc('out_label', (BATCH, 2))]

    def reset(self):
        if self.batch != self._first:
            self.epoch, self.batch, self._first = self.epoch + 1, 0, 0

    def next(self):
        if self.batch >= BATCHES:
            raise StopIteration
        rng = np.random.default_rng([self.epoch, self.batch])
        data = rng.normal(size=(BATCH, 5))
        if (self.epoch, self.batch) == self.poison:
            data[0, 0] = np.inf
        self.batch += 1
        return mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(rng.normal(size=(BATCH, 2)))])


def trainer(prefix, begin=Position(0), end_epoch=3, max_iters=None, hooks=(), poison=None):
    """The trainer of the tiny network as the commands build theirs, resumed from ``prefix`` at ``begin``."""
    arg = aux = None
    resumed = begin > Position(0)
    if resumed:
        arg, aux = load_params(prefix, begin.epoch, begin.batch)
    done = begin.epoch * BATCHES + begin.batch
    optimizer = mx.optimizer.SGD(learning_rate=0.1, momentum=0.9, wd=1e-4,
                                 lr_scheduler=StepScheduler(0.1, [(4, 0.5), (8, 0.1)], offset=done))
    module = bind_module(tiny_symbol(), [mx.cpu()], Data.provide_data, Data.provide_label, arg, aux, optimizer,
                         seed=3)
    if resumed:
        load_optimizer_states(module, states_path(prefix, begin.epoch, begin.batch), params_digest(arg, aux))
    checkpointer = Checkpointer(prefix, tiny_symbol(), last=begin if resumed else None)
    return Trainer(module, Data(begin, poison), mx.metric.MSE(), checkpointer, begin, end_epoch, max_iters,
                   [MetricLog(BATCH, 2, auto_reset=False)] + list(hooks))


def final_params(prefix, epoch=3):
    arg, aux = load_params(prefix, epoch)
    return {k: v.asnumpy() for k, v in list(arg.items()) + list(aux.items())}


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp('whole') / 'tiny')
    assert trainer(prefix).train() == 0
    assert saved_positions(prefix) == [Position(1), Position(2), Position(3)]
    return final_params(prefix)


@pytest.mark.parametrize('stops', [[7], [2, 9], [5], [0, 14]])
def test_stopped_runs_resumed_with_the_logged_flags_end_as_the_uninterrupted_one(stops, uninterrupted, tmp_path,
                                                                                 caplog):
    """--max_iters stops after 7 batches (inside epoch 1), after 2 and then 9 more, at an epoch's
    end (5), or before any batch (0): each resume starts where the log says."""
    prefix = str(tmp_path / 'tiny')
    begin = Position(0)
    for max_iters in stops:
        caplog.clear()
        with caplog.at_level('INFO'):
            assert trainer(prefix, begin, max_iters=max_iters).train() == 0
        if max_iters == 0 and begin == Position(0):
            assert 'before the first batch: %s holds the initial parameters' % params_path(prefix, 0) in caplog.text
            assert saved_positions(prefix) == [Position(0)]
            continue
        logged = [r.getMessage() for r in caplog.records if 'resume with' in r.getMessage()]
        flags = logged[-1].split('resume with ')[1].split()
        begin = Position(int(flags[1]), int(flags[3]) if len(flags) > 2 else 0)
        assert os.path.isfile(params_path(prefix, begin.epoch, begin.batch))
    assert logged[-1].startswith('stopped by --max_iters ') and logged[-1].endswith(begin.resume_flags())
    assert trainer(prefix, begin).train() == 0
    resumed = final_params(prefix)
    for name, value in uninterrupted.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)


class SignalAt(Hook):
    """Sends ``signum`` to this process after batch ``nbatch`` of ``epoch`` (twice with ``twice``)."""

    def __init__(self, signum, epoch, nbatch, twice=False):
        self.signum, self.at, self.twice = signum, (epoch, nbatch), twice

    def after_step(self, trainer, epoch, nbatch):
        if (epoch, nbatch) == self.at:
            os.kill(os.getpid(), self.signum)
            if self.twice:
                os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize('signum, status', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_where_the_run_stands_and_gives_its_status(signum, status, uninterrupted, tmp_path, caplog):
    prefix = str(tmp_path / 'tiny')
    with caplog.at_level('INFO'):
        assert trainer(prefix, hooks=[SignalAt(signum, 1, 2)]).train() == status
    assert 'interrupted in epoch 1; resume with --begin_epoch 1 --begin_batch 3' in caplog.text
    assert saved_positions(prefix) == [Position(1), Position(1, 3)]
    assert trainer(prefix, Position(1, 3)).train() == 0
    for name, value in uninterrupted.items():
        np.testing.assert_array_equal(final_params(prefix)[name], value, err_msg=name)


def test_a_second_signal_aborts_at_once(tmp_path):
    prefix = str(tmp_path / 'tiny')
    with pytest.raises(KeyboardInterrupt):
        trainer(prefix, hooks=[SignalAt(signal.SIGINT, 0, 1, twice=True)]).train()
    assert saved_positions(prefix) == []


def test_a_non_finite_step_stops_naming_the_batch_and_saves_nothing_after_it(tmp_path):
    prefix = str(tmp_path / 'tiny')
    with pytest.raises(NonFiniteError, match=r'training diverged in epoch 1, batch 2: NaN or infinity in .*'
                                             r'\(last checkpoint: .*tiny-0001\.params\)'):
        trainer(prefix, poison=(1, 2)).train()
    assert saved_positions(prefix) == [Position(1)]


def test_the_rate_of_a_resumed_run_continues_the_schedule():
    """Update u of training takes every factor whose step u has reached, counted from the start."""
    whole = StepScheduler(0.1, [(4, 0.5), (8, 0.1)])
    resumed = StepScheduler(0.1, [(4, 0.5), (8, 0.1)], offset=6)
    assert [whole(u) for u in (1, 3, 4, 7, 8, 20)] == [0.1, 0.1, 0.05, 0.05, 0.1 * 0.5 * 0.1, 0.1 * 0.5 * 0.1]
    assert [resumed(k) for k in range(1, 10)] == [whole(6 + k) for k in range(1, 10)]
