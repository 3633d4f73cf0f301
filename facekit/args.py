"""Command-line arguments: the parser, argument types, and the checks made before any work.

The ``type=`` functions raise ``argparse.ArgumentTypeError``, so argparse reports
``argument --lr: ...`` and exits with status 2 before anything runs. The ``check_*``
functions raise :class:`UsageError` naming the flag; ``facekit.command.main`` reports it
the same way (status 2). No MXNet import here.

:class:`ArgumentParser` keeps one spelling per flag across the commands, the original's
(``--begin_epoch``, ``--prefix``, ``--output``): words joined by ``_``. The same flag with
``-`` (``--begin-epoch``) and older names (``add_argument(..., aliases=['--out'])``) stay
accepted as hidden aliases, which ``--help`` does not show.
"""
import argparse
import math
import os
import sys

from facekit.files import input_replaced_by
from facekit.prefix import Position, conflicting_checkpoints, params_path, symbol_path

__all__ = ['UsageError', 'ArgumentParser', 'positive_float', 'non_negative_float', 'probability', 'int_list',
           'increasing_epochs', 'probability_list', 'gpu_id', 'int_at_least', 'check_writable_dir',
           'check_existing_dir', 'check_existing_file', 'check_output_file', 'check_checkpoint',
           'check_training_prefix']


class UsageError(Exception):
    """A bad argument found before any work: the message names the flag (``--prefix: ...``)."""


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` names each option's default, unless its help already says it or there is none."""

    def _get_help_string(self, action):
        if action.default is None or '(default' in (action.help or ''):
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose options have hidden alias spellings.

    ``add_argument('--output', aliases=['--out'], ...)``: the alias, and for a flag with
    ``_`` the same flag with ``-``, is accepted wherever the flag is (``--out x``,
    ``--out=x``) and is not listed by ``--help``. Abbreviations are off, so an alias never
    shadows another flag.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('allow_abbrev', False)
        super().__init__(*args, **kwargs)
        self._aliases = {}

    def add_argument(self, *names, aliases=(), **kwargs):
        action = super().add_argument(*names, **kwargs)
        hyphenated = [name.replace('_', '-') for name in action.option_strings if name.startswith('--') and '_' in name]
        for alias in list(aliases) + hyphenated:
            if alias in self._aliases or alias in self._option_string_actions:
                raise ValueError('alias %s is already a flag' % alias)
            self._aliases[alias] = action.option_strings[0]
        return action

    def parse_known_args(self, args=None, namespace=None):
        return super().parse_known_args(self._canonical(args), namespace)

    def _canonical(self, args):
        """``args`` (default ``sys.argv[1:]``) with every alias replaced by its flag."""
        if args is None:
            args = sys.argv[1:]
        canonical = []
        for position, arg in enumerate(args):
            if arg == '--':
                return canonical + list(args[position:])
            name, equals, value = arg.partition('=')
            if name in self._aliases:
                arg = self._aliases[name] + equals + value
            canonical.append(arg)
        return canonical


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


def check_writable_dir(path, flag):
    """UsageError unless folder ``path`` exists and is writable or can be created."""
    path = os.path.abspath(path or '.')
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError('%s: %s is not a folder' % (flag, existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError('%s: cannot write to %s' % (flag, existing))


def check_existing_dir(path, flag):
    """UsageError unless ``path`` is an existing folder."""
    if not os.path.isdir(path):
        raise UsageError('%s: no such folder: %s' % (flag, path))


def check_existing_file(path, flag):
    """UsageError unless ``path`` is an existing file."""
    if not os.path.isfile(path):
        raise UsageError('%s: no such file: %s' % (flag, path))


def check_output_file(path, flag, inputs=(), overwrite=None):
    """UsageError unless file ``path`` can be written: not a folder, its folder writable or
    creatable, not one of the command's ``inputs`` (the same file by any path or link,
    whatever the flags), and, unless ``overwrite`` is None (the command replaces its own
    outputs) or True, not an existing file."""
    if os.path.isdir(path):
        raise UsageError('%s: %s is a folder, expected a file name' % (flag, path))
    check_writable_dir(os.path.dirname(os.path.abspath(path)), flag)
    replaced = input_replaced_by(path, inputs)
    if replaced is not None:
        raise UsageError('%s %s would replace the input %s, which this command reads' % (flag, path, replaced))
    if overwrite is False and os.path.lexists(path):
        raise UsageError('%s: %s exists (pass --overwrite to replace it)' % (flag, path))


def check_checkpoint(prefix, epoch, flag='--prefix'):
    """UsageError unless ``prefix-symbol.json`` and ``prefix-%04d.params`` exist."""
    for path in (symbol_path(prefix), params_path(prefix, epoch)):
        if not os.path.isfile(path):
            raise UsageError('%s: model file %s does not exist' % (flag, path))


def check_training_prefix(prefix, begin, overwrite, example='model'):
    """The checks of a training run's ``--prefix`` before any work (UsageError naming the flag): a
    file-name prefix in a writable folder; a run resumed at Position ``begin`` finds its checkpoint;
    a new run on a prefix holding checkpoints, or a resumed one on a prefix holding checkpoints
    after ``begin``, is refused unless ``overwrite`` (the run then removes them first,
    ``facekit.prefix.remove_checkpoints``). ``example`` is a file name the message suggests."""
    if not os.path.basename(prefix):
        raise UsageError('--prefix %r names a folder; give a file-name prefix in it, e.g. %s'
                         % (prefix, os.path.join(prefix, example)))
    check_writable_dir(os.path.dirname(prefix), '--prefix')
    resumed = begin > Position(0)
    if resumed and not os.path.isfile(params_path(prefix, begin.epoch, begin.batch)):
        raise UsageError('--begin_epoch %d%s: no checkpoint %s to resume from'
                         % (begin.epoch, ' --begin_batch %d' % begin.batch if begin.batch else '',
                            params_path(prefix, begin.epoch, begin.batch)))
    conflicts = conflicting_checkpoints(prefix, begin if resumed else None)
    if conflicts and not overwrite:
        shown = ', '.join(conflicts[:4]) + (' and %d more' % (len(conflicts) - 4) if len(conflicts) > 4 else '')
        raise UsageError('--prefix %s holds checkpoints this run would mix with: %s; resume from the last one, choose '
                         'another --prefix, or pass --overwrite to remove them first' % (prefix, shown))
