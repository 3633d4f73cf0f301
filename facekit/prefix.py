"""A checkpoint prefix: the names of its files, the checkpoints it holds, and the lock of the run
writing it. No MXNet import here (``facekit.mx.checkpoint`` reads and writes the files).

Names, as MXNet's ``save_checkpoint`` and the original's commands use them::

    PREFIX-symbol.json                 the network (a deploy symbol)
    PREFIX-0003.params                 the parameters after 3 whole epochs
    PREFIX-0003.states(.json)          the optimizer state saved with them, and its description
    PREFIX-0002-batch000150.params     a run stopped inside an epoch: 2 epochs and 150 batches
    PREFIX-0002-batch000150.states(.json)

A checkpoint inside an epoch is never named like a finished epoch, so ``--epoch 3`` of the
detectors, test_widerface.py and a user listing the files only ever see whole epochs.
"""
import contextlib
import dataclasses
import errno
import fcntl
import logging
import os
import re

from facekit.files import remove_stale_temporaries

__all__ = ['Position', 'symbol_path', 'params_path', 'states_path', 'states_meta_path', 'checkpoint_files',
           'saved_positions', 'conflicting_checkpoints', 'remove_checkpoints', 'remove_stale', 'PrefixInUse',
           'PrefixLock']

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, order=True)
class Position:
    """Where training stands: ``epoch`` whole epochs and ``batch`` batches of the next one done."""
    epoch: int
    batch: int = 0

    def __str__(self):
        return 'epoch %d' % self.epoch if not self.batch else 'epoch %d, batch %d' % (self.epoch, self.batch)

    def resume_flags(self):
        """The training commands' flags that resume at this position."""
        if self.batch:
            return '--begin_epoch %d --begin_batch %d' % (self.epoch, self.batch)
        return '--begin_epoch %d' % self.epoch


def _stem(prefix, epoch, batch=0):
    return '%s-%04d' % (prefix, epoch) if not batch else '%s-%04d-batch%06d' % (prefix, epoch, batch)


def symbol_path(prefix):
    return '%s-symbol.json' % prefix


def params_path(prefix, epoch, batch=0):
    """``PREFIX-%04d.params``; with ``batch`` > 0 the checkpoint inside epoch ``epoch``."""
    return _stem(prefix, epoch, batch) + '.params'


def states_path(prefix, epoch, batch=0):
    return _stem(prefix, epoch, batch) + '.states'


def states_meta_path(states_file):
    """The JSON description written beside a ``.states`` file."""
    return states_file + '.json'


def _pattern(prefix):
    """Names of the files of ``prefix``'s checkpoints, in its folder (not those of a longer prefix)."""
    name = re.escape(os.path.basename(prefix))
    return re.compile(r'%s-(?:symbol\.json|(?P<epoch>\d{4})(?:-batch(?P<batch>\d{6}))?'
                      r'\.(?P<kind>params|states|states\.json))\Z' % name)


def _folder(prefix):
    return os.path.dirname(os.path.abspath(prefix))


def checkpoint_files(prefix):
    """The files of ``prefix``'s checkpoints that exist, sorted."""
    folder = _folder(prefix)
    if not os.path.isdir(folder):
        return []
    pattern = _pattern(prefix)
    return sorted(os.path.join(os.path.dirname(prefix), name) for name in os.listdir(folder) if pattern.match(name))


def _position(pattern, path):
    """The Position of a checkpoint file of the prefix ``pattern`` matches, None for its symbol file."""
    match = pattern.match(os.path.basename(path))
    if match.group('epoch') is None:
        return None
    return Position(int(match.group('epoch')), int(match.group('batch') or 0))


def saved_positions(prefix):
    """Sorted Positions of the ``.params`` files of ``prefix``."""
    pattern = _pattern(prefix)
    return sorted(_position(pattern, path) for path in checkpoint_files(prefix) if path.endswith('.params'))


def conflicting_checkpoints(prefix, resume=None):
    """The files of ``prefix``'s checkpoints that a training run would mix its own with: every
    one for a new run (``resume`` None), those after ``resume`` (a Position) for a resumed run."""
    files = checkpoint_files(prefix)
    if resume is None:
        return files
    pattern = _pattern(prefix)
    return [path for path in files if (_position(pattern, path) or resume) > resume]


def remove_checkpoints(prefix, resume=None):
    """Remove :func:`conflicting_checkpoints` (a run started with ``--overwrite``), logging each;
    ``resume``: a Position, None (or the start) for a new run."""
    for path in conflicting_checkpoints(prefix, resume if resume and resume > Position(0) else None):
        os.remove(path)
        logger.warning('removed %s (--overwrite)', path)


def remove_stale(prefix):
    """Remove the temporary files that killed saves of ``prefix``'s checkpoints left behind."""
    folder = _folder(prefix)
    if os.path.isdir(folder):
        pattern = _pattern(prefix)
        remove_stale_temporaries(folder, lambda name: pattern.match(name) is not None)


class PrefixInUse(OSError):
    """Another process is writing checkpoints of the same prefix."""


class PrefixLock:
    """One process at a time writes a prefix's checkpoints.

    An exclusive ``flock`` on ``.<name>.lock`` in the prefix's folder, held while the
    context is open. The kernel releases it when the process ends, however it ends, so a
    crashed run leaves a lock file that the next run takes over. The file holds the
    holder's pid, for the message of :class:`PrefixInUse`.
    """

    def __init__(self, prefix):
        self.prefix = prefix
        self.path = os.path.join(_folder(prefix), '.%s.lock' % os.path.basename(prefix))
        self._fd = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.read(fd, 32).decode('ascii', 'replace').strip() or 'unknown'
            os.close(fd)
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise PrefixInUse('checkpoint prefix %s is being written by another process (pid %s, lock %s)'
                                  % (self.prefix, holder, self.path)) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, b'%d\n' % os.getpid())
        self._fd = fd
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        return False
