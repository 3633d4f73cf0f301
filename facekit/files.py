"""Atomic file output (write to a temporary file beside the target, then rename), file digests,
and the check that an output is none of a command's inputs. No MXNet import here.

A reader never sees a half-written checkpoint, result file or label list, and an
interrupted run leaves either the old file or the new one. Files get the usual
permissions (0666 less the umask), like a plain ``open``.

A temporary file is ``.<name>.<host>-<pid>-<random>.tmp<ext>``. A process killed
while writing (SIGKILL, power loss) cannot remove its own; the next write of the
same target removes those of this host whose writer process is gone
(``remove_stale_temporaries`` does it for a set of targets, e.g. a checkpoint prefix's
files). Temporary files of a live writer or of another host (a shared folder) are left alone.
"""
import contextlib
import hashlib
import os
import re
import socket
import uuid

__all__ = ['atomic_path', 'atomic_open', 'temporary_path', 'file_digest', 'remove_stale_temporaries',
           'input_replaced_by']

# A temporary file of target <root><ext>: .<root>.<host>-<pid>-<12 hex digits>.tmp<ext>
_TEMPORARY = re.compile(r'\.(?P<target_root>.+)\.(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]{12}\.tmp(?P<ext>.*)\Z')


def _host():
    # Only letters and digits, so the name splits unambiguously at '-' and '.'.
    return re.sub(r'[^A-Za-z0-9]', '', socket.gethostname())[:32] or 'host'


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(directory, belongs):
    """Remove this host's temporary files in ``directory`` whose writer has exited and whose
    target name (``<root><ext>``) ``belongs(name)`` accepts."""
    host = _host()
    with os.scandir(directory) as entries:
        for entry in entries:
            match = _TEMPORARY.match(entry.name)
            if (match and match.group('host') == host and belongs(match.group('target_root') + match.group('ext'))
                    and not _process_exists(int(match.group('pid')))):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(entry.path)


def temporary_path(path):
    """A fresh temporary file name next to ``path`` (the folder is created), with its extension:
    what ``atomic_path`` writes before the rename, for writers that rename it themselves."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    root, ext = os.path.splitext(os.path.basename(path))
    remove_stale_temporaries(directory, os.path.basename(path).__eq__)
    # Keep the extension: some writers (cv2.imwrite, savefig) choose the format by it.
    return os.path.join(directory, '.%s.%s-%d-%s.tmp%s' % (root, _host(), os.getpid(), uuid.uuid4().hex[:12], ext))


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    For writers that take a file name (``mx.nd.save``, ``cv2.imwrite``, ``savefig``).
    """
    path = os.fspath(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path, mode='w', **kwargs):
    """Open a temporary file next to ``path``; on success flush, fsync and rename it over ``path``.

    ``mode`` is 'w', 'wt' or 'wb'; text is UTF-8 unless ``encoding`` says otherwise.
    """
    if mode not in ('w', 'wt', 'wb'):
        raise ValueError("atomic_open replaces the whole file; mode must be 'w', 'wt' or 'wb', got %r" % mode)
    if 'b' not in mode:
        kwargs.setdefault('encoding', 'utf-8')
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def file_digest(path, algorithm='sha256'):
    """Hex digest of the file ``path`` (``hashlib`` algorithm name), read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def input_replaced_by(output, inputs):
    """The path of ``inputs`` that writing ``output`` would replace, or None.

    Compares resolved paths, so a symbolic link to an input counts, and for an existing
    ``output`` the file itself, so another (hard) link of an input counts too.
    """
    resolved = os.path.realpath(output)
    exists = os.path.exists(output)
    for path in inputs:
        if os.path.realpath(path) == resolved or (exists and os.path.exists(path) and os.path.samefile(path, output)):
            return path
    return None
