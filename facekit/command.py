"""The one way into every command line: runtime, logging, arguments, the run, the exit status.

A launcher (``train.py``, ``python -m mtcnn.train``, a console script) calls::

    sys.exit(main('rcnn.commands.train'))

with the *name* of a command module (or, for a command of several, ``{subcommand: name}``,
e.g. ``tools/export_onnx.py retinaface|mtcnn``), which holds

- ``build_parser()``: a ``facekit.args.ArgumentParser``;
- ``check_args(args)`` (optional): the checks across arguments, raising ``UsageError``;
- ``run(args, context)``: the command (``context``: :class:`Context`); returns the exit
  status (None for 0).

``main``, in order:

1. prepares the runtime before MXNet can load (``facekit.cpu.prepare_openmp``): the
   command module is imported only afterwards, so it may import MXNet at its top; it
   also starts measuring the load of the machine (``context.cpu_load``);
2. sets up logging (``LOG_FORMAT`` on stderr);
3. imports the command module, parses and checks the arguments;
4. runs the command; SIGTERM raises :class:`Terminated` as SIGINT raises ``KeyboardInterrupt``;
5. maps what the command raises to the documented exit statuses: 2 for a bad argument
   (``UsageError``: argparse's usage line and error), 1 for a file the command cannot use,
   a missing optional package or a diverged run (``OSError``, ``ValueError``,
   ``ArithmeticError``, MXNet's errors: one line ``prog: error: ...``), 130 / 143 after
   SIGINT / SIGTERM. Anything else is a bug and keeps its traceback.

Library code raises and never exits the process.
"""
import dataclasses
import importlib
import logging
import signal
import sys

from facekit.args import ArgumentParser, UsageError
from facekit.cpu import CpuLoad, prepare_openmp

__all__ = ['LOG_FORMAT', 'EXIT_ERROR', 'EXIT_USAGE', 'EXIT_SIGINT', 'EXIT_SIGTERM', 'Context', 'Terminated',
           'setup_logging', 'main']

logger = logging.getLogger(__name__)

LOG_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM

# What a command that lacks an optional package says to install.
_EXTRAS = {
    'mxnet': "this command needs MXNet 1.9.1: pip install '.[mxnet]' (or '.[gpu]'), see the README",
    'onnx': "this command needs onnx==1.15.0: pip install '.[mxnet]'",
    'onnxruntime': 'this command needs onnxruntime: pip install onnxruntime',
}


@dataclasses.dataclass
class Context:
    """What ``main`` hands a command's ``run``: its name as the user called it, and the load of
    the machine measured since the process started (``facekit.cpu.CpuLoad``)."""
    prog: str
    cpu_load: CpuLoad


class Terminated(BaseException):
    """SIGTERM, raised in the main thread as SIGINT raises KeyboardInterrupt."""


def _terminate(signum, frame):
    raise Terminated()


def setup_logging(level=logging.INFO):
    """Log to stderr in the commands' common format (a no-op if logging is already set up)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def _one_line(error):
    """A command's failure as one line: the message, or the last line of MXNet's (its C++ trace)."""
    if isinstance(error, ModuleNotFoundError) and (error.name or '').split('.')[0] in _EXTRAS:
        return _EXTRAS[error.name.split('.')[0]]
    text = str(error).strip()
    if type(error).__module__.startswith('mxnet'):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        text = lines[-1] if lines else type(error).__name__
    return text or type(error).__name__


def _is_user_error(error):
    if isinstance(error, ModuleNotFoundError):
        return (error.name or '').split('.')[0] in _EXTRAS
    return isinstance(error, (OSError, ValueError, ArithmeticError)) or type(error).__module__.startswith('mxnet')


def _command_parser(command, prog, description):
    """(module, parser) of a command module's name, or ({subcommand: module}, parser) of a dict
    of them: one parser with a subcommand per module, each with the module's arguments."""
    if not isinstance(command, dict):
        module = importlib.import_module(command)
        parser = module.build_parser()
        if prog is not None:
            parser.prog = prog
        return module, parser
    modules = {name: importlib.import_module(path) for name, path in command.items()}
    parser = ArgumentParser(prog=prog, description=description)
    subcommands = parser.add_subparsers(dest='subcommand', required=True, metavar='{%s}' % ','.join(modules))
    for name, module in modules.items():
        own = module.build_parser()
        sub = subcommands.add_parser(name, parents=[own], conflict_handler='resolve', help=own.description,
                                     description=own.description)
        sub._aliases.update(own._aliases)
    return modules, parser


def main(command, argv=None, prog=None, description=None):
    """Run the command module named ``command`` on ``argv`` (default ``sys.argv[1:]``); returns
    the exit status. ``prog`` is the name in messages (default: argparse's, from ``sys.argv[0]``);
    ``description`` heads the ``--help`` of a command of several."""
    context = Context(prog or 'command', prepare_openmp())
    setup_logging()
    previous = signal.signal(signal.SIGTERM, _terminate)
    parser = None
    try:
        module, parser = _command_parser(command, prog, description)
        context.prog = parser.prog
        args = parser.parse_args(argv)
        if isinstance(command, dict):
            module = module[args.subcommand]
        if hasattr(module, 'check_args'):
            module.check_args(args)
        status = module.run(args, context)
        return 0 if status is None else int(status)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else EXIT_ERROR)
    except UsageError as error:
        if parser is None:
            raise
        try:
            parser.error(str(error))
        except SystemExit as exit_:
            return exit_.code
    except KeyboardInterrupt:
        print('%s: interrupted (SIGINT)' % context.prog, file=sys.stderr)
        return EXIT_SIGINT
    except Terminated:
        print('%s: terminated (SIGTERM)' % context.prog, file=sys.stderr)
        return EXIT_SIGTERM
    except Exception as error:
        if not _is_user_error(error):
            raise
        logger.debug('the error behind the message below', exc_info=True)
        print('%s: error: %s' % (context.prog, _one_line(error)), file=sys.stderr)
        return EXIT_ERROR
    finally:
        signal.signal(signal.SIGTERM, previous)
