"""Atomic writes: all or nothing, usual permissions, no temporary files left behind."""
import os
import stat

import pytest

from rcnn.fileio import atomic_open, atomic_path


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
    with pytest.raises(ValueError, match='mode'):
        with atomic_open(target, 'r'):
            pass
