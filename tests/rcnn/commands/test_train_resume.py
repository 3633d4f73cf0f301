"""train.py (``rcnn.commands.train``) stopped and resumed: interrupts, divergence, bit-exact resume
after and inside an epoch, the rules of a checkpoint prefix (one run, one process, no silent
overwrite), and optimizer states that are never unpickled."""
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

from facekit.prefix import Position, params_path, saved_positions, states_path
from support import REPO, error_line, folder_digests
from train_support import FAST, copy_checkpoints, run_train, train

# Every case trains in a process or a loop of its own: seconds each.
pytestmark = pytest.mark.slow


def start_train(*args):
    env = dict(os.environ, OMP_NUM_THREADS=str(len(os.sched_getaffinity(0))))
    return subprocess.Popen([sys.executable, 'train.py'] + FAST + list(args), cwd=REPO, stderr=subprocess.PIPE,
                            text=True, env=env)


def signal_after_batch(proc, signum, batch=None, twice=False):
    """Send ``signum`` once the log shows a Speedometer line (``batch``: of that batch), with ``twice``
    again as soon as the run says it got the first; returns the log."""
    lines = []
    deadline = time.time() + 300
    for line in proc.stderr:
        lines.append(line)
        if ('Batch [0-%d]' % batch if batch is not None else 'Batch [') in line or time.time() > deadline:
            break
    proc.send_signal(signum)
    if twice:
        for line in proc.stderr:
            lines.append(line)
            if 'interrupt received' in line or time.time() > deadline:
                break
        proc.send_signal(signum)
    _, rest = proc.communicate(timeout=300)
    return ''.join(lines) + rest


@pytest.mark.parametrize('signum, status', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_saves_where_it_stopped_and_is_not_success(signum, status, dataset, tmp_path):
    prefix = str(tmp_path / 'interrupted')
    proc = start_train('--dataset_path', dataset, '--prefix', prefix)
    log = signal_after_batch(proc, signum)
    assert proc.returncode == status, log
    flags = re.search(r'interrupted in epoch 0; resume with --begin_epoch 0 --begin_batch (\d+)', log)
    assert flags, log
    batch = int(flags.group(1))
    assert saved_positions(prefix) == [Position(0, batch)] and os.path.isfile(states_path(prefix, 0, batch))


def test_a_second_interrupt_aborts_at_once_with_130(dataset, tmp_path):
    prefix = str(tmp_path / 'aborted')
    proc = start_train('--dataset_path', dataset, '--prefix', prefix)
    log = signal_after_batch(proc, signal.SIGINT, twice=True)
    assert proc.returncode == 130, log
    assert log.strip().splitlines()[-1] == 'train.py: interrupted (SIGINT)'
    assert 'Traceback' not in log and 'MXNetError' not in log


def test_divergence_stops_with_the_batch_named_and_keeps_the_last_finite_checkpoint(dataset, tmp_path):
    prefix = str(tmp_path / 'diverged')
    first = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '1')
    assert first.returncode == 0, first.stderr
    kept = folder_digests(tmp_path)
    # On this data --lr 100 makes the losses huge but finite for 16 batches; 1e8 overflows at once.
    result = run_train('--dataset_path', dataset, '--prefix', prefix, '--begin_epoch', '0', '--begin_batch', '1',
                       '--max_iters', '4', '--lr', '1e8')
    assert result.returncode == 1, result.stderr
    error = error_line(result.stderr)
    assert re.match(r'train\.py: error: training diverged in epoch 0, batch \d: NaN or infinity in '
                    r'(loss output|gradient of|parameter|auxiliary state) \w+', error), error
    assert error.endswith('nothing after it was saved (last checkpoint: %s)' % params_path(prefix, 0, 1)), error
    assert folder_digests(tmp_path) == kept


def final_checkpoint(prefix, epoch):
    return {suffix: mx.nd.load(params_path(prefix, epoch)[:-len('.params')] + suffix)
            for suffix in ('.params', '.states')}


