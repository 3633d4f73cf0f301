"""rcnn.cli argument types and rcnn.runtime device choice: errors name the argument."""
import argparse
import os

import pytest

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
    with pytest.raises(runtime.DeviceError, match='--gpus 1: .*leave --gpus out'):
        runtime.choose_gpus([1])


def test_device_choice_with_gpus(monkeypatch):
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 2)
    assert runtime.choose_gpu(None) == 0 and runtime.choose_gpu(1) == 1
    assert runtime.choose_gpus(None) == [0, 1] and runtime.choose_gpus([1]) == [1]
    with pytest.raises(runtime.DeviceError, match=r'--gpu 2: MXNet sees 2 GPU\(s\) here'):
        runtime.choose_gpu(2)

