"""What the command lines share: one logging setup, argument types and checks made before any work.

The ``type=`` functions raise ``argparse.ArgumentTypeError``, so argparse reports
``argument --lr: ...`` and exits with status 2 before anything runs; the
``check_*`` functions exit the same way through ``parser.error``. Bad input
found once the work has started (a corrupt model file, an unreadable image)
ends the command with one line ``error: ...`` and status 1 (``exit_error``).
"""
import argparse
import contextlib
import logging
import math
import os
import sys

from rcnn.fileio import params_path, symbol_path

__all__ = ['LOG_FORMAT', 'setup_logging', 'positive_float', 'non_negative_float', 'probability', 'int_list',
           'increasing_epochs', 'probability_list', 'gpu_id', 'int_at_least', 'check_writable_dir',
           'check_existing_dir', 'check_existing_file', 'check_output_file', 'check_checkpoint', 'check_listed_images',
           'choose_device', 'exit_error', 'input_errors', 'model_load_errors']

LOG_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'


def setup_logging(level=logging.INFO):
    """Log to stderr in the command lines' common format (a no-op if logging is already set up)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def _float(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not a number: %r' % text) from None


def positive_float(text):
    """A finite number > 0 (a learning rate, a scale)."""
    value = _float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError('must be a finite number > 0, got %r' % text)
    return value


def non_negative_float(text):
    """A finite number >= 0 (a weight decay)."""
    value = _float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError('must be a finite number >= 0, got %r' % text)
    return value


def probability(text):
    """A number in [0, 1] (a score threshold)."""
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError('must be a number in [0, 1], got %r' % text)
    return value


def int_list(text):
    """Comma-separated integers, e.g. '55,68,80'; '' is the empty list."""
    items = [item.strip() for item in text.split(',') if item.strip()]
    try:
        return [int(item) for item in items]
    except ValueError:
        raise argparse.ArgumentTypeError('expected comma-separated integers, got %r' % text) from None


def increasing_epochs(text):
    """Comma-separated increasing epochs >= 1, e.g. '55,68,80' (learning-rate steps); '' is none."""
    epochs = int_list(text)
    if any(e < 1 for e in epochs) or any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise argparse.ArgumentTypeError('expected increasing epochs >= 1, e.g. 55,68,80; got %r' % text)
    return epochs


def probability_list(count):
    """Type of ``count`` comma-separated numbers in [0, 1], e.g. the three MTCNN thresholds."""
    def parse(text):
        values = [probability(item) for item in text.split(',')]
        if len(values) != count:
            raise argparse.ArgumentTypeError('expected %d comma-separated numbers, got %d in %r'
                                             % (count, len(values), text))
        return values
    return parse


def gpu_id(text):
    """A GPU id >= 0, or -1 for the CPU."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected a GPU id (0, 1, ...) or -1 for the CPU, got %r' % text) from None
    if value < -1:
        raise argparse.ArgumentTypeError('expected a GPU id (0, 1, ...) or -1 for the CPU, got %r' % text)
    return value


def int_at_least(low):
    """Type of an integer >= ``low`` (an epoch, a face size)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError('expected an integer, got %r' % text) from None
        if value < low:
            raise argparse.ArgumentTypeError('must be >= %d, got %r' % (low, text))
        return value
    return parse


def check_writable_dir(parser, path, flag):
    """Exit through ``parser.error`` unless folder ``path`` exists and is writable or can be created."""
    path = os.path.abspath(path or '.')
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        parser.error('%s: %s is not a folder' % (flag, existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        parser.error('%s: cannot write to %s' % (flag, existing))


def check_existing_dir(parser, path, flag):
    """Exit through ``parser.error`` unless ``path`` is an existing folder."""
    if not os.path.isdir(path):
        parser.error('%s: no such folder: %s' % (flag, path))


def check_existing_file(parser, path, flag):
    """Exit through ``parser.error`` unless ``path`` is an existing file."""
    if not os.path.isfile(path):
        parser.error('%s: no such file: %s' % (flag, path))


def check_output_file(parser, path, flag):
    """Exit through ``parser.error`` unless file ``path`` can be written (its folder writable or creatable)."""
    if os.path.isdir(path):
        parser.error('%s: %s is a folder, expected a file name' % (flag, path))
    check_writable_dir(parser, os.path.dirname(os.path.abspath(path)), flag)


def check_checkpoint(parser, prefix, epoch, flag='--prefix'):
    """Exit through ``parser.error`` unless ``prefix-symbol.json`` and ``prefix-%04d.params`` exist."""
    for path in (symbol_path(prefix), params_path(prefix, epoch)):
        if not os.path.isfile(path):
            parser.error('%s: model file %s does not exist' % (flag, path))


def check_listed_images(paths, listed_in):
    """Before the work on them: exit with one line (``exit_error``) naming the first of the image
    ``paths`` that is not a file, and the list ``listed_in`` that names it."""
    for path in paths:
        if not os.path.isfile(path):
            exit_error('image %s (listed in %s) does not exist' % (path, listed_in))


def choose_device(parser, gpu, flag='--gpu', parts=1, load=None):
    """The device of a detection command: a GPU id, or -1 for the CPU.

    ``gpu`` None picks GPU 0 when MXNet has CUDA and sees a GPU, else the CPU
    (one log line); a device the build or machine lacks exits through
    ``parser.error``. On the CPU this sets up the CPU inference runtime
    (``rcnn.runtime.configure_cpu_inference(parts, load)``), so call it before the
    command's first MXNet operation.
    """
    from rcnn import runtime
    try:
        gpu = runtime.choose_gpu(gpu, flag)
    except runtime.DeviceError as err:
        parser.error(str(err))
    if gpu < 0:
        runtime.configure_cpu_inference(parts, load)
    return gpu


def exit_error(message):
    """End a command on bad input found during the run: ``error: message`` on stderr, exit status 1."""
    print('error: %s' % message, file=sys.stderr)
    raise SystemExit(1)


@contextlib.contextmanager
def input_errors():
    """Report an OSError or ValueError raised while reading the user's files as one line
    (``exit_error``); the readers' messages name the file and line."""
    try:
        yield
    except (OSError, ValueError) as err:
        exit_error(err)


@contextlib.contextmanager
def model_load_errors(*files):
    """Report an error while loading the model ``files`` as one line (``exit_error``).

    OSError and ValueError messages name the file already; MXNet's own errors
    (several lines with a C++ stack) are reduced to their last line, after the files.
    """
    import mxnet as mx
    try:
        with input_errors():
            yield
    except mx.base.MXNetError as err:
        exit_error('cannot load %s: %s' % (', '.join(map(str, files)), str(err).strip().splitlines()[-1]))