def assert_equal_checkpoints(a, b):
    for suffix in a:
        assert sorted(a[suffix]) == sorted(b[suffix]) and a[suffix]
        for key in a[suffix]:
            np.testing.assert_array_equal(a[suffix][key].asnumpy(), b[suffix][key].asnumpy(), err_msg=suffix + key)


@pytest.fixture(scope='module')
def uninterrupted(dataset, tmp_path_factory):
    """Two epochs in one run; the learning rate steps at epoch 1."""
    prefix = str(tmp_path_factory.mktemp('whole') / 'whole')
    result = run_train('--dataset_path', dataset, '--no_flip', '--lr_step', '1', '--prefix', prefix, '--end_epoch', '2')
    assert result.returncode == 0, result.stderr
    return final_checkpoint(prefix, 2)


def test_a_run_resumed_after_an_epoch_equals_the_uninterrupted_one(dataset, uninterrupted, tmp_path):
    """One epoch, then a resume with its momentum from PREFIX-0001.states: bit-identical parameters and
    optimizer states."""
    common = ['--dataset_path', dataset, '--no_flip', '--lr_step', '1', '--prefix', str(tmp_path / 'part')]
    first = run_train(*common, '--end_epoch', '1')
    resumed = run_train(*common, '--begin_epoch', '1', '--end_epoch', '2')
    for result in (first, resumed):
        assert result.returncode == 0, result.stderr
    assert re.search(r'optimizer state of \d+ parameters from .*part-0001\.states \(4 updates\)', resumed.stderr)
    assert_equal_checkpoints(final_checkpoint(str(tmp_path / 'part'), 2), uninterrupted)


@pytest.mark.parametrize('stop', ['sigint', 'max_iters'])
def test_a_run_stopped_inside_an_epoch_resumes_with_the_logged_flags_to_the_same_result(
        stop, dataset, uninterrupted, tmp_path):
    """SIGINT after a batch, or --max_iters 3, inside epoch 0: the run saves there and logs the flags;
    the run resumed with them ends with the uninterrupted run's parameters and momentum, bit for bit."""
    common = ['--dataset_path', dataset, '--no_flip', '--lr_step', '1', '--end_epoch', '2']
    prefix = str(tmp_path / 'stopped')
    if stop == 'sigint':
        proc = start_train(*common, '--prefix', prefix)
        log = signal_after_batch(proc, signal.SIGINT, batch=1)
        assert proc.returncode == 130, log
    else:
        result = run_train(*common, '--prefix', prefix, '--max_iters', '3')
        assert result.returncode == 0, result.stderr
        log = result.stderr
    flags = re.search(r'in epoch 0; resume with (--begin_epoch 0 --begin_batch \d)\n', log).group(1).split()
    position = Position(0, int(flags[3]))
    assert 0 < position.batch < 4 and saved_positions(prefix) == [position]
    resumed = run_train(*common, '--prefix', prefix, *flags)
    assert resumed.returncode == 0, resumed.stderr
    assert saved_positions(prefix) == [position, Position(1), Position(2)]
    assert_equal_checkpoints(final_checkpoint(prefix, 2), uninterrupted)


# ---------------------------------------------------------------- one run per prefix

def test_a_new_run_refuses_a_prefix_holding_another_runs_checkpoints(dataset, first_epoch, tmp_path, capsys):
    prefix = copy_checkpoints(first_epoch, tmp_path)
    before = folder_digests(tmp_path)
    for extra in ([], ['--network', 'resnet'], ['--begin_epoch', '0', '--begin_batch', '0']):
        assert train(['--dataset_path', dataset, '--prefix', prefix, '--max_iters', '1'] + extra) == 2
        error = error_line(capsys.readouterr().err)
        assert '--prefix %s holds checkpoints this run would mix with: %s' % (prefix, prefix + '-0001.params') \
            in error and '--overwrite' in error
    assert folder_digests(tmp_path) == before
    # --overwrite removes them first: the prefix then holds this run's checkpoints only.
    assert train(['--dataset_path', dataset, '--prefix', prefix, '--max_iters', '1', '--overwrite']) == 0
    assert saved_positions(prefix) == [Position(0, 1)]


