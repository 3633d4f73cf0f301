"""Atomic file output: write to a temporary file beside the target, then rename.

A reader never sees a half-written checkpoint, result file or label list, and an
interrupted run leaves either the old file or the new one.
"""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_open(path, mode='w', **kwargs):
    """Open a temporary file next to ``path``; on success rename it over ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
    os.close(fd)
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_path(path):
    """Context manager yielding a temporary path; renamed to ``path`` on success.

    For writers that take a file name rather than a file object
    (``mx.nd.save``, ``cv2.imwrite``, ``matplotlib``'s ``savefig``).
    """
    return _AtomicPath(os.fspath(path))


class _AtomicPath:
    def __init__(self, path):
        self.path = path
        root, ext = os.path.splitext(path)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self.tmp = os.path.join(directory, '.%s.%d.tmp%s' % (os.path.basename(root), os.getpid(), ext))

    def __enter__(self):
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.tmp)
        return False
