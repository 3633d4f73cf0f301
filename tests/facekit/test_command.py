"""facekit.command.main: the runtime is prepared before the command module (and MXNet) loads, and
what a command raises becomes the documented exit status with one line naming the problem."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from facekit.command import main
from support import REPO

COMMAND = '''
import os, sys, time
from facekit import args as cli
from facekit.args import UsageError

def build_parser():
    parser = cli.ArgumentParser(prog='demo-command')
    parser.add_argument('--raise', dest='what', default='')
    parser.add_argument('--count', type=cli.int_at_least(1), default=1)
    return parser

def check_args(args):
    if args.what == 'usage':
        raise UsageError('--raise: a bad argument')

def run(args, context):
    if args.what == 'oserror':
        raise FileNotFoundError('image photo.jpg does not exist')
    if args.what == 'value':
        raise ValueError('label.txt:3: not a number')
    if args.what == 'mxnet':
        import mxnet as mx
        raise mx.base.MXNetError('Traceback (most recent call last):\\n  File "x.cc", line 3\\nMXNetError: broken')
    if args.what == 'bug':
        raise KeyError('a bug')
    if args.what == 'interrupt':
        raise KeyboardInterrupt()
    if args.what == 'sleep':
        print('running', flush=True)
        time.sleep(60)
    if args.what == 'missing':
        raise ModuleNotFoundError("No module named 'mxnet'", name='mxnet')
    return args.count - 1
'''


@pytest.fixture
def command(tmp_path, monkeypatch):
    (tmp_path / 'demo_command.py').write_text(COMMAND)
    monkeypatch.syspath_prepend(str(tmp_path))
    return 'demo_command'


@pytest.mark.parametrize('argv, status, message', [
    ([], 0, None),
    (['--count', '4'], 3, None),
    (['--count', '0'], 2, 'demo-command: error: argument --count: must be >= 1'),
    (['--raise', 'usage'], 2, 'demo-command: error: --raise: a bad argument'),
    (['--raise', 'oserror'], 1, 'demo-command: error: image photo.jpg does not exist'),
    (['--raise', 'value'], 1, 'demo-command: error: label.txt:3: not a number'),
    (['--raise', 'mxnet'], 1, 'demo-command: error: MXNetError: broken'),
    (['--raise', 'interrupt'], 130, 'demo-command: interrupted (SIGINT)'),
    (['--raise', 'missing'], 1, "demo-command: error: this command needs MXNet 1.9.1: pip install '.[mxnet]'"),
])
def test_what_a_command_raises_becomes_its_exit_status(command, argv, status, message, capsys):
    assert main(command, argv) == status
    err = capsys.readouterr().err.strip().splitlines()
    if message is None:
        assert not err
    else:
        assert err[-1].startswith(message)


def test_a_bug_keeps_its_traceback(command):
    with pytest.raises(KeyError, match='a bug'):
        main(command, ['--raise', 'bug'])


def test_sigterm_ends_a_command_with_143(tmp_path):
    (tmp_path / 'demo_command.py').write_text(COMMAND)
    env = dict(os.environ, PYTHONPATH='%s:%s' % (tmp_path, REPO))
    child = subprocess.Popen([sys.executable, '-c', 'import sys\nfrom facekit.command import main\n'
                              'sys.exit(main("demo_command", ["--raise", "sleep"]))'],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == 'running'
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 143
    assert err.strip().splitlines()[-1] == 'demo-command: terminated (SIGTERM)'


def test_a_command_of_several_dispatches_to_the_named_one(command, capsys):
    commands = {'first': command, 'second': command}
    assert main(commands, ['second', '--count', '3'], prog='tool') == 2
    assert main(commands, ['first', '--raise', 'value'], prog='tool') == 1
    assert capsys.readouterr().err.strip() == 'tool: error: label.txt:3: not a number'
    assert main(commands, ['third'], prog='tool') == 2
    assert main(commands, ['first', '--count=2'], prog='tool') == 1


MXNET_AT_TOP = '''
import os
import mxnet as mx
SPIN_COUNT_AS_MXNET_LOADED = os.environ.get('GOMP_SPINCOUNT')

from facekit import args as cli
from facekit.mx import runtime

def build_parser():
    return cli.ArgumentParser(prog='mxnet-command')

def run(args, context):
    engine, threads = runtime.configure_cpu_inference()
    mx.nd.ones((2, 2)).asnumpy()
    print(SPIN_COUNT_AS_MXNET_LOADED, engine, threads)
'''


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: the runtime keeps MXNet's engine")
def test_a_command_module_that_imports_mxnet_at_its_top_gets_the_runtime(tmp_path):
    (tmp_path / 'mxnet_command.py').write_text(MXNET_AT_TOP)
    env = {k: v for k, v in os.environ.items()
           if k not in ('GOMP_SPINCOUNT', 'OMP_WAIT_POLICY', 'OMP_NUM_THREADS', 'MXNET_ENGINE_TYPE',
                        'RETINAFACE_CPU_RUNTIME')}
    env['PYTHONPATH'] = '%s:%s' % (tmp_path, REPO)
    launcher = textwrap.dedent('''
        import sys
        from facekit.command import main
        assert 'mxnet' not in sys.modules
        sys.exit(main('mxnet_command'))
    ''')
    result = subprocess.run([sys.executable, '-c', launcher], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    spin_count, engine, threads = result.stdout.split()
    assert spin_count == '10000'  # set before MXNet (and libgomp) loaded
    assert engine == 'NaiveEngine' and int(threads) == len(os.sched_getaffinity(0))
    assert 'MXNet start using engine: NaiveEngine' in result.stderr
