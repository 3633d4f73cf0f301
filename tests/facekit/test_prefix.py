"""facekit.prefix: checkpoint names (a checkpoint inside an epoch never looks like a whole epoch),
what a prefix holds, what a new or resumed run would mix with, and the lock of the run writing it."""
import os
import signal
import subprocess
import sys
import time

import pytest

from facekit.prefix import (Position, PrefixInUse, PrefixLock, checkpoint_files, conflicting_checkpoints,
                            params_path, remove_checkpoints, saved_positions, states_path, symbol_path)
from support import REPO


def touch(*paths):
    for path in paths:
        with open(path, 'w') as f:
            f.write('x')


def test_names_of_whole_epochs_and_of_a_batch_inside_one():
    assert params_path('m/mnet', 3) == 'm/mnet-0003.params'
    assert states_path('m/mnet', 3) == 'm/mnet-0003.states'
    assert params_path('m/mnet', 2, 150) == 'm/mnet-0002-batch000150.params'
    assert symbol_path('m/mnet') == 'm/mnet-symbol.json'
    assert str(Position(2, 150)) == 'epoch 2, batch 150' and str(Position(3)) == 'epoch 3'
    assert Position(2, 150).resume_flags() == '--begin_epoch 2 --begin_batch 150'
    assert Position(3).resume_flags() == '--begin_epoch 3'
    assert Position(2, 150) < Position(3) < Position(3, 1)


def test_a_prefix_holds_its_own_files_only(tmp_path):
    prefix = str(tmp_path / 'mnet')
    own = [symbol_path(prefix), params_path(prefix, 1), states_path(prefix, 1), states_path(prefix, 1) + '.json',
           params_path(prefix, 1, 7)]
    others = [str(tmp_path / 'mnet-v2-0001.params'), str(tmp_path / 'mnet-0001.params.txt'),
              str(tmp_path / 'xmnet-0001.params'), str(tmp_path / 'mnet-01.params')]
    touch(*own + others)
    assert checkpoint_files(prefix) == sorted(own)
    assert saved_positions(prefix) == [Position(1), Position(1, 7)]
    assert checkpoint_files(str(tmp_path / 'none' / 'mnet')) == []


def test_a_new_run_mixes_with_everything_a_resumed_one_with_what_follows_it(tmp_path):
    prefix = str(tmp_path / 'mnet')
    touch(symbol_path(prefix), params_path(prefix, 1), states_path(prefix, 1), params_path(prefix, 1, 3),
          params_path(prefix, 2), states_path(prefix, 2) + '.json')
    assert conflicting_checkpoints(prefix) == checkpoint_files(prefix)
    assert conflicting_checkpoints(prefix, Position(1)) == sorted(
        [params_path(prefix, 1, 3), params_path(prefix, 2), states_path(prefix, 2) + '.json'])
    assert conflicting_checkpoints(prefix, Position(2)) == []
    remove_checkpoints(prefix, Position(1))
    assert checkpoint_files(prefix) == sorted([symbol_path(prefix), params_path(prefix, 1), states_path(prefix, 1)])
    remove_checkpoints(prefix, Position(0))
    assert os.listdir(tmp_path) == []


HOLD = """
import sys, time
from facekit.prefix import PrefixLock
with PrefixLock(sys.argv[1]):
    print('locked', flush=True)
    time.sleep(60)
"""


def test_one_process_at_a_time_and_a_killed_holder_releases_the_lock(tmp_path):
    prefix = str(tmp_path / 'model' / 'mnet')
    holder = subprocess.Popen([sys.executable, '-c', HOLD, prefix], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        message = r'%s is being written by another process \(pid %d' % (prefix, holder.pid)
        with pytest.raises(PrefixInUse, match=message):
            with PrefixLock(prefix):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.time() + 10
    while True:  # the kernel releases the lock of a dead process
        try:
            with PrefixLock(prefix) as lock:
                assert open(lock.path).read().strip() == str(os.getpid())
            break
        except PrefixInUse:
            assert time.time() < deadline
            time.sleep(0.1)
    with PrefixLock(prefix):  # released on exit, taken again by the same process
        pass
