"""Atomic file output: write to a temporary file beside the target, then rename.

A reader never sees a half-written checkpoint, result file or label list, and an
interrupted run leaves either the old file or the new one. Files get the usual
permissions (0666 less the umask), like a plain ``open``.
"""
import contextlib
import os
import uuid


def _temporary_name(path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    root, ext = os.path.splitext(os.path.basename(path))
    # Keep the extension: some writers (cv2.imwrite, savefig) choose the format by it.
    return os.path.join(directory, '.%s.%s.tmp%s' % (root, uuid.uuid4().hex[:12], ext))


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    For writers that take a file name (``mx.nd.save``, ``cv2.imwrite``, ``savefig``).
    """
    path = os.fspath(path)
    tmp = _temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path, mode='w', **kwargs):
    """Open a temporary file next to ``path``; on success flush, fsync and rename it over ``path``."""
    if not any(c in mode for c in 'wx'):
        raise ValueError('atomic_open writes a new file; mode must contain "w" or "x", got %r' % mode)
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(fd, mode.replace('x', 'w'), **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
