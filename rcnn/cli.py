"""What the command lines share: one logging setup, argument types and checks made before any work.

The ``type=`` functions raise ``argparse.ArgumentTypeError``, so argparse reports
``argument --lr: ...`` and exits with status 2 before anything runs.
"""
import argparse
import logging
import math
import os

__all__ = ['LOG_FORMAT', 'setup_logging', 'positive_float', 'probability', 'int_list', 'probability_list',
           'gpu_id', 'check_writable_dir', 'check_existing_dir']

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