def test_a_resumed_run_refuses_checkpoints_after_its_start_unless_overwrite(dataset, tmp_path, capsys):
    prefix = str(tmp_path / 'm')
    assert train(['--dataset_path', dataset, '--prefix', prefix, '--end_epoch', '2']) == 0
    before = folder_digests(tmp_path)
    assert train(['--dataset_path', dataset, '--prefix', prefix, '--begin_epoch', '1', '--end_epoch', '2']) == 2
    assert 'mix with: %s' % params_path(prefix, 2) in error_line(capsys.readouterr().err)
    assert folder_digests(tmp_path) == before
    assert train(['--dataset_path', dataset, '--prefix', prefix, '--begin_epoch', '1', '--max_iters', '1',
                  '--overwrite']) == 0
    assert saved_positions(prefix) == [Position(1), Position(1, 1)]


def test_one_process_at_a_time_writes_a_prefix(dataset, tmp_path):
    prefix = str(tmp_path / 'shared')
    first = start_train('--dataset_path', dataset, '--prefix', prefix)
    try:
        lines = []
        for line in first.stderr:
            lines.append(line)
            if 'Batch [' in line:
                break
        second = run_train('--dataset_path', dataset, '--prefix', prefix, '--max_iters', '1')
        assert second.returncode == 1, second.stderr
        assert error_line(second.stderr).startswith(
            'train.py: error: checkpoint prefix %s is being written by another process (pid %d' % (prefix, first.pid))
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=300)
    assert first.returncode == 130
    [position] = saved_positions(prefix)  # the first run's, where it stopped; the second wrote nothing
    assert position.epoch == 0 and position.batch >= 1


class _Marker:
    """Unpickling this runs ``open(path, 'w')``: what a crafted .states file could do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, 'w')


def test_states_are_never_unpickled_and_must_match_the_params(dataset, first_epoch, tmp_path):
    prefix = copy_checkpoints(first_epoch, tmp_path)
    result = run_train('--dataset_path', dataset, '--prefix', prefix, '--begin_epoch', '1', '--max_iters', '1')
    assert result.returncode == 0, result.stderr
    marker = tmp_path / 'unpickled'
    states = states_path(prefix, 1)
    later = states_path(prefix, 1, 1)
    shutil.copy(later, str(tmp_path / 'later.states'))
    shutil.copy(later + '.json', str(tmp_path / 'later.states.json'))

    # MXNet's own format (Module.save_optimizer_states), here with a payload: not read.
    os.remove(states + '.json')
    with open(states, 'wb') as f:
        pickle.dump({0: _Marker(str(marker))}, f)
    legacy = run_train('--dataset_path', dataset, '--prefix', prefix, '--begin_epoch', '1', '--max_iters', '1',
                       '--overwrite')
    assert legacy.returncode == 0, legacy.stderr
    assert "%s is not read: it is in MXNet's pickled format" % states in legacy.stderr
    assert 'the momentum restarts from zero' in legacy.stderr
    assert not marker.exists()

    # The states of a later checkpoint beside the parameters of epoch 1: a mismatch, reported before training.
    shutil.copy(str(tmp_path / 'later.states'), states)
    shutil.copy(str(tmp_path / 'later.states.json'), states + '.json')
    mismatch = run_train('--dataset_path', dataset, '--prefix', prefix, '--begin_epoch', '1', '--max_iters', '1',
                         '--overwrite')
    assert mismatch.returncode == 1
    assert error_line(mismatch.stderr).startswith('train.py: error: %s does not hold the parameters %s.json records'
                                                  % (params_path(prefix, 1), states))
    assert 'Batch [' not in mismatch.stderr
