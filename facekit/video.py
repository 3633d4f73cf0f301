"""Video files for the detectors: frames read with their index and time, an MP4 written frame by
frame, and a JSON Lines file of one record per frame. No MXNet import here.

Reading (:class:`VideoReader`, OpenCV's FFmpeg backend): a file OpenCV cannot open, or whose
first frame it cannot decode (an empty, truncated or non-video file), is a ValueError naming
the file, raised on opening, before any work. The frame count is the container's (None when
it has none); a video that ends early is read up to where it ends, with a warning.

Writing (:class:`VideoWriter`: MP4, ``mp4v``; :class:`JsonLinesWriter`): each writes to a
temporary name beside its output (``facekit.files.temporary_path``) and renames it to the
output when closed, whatever ends the run: the last frame, an error, Ctrl-C
(KeyboardInterrupt) or SIGTERM. An interrupted run therefore leaves a playable MP4 of the
frames written (the writer finalises the container before the rename) and a JSON Lines file
of their records; a writer closed before anything was written leaves no file. A JSON record
is one complete line, flushed as it is written; a process killed outright (SIGKILL) leaves
only the temporary files, which the next run writing the same output removes.
:func:`signals_deferred` holds Ctrl-C while a frame and its record are written, so both
files always hold the same frames.
"""
import collections
import contextlib
import json
import logging
import math
import os
import signal
import threading

import cv2

from facekit.files import temporary_path

__all__ = ['Frame', 'VideoReader', 'VideoWriter', 'JsonLinesWriter', 'signals_deferred', 'quiet_ffmpeg']

logger = logging.getLogger(__name__)

_AV_LOG_FATAL = 8  # FFmpeg's log level for fatal errors only

# One decoded frame: its index from 0, its time in seconds (index / frame rate), the BGR uint8 (H, W, 3) image.
Frame = collections.namedtuple('Frame', ['index', 'time', 'image'])


class VideoReader:
    """The frames of a video file, read once, in order: ``for frame in reader`` yields :data:`Frame`.

    Attributes:
        path: the file.
        fps: frames per second (the container's).
        width, height: frame size in pixels.
        frame_count: frames the container announces, or None when it does not say.

    Raises:
        FileNotFoundError: no such file.
        ValueError: OpenCV cannot open the file, its first frame cannot be decoded, or it has
            no frame rate; the message names the file.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError('video %s does not exist' % self.path)
        self._capture = cv2.VideoCapture(self.path)
        try:
            if not self._capture.isOpened():
                raise ValueError('cannot read video %s (empty, truncated or not a video OpenCV can decode)'
                                 % self.path)
            ok, first = self._capture.read()
            if not ok:
                raise ValueError('video %s has no frame OpenCV can decode' % self.path)
            self.fps = float(self._capture.get(cv2.CAP_PROP_FPS))
            if not math.isfinite(self.fps) or self.fps <= 0:
                raise ValueError('video %s has no frame rate' % self.path)
        except BaseException:
            self._capture.release()
            raise
        self._first = first
        self.height, self.width = first.shape[:2]
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None

    def __iter__(self):
        if self._first is None:
            raise ValueError('video %s: its frames were read already (a VideoReader reads them once)' % self.path)
        image, self._first = self._first, None
        index = 0
        while image is not None:
            yield Frame(index, index / self.fps, image)
            index += 1
            ok, image = self._capture.read()
            if not ok:
                image = None
        if self.frame_count is not None and index < self.frame_count:
            logger.warning('video %s ended after %d of the %d frames it announces (truncated or damaged?)',
                           self.path, index, self.frame_count)

    def close(self):
        self._capture.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _RenamedOnClose:
    """A file written under a temporary name beside ``path`` and renamed to ``path`` when closed, or
    removed if nothing was written. ``count``: what was written (frames, records). A subclass
    writes ``self.temporary`` and closes it in ``_finish()``."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.temporary = temporary_path(self.path)
        self.count = 0

    def close(self):
        """Finish the file and give it its name (or remove it if nothing was written); idempotent."""
        if self.temporary is None:
            return
        try:
            self._finish()
            if self.count:
                os.replace(self.temporary, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.temporary)
            self.temporary = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoWriter(_RenamedOnClose):
    """An MP4 video (``mp4v``) of BGR uint8 frames of one size, at ``fps`` frames per second.

    Args:
        path: the output file (.mp4).
        fps: frames per second.
        size: (width, height) of every frame, pixels.

    Raises:
        OSError: OpenCV cannot write the video.
    """

    def __init__(self, path, fps, size):
        super().__init__(path)
        self.size = tuple(size)
        self._writer = cv2.VideoWriter(self.temporary, cv2.VideoWriter_fourcc(*'mp4v'), float(fps), self.size)
        if not self._writer.isOpened():
            self.close()
            raise OSError('cannot write video %s (OpenCV has no mp4v writer for it)' % self.path)

    def write(self, image):
        """Append a BGR uint8 (H, W, 3) frame of the writer's size (ValueError otherwise)."""
        if image.shape != (self.size[1], self.size[0], 3):
            raise ValueError('video %s takes %dx%d frames, got an image of shape %s'
                             % (self.path, self.size[0], self.size[1], image.shape))
        self._writer.write(image)
        self.count += 1

    def _finish(self):
        self._writer.release()


class JsonLinesWriter(_RenamedOnClose):
    """A JSON Lines file: one JSON object per line (UTF-8), each flushed as it is written."""

    def __init__(self, path):
        super().__init__(path)
        self._file = open(self.temporary, 'x', encoding='utf-8')

    def write(self, record):
        self._file.write(json.dumps(record) + '\n')
        self._file.flush()
        self.count += 1

    def _finish(self):
        with self._file:
            os.fsync(self._file.fileno())


@contextlib.contextmanager
def signals_deferred(signums=(signal.SIGINT, signal.SIGTERM)):
    """Hold the signals ``signums`` until the block ends, then deliver them to their handlers
    (Ctrl-C raises KeyboardInterrupt after the block): for work that must not stop half way.

    Only the main thread receives signals in Python; elsewhere the block runs unchanged. A signal
    the process ignores (``nohup``, a background job) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {}
    for signum in signums:
        handler = signal.getsignal(signum)
        # None: a handler not set from Python, which could not be restored.
        if handler not in (None, signal.SIG_IGN):
            previous[signum] = signal.signal(signum, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in caught:
            signal.raise_signal(signum)


def quiet_ffmpeg():
    """Limit FFmpeg's own messages (OpenCV's video backend) to fatal errors, unless the user set
    ``OPENCV_FFMPEG_LOGLEVEL``: the errors of this module name the file in one line. For a
    command to call before it first opens a video (FFmpeg reads the setting once)."""
    os.environ.setdefault('OPENCV_FFMPEG_LOGLEVEL', str(_AV_LOG_FATAL))
