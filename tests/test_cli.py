"""rcnn.cli argument types and rcnn.runtime device choice: errors name the argument."""
import argparse
import os
import subprocess
import sys

import pytest

from conftest import REPO
from rcnn import cli, runtime


def parse(type_, text):
    parser = argparse.ArgumentParser(prog='prog')
    parser.add_argument('--value', type=type_)
    return parser.parse_args(['--value', text]).value


@pytest.mark.parametrize('type_, good, bad', [
    (cli.positive_float, [('0.01', 0.01), ('1e3', 1000.0)], ['0', '-1', 'nan', 'inf', 'x']),
    (cli.probability, [('0', 0.0), ('0.5', 0.5), ('1', 1.0)], ['1.5', '-0.1', 'nan', 'x']),
    (cli.int_list, [('55,68,80', [55, 68, 80]), ('', []), (' 3 , 5', [3, 5])], ['1.5,2', 'a']),
    (cli.probability_list(3), [('0.6,0.7,0.7', [0.6, 0.7, 0.7])], ['0.6,0.7', '0.6,0.7,0.7,0.1', '0.6,2,0.7']),
    (cli.gpu_id, [('0', 0), ('3', 3), ('-1', -1)], ['-2', '0.5', 'gpu']),
])
def test_argument_types(type_, good, bad, capsys):
    for text, value in good:
        assert parse(type_, text) == value
    for text in bad:
        with pytest.raises(SystemExit) as exit_info:
            parse(type_, text)
        assert exit_info.value.code == 2
        assert 'argument --value' in capsys.readouterr().err


def test_folder_checks(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog='prog')
    cli.check_writable_dir(parser, str(tmp_path / 'new' / 'deeper'), '--output')  # creatable: fine
    cli.check_existing_dir(parser, str(tmp_path), '--gt')
    (tmp_path / 'file').write_text('x')
    for check, path, flag in ((cli.check_writable_dir, tmp_path / 'file' / 'sub', '--output'),
                              (cli.check_existing_dir, tmp_path / 'missing', '--gt')):
        with pytest.raises(SystemExit):
            check(parser, str(path), flag)
        assert flag in capsys.readouterr().err
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / 'locked'
        locked.mkdir(mode=0o500)
        with pytest.raises(SystemExit):
            cli.check_writable_dir(parser, str(locked / 'out'), '--prefix')


def test_device_choice_on_a_cpu_build(monkeypatch, caplog):
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 0)
    with caplog.at_level('INFO'):
        assert runtime.choose_gpu(None) == -1
    assert 'running on the CPU' in caplog.text
    assert runtime.choose_gpu(-1) == -1
    with pytest.raises(runtime.DeviceError, match='--gpu 0: this MXNet build has no CUDA.*pass --gpu -1'):
        runtime.choose_gpu(0)
    assert runtime.choose_gpus(None) == []
    with pytest.raises(runtime.DeviceError, match="--gpus 1: .*pass --gpus ''"):
        runtime.choose_gpus([1])


def test_device_choice_with_gpus(monkeypatch):
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 2)
    assert runtime.choose_gpu(None) == 0 and runtime.choose_gpu(1) == 1
    assert runtime.choose_gpus(None) == [0, 1] and runtime.choose_gpus([1]) == [1]
    with pytest.raises(runtime.DeviceError, match=r'--gpu 2: MXNet sees 2 GPU\(s\) here'):
        runtime.choose_gpu(2)


def test_more_argument_types_and_file_checks(tmp_path, capsys):
    assert parse(cli.int_at_least(12), '12') == 12
    for text in ('11', '1.5', 'x'):
        with pytest.raises(SystemExit):
            parse(cli.int_at_least(12), text)
        assert 'argument --value' in capsys.readouterr().err
    parser = argparse.ArgumentParser(prog='prog')
    (tmp_path / 'm-symbol.json').touch()
    (tmp_path / 'm-0003.params').touch()
    cli.check_checkpoint(parser, str(tmp_path / 'm'), 3)
    cli.check_existing_file(parser, str(tmp_path / 'm-symbol.json'), '--pnet')
    cli.check_output_file(parser, str(tmp_path / 'new' / 'out.json'), '--json')
    for call, message in (
            (lambda: cli.check_checkpoint(parser, str(tmp_path / 'm'), 4),
             '--prefix: model file %s-0004.params does not exist' % (tmp_path / 'm')),
            (lambda: cli.check_existing_file(parser, str(tmp_path), '--pnet'), '--pnet: no such file: %s' % tmp_path),
            (lambda: cli.check_output_file(parser, str(tmp_path), '--json'), '--json: %s is a folder' % tmp_path)):
        with pytest.raises(SystemExit) as exit_info:
            call()
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_errors_found_during_the_run_are_one_line(capsys):
    import mxnet as mx
    with pytest.raises(SystemExit) as exit_info:
        with cli.input_errors():
            raise ValueError('label.txt:3: bad line')
    assert exit_info.value.code == 1 and capsys.readouterr().err == 'error: label.txt:3: bad line\n'
    with pytest.raises(SystemExit) as exit_info:
        with cli.model_load_errors('m-symbol.json', 'm-0000.params'):
            raise mx.base.MXNetError('Traceback (most recent call last):\n  File "x.cc", line 3\nMXNetError: broken')
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == 'error: cannot load m-symbol.json, m-0000.params: MXNetError: broken\n'
    with pytest.raises(KeyError):  # anything else is a bug: its traceback is kept
        with cli.input_errors():
            raise KeyError('x')


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: the runtime keeps MXNet's engine")
def test_device_choice_comes_before_the_cpu_runtime_takes_effect():
    """Asking MXNet for its GPUs (the default --gpu) does not fix the engine: the CPU
    inference runtime that choose_device then requests still takes effect (child process)."""
    code = ('import argparse, mxnet as mx\n'
            'from rcnn import cli, runtime\n'
            'runtime.cuda_gpus()\n'
            'assert cli.choose_device(argparse.ArgumentParser(), -1) == -1\n'
            'mx.nd.ones((2, 2)).asnumpy()\n')
    env = {k: v for k, v in os.environ.items() if k not in ('MXNET_ENGINE_TYPE', 'OMP_NUM_THREADS')}
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=dict(env, PYTHONPATH=str(REPO)),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert 'MXNet start using engine: NaiveEngine' in result.stderr
