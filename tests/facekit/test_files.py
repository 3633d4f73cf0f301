"""Atomic writes: all or nothing, usual permissions, no temporary files left behind, not even by
a killed writer."""
import os
import signal
import stat
import subprocess
import sys

import pytest

from support import REPO
from facekit import files as fileio
from facekit.files import atomic_open, atomic_path, input_replaced_by


def test_atomic_open_writes_the_file_with_umask_permissions(tmp_path):
    target = tmp_path / 'sub' / 'out.txt'
    with atomic_open(target) as f:
        f.write('hello')
    assert target.read_text() == 'hello'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(target.parent) == ['out.txt']


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / 'out.txt'
    target.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write('partial')
            raise RuntimeError('interrupted')
    assert target.read_text() == 'old'
    assert os.listdir(tmp_path) == ['out.txt']


def test_atomic_path_keeps_the_extension_and_renames(tmp_path):
    target = tmp_path / 'image.png'
    with atomic_path(target) as tmp:
        assert tmp.endswith('.png') and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, 'wb') as f:
            f.write(b'png')
    assert target.read_bytes() == b'png'
    for mode in ('r', 'x', 'a', 'w+'):
        with pytest.raises(ValueError, match='mode'):
            with atomic_open(target, mode):
                pass
    with atomic_open(target) as f:
        f.write('0--Parade/été.jpg\n')
    assert target.read_bytes() == '0--Parade/été.jpg\n'.encode('utf-8')


def test_the_next_save_removes_temporaries_of_a_killed_writer_only(tmp_path):
    target = tmp_path / 'model-0001.params'
    killed = subprocess.run(
        [sys.executable, '-c', 'import os, signal, sys\n'
         'from facekit.files import atomic_path\n'
         'with atomic_path(sys.argv[1]) as tmp:\n'
         '    open(tmp, "w").write("half a checkpoint")\n'
         '    os.kill(os.getpid(), signal.SIGKILL)\n', str(target)], cwd=REPO)
    assert killed.returncode == -signal.SIGKILL
    left = [p for p in os.listdir(tmp_path)]
    assert len(left) == 1 and left[0].startswith('.model-0001.') and left[0].endswith('.tmp.params')
    # A live writer's temporary (this process) and another host's (a shared folder) stay.
    live = tmp_path / ('.model-0001.%s-%d-0123456789ab.tmp.params' % (fileio._host(), os.getpid()))
    other_host = tmp_path / '.model-0001.elsewhere-1-0123456789ab.tmp.params'
    other_target = tmp_path / ('.model-0002.%s' % left[0].split('.', 2)[2])
    for path in (live, other_host, other_target):
        path.write_text('in progress')
    with atomic_path(target) as tmp:
        with open(tmp, 'w') as f:
            f.write('complete')
    assert target.read_text() == 'complete'
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (target, live, other_host, other_target))


def test_an_output_that_is_an_input_is_found_through_links(tmp_path):
    model = tmp_path / 'mnet.25-0000.params'
    model.write_bytes(b'weights')
    other = tmp_path / 'notes.json'
    other.write_text('notes')
    (tmp_path / 'link.params').symlink_to(model)
    os.link(model, tmp_path / 'hard.params')
    inputs = [str(model), str(tmp_path / 'image.jpg')]
    assert input_replaced_by(str(model), inputs) == str(model)
    assert input_replaced_by(str(tmp_path / 'sub' / '..' / 'mnet.25-0000.params'), inputs) == str(model)
    assert input_replaced_by(str(tmp_path / 'link.params'), inputs) == str(model)
    assert input_replaced_by(str(tmp_path / 'hard.params'), inputs) == str(model)
    assert input_replaced_by(str(other), inputs) is None
    assert input_replaced_by(str(tmp_path / 'new.json'), inputs) is None
