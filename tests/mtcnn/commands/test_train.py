"""python -m mtcnn.train (``mtcnn.commands.train``) on the shared training loop: checkpoints with the
optimizer state, exact resume inside an epoch, interrupts, the prefix rules, the original's defaults
and spellings."""
import logging
import os
import re
import signal
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

from facekit.mx import runtime
from facekit.mx.checkpoint import load_params
from facekit.prefix import Position, params_path, saved_positions, states_path
from mtcnn.commands import mtcnn_train
from mtcnn.commands import train as train_module
from mtcnn.commands.train import init_params, lr_steps, train_net
from mtcnn.detector import MtcnnDetector
from mtcnn.loader import read_sample_list
from mtcnn.symbol import get_symbol
from support import REPO, error_line, folder_digests, require_shared, tiny_sample_list


def train(argv):
    return mtcnn_train(argv, prog='python -m mtcnn.train')


def test_a_checkpoint_holds_the_test_symbol_and_the_state_and_resumes(tmp_path):
    samples = tiny_sample_list(tmp_path, 24, count=16)
    prefix = str(tmp_path / 'model' / 'rnet')
    assert train_net('rnet', samples, prefix, end_epoch=1, batch_size=8, with_landmark=True, frequent=1) == 0
    assert train_net('rnet', samples, prefix, begin=Position(1), end_epoch=2, batch_size=8, with_landmark=True,
                     frequent=1) == 0
    assert saved_positions(prefix) == [Position(1), Position(2)]
    assert os.path.isfile(states_path(prefix, 2) + '.json')
    saved = mx.sym.load(prefix + '-symbol.json')
    assert saved.list_arguments() == get_symbol('rnet', 'test', with_landmark=True).list_arguments()
    before, _ = load_params(prefix, 1)
    after, _ = load_params(prefix, 2)
    assert set(before) == set(after) and any((before[k] != after[k]).asnumpy().any() for k in before)
    released_pnet = str(require_shared('assets/models/mtcnn-mxnet/pnet-0016.params'))
    detector = MtcnnDetector(released_pnet, params_path(prefix, 2))
    assert detector.rnet.symbol.list_outputs()[-1] == 'fc4_output'


def final(prefix, epoch):
    return {suffix: mx.nd.load(params_path(prefix, epoch)[:-len('.params')] + suffix)
            for suffix in ('.params', '.states')}


def test_a_run_stopped_inside_an_epoch_resumes_to_the_uninterrupted_result(tmp_path, caplog):
    """Three epochs of two batches, the rate divided by 10 after epoch 1: stopped after 3 batches and
    resumed with the flags it logs, the parameters and momentum end bit for bit as one whole run."""
    samples = tiny_sample_list(tmp_path, 12, count=16)
    settings = dict(end_epoch=3, batch_size=8, lr_step=(1,), with_landmark=True)
    assert train_net('pnet', samples, str(tmp_path / 'whole'), **settings) == 0
    stopped = str(tmp_path / 'stopped')
    with caplog.at_level(logging.INFO):
        assert train_net('pnet', samples, stopped, max_iters=3, **settings) == 0
    assert 'stopped by --max_iters in epoch 1; resume with --begin_epoch 1 --begin_batch 1' in caplog.text
    assert train_net('pnet', samples, stopped, begin=Position(1, 1), **settings) == 0
    whole, resumed = final(str(tmp_path / 'whole'), 3), final(stopped, 3)
    for suffix in whole:
        assert sorted(whole[suffix]) == sorted(resumed[suffix]) and whole[suffix]
        for key in whole[suffix]:
            np.testing.assert_array_equal(resumed[suffix][key].asnumpy(), whole[suffix][key].asnumpy(),
                                          err_msg=suffix + key)


def test_the_original_schedule_steps_after_each_epoch_of_lr_step():
    """MXNet's MultiFactorScheduler, as the original used it: update u > e * iterations takes the step."""
    assert lr_steps([8, 14], 100) == [(801, 0.1), (1401, 0.1)]


def test_training_that_diverges_stops_naming_the_batch_and_saves_nothing_more(tmp_path, capsys):
    samples = tiny_sample_list(tmp_path, 24, count=16)
    prefix = str(tmp_path / 'model' / 'rnet')
    assert train_net('rnet', samples, prefix, end_epoch=1, batch_size=8, with_landmark=True) == 0
    kept = {name: open(tmp_path / 'model' / name, 'rb').read() for name in os.listdir(tmp_path / 'model')}
    # The spellings of earlier versions (--with-landmark, --begin-epoch, ...) are hidden aliases.
    assert train(['--net', 'rnet', '--samples', str(tmp_path / 'train.txt'), '--prefix', prefix, '--with-landmark',
                  '--begin-epoch', '1', '--end-epoch', '3', '--batch-size', '8', '--lr', '1e6']) == 1
    error = error_line(capsys.readouterr().err)
    assert error.startswith('python -m mtcnn.train: error: training diverged in epoch 1, batch '), error
    assert re.search(r'NaN or infinity in (loss output|gradient of|parameter) \w+', error), error
    assert error.endswith('nothing after it was saved (last checkpoint: %s-0001.params)' % prefix), error
    after = {name: open(tmp_path / 'model' / name, 'rb').read() for name in os.listdir(tmp_path / 'model')}
    assert {k: v for k, v in after.items() if not k.endswith('.lock')} == \
        {k: v for k, v in kept.items() if not k.endswith('.lock')}


@pytest.mark.parametrize('argv, message', [
    (['--lr', 'nan'], "argument --lr: must be a finite number > 0, got 'nan'"),
    (['--lr', '0'], 'argument --lr: must be a finite number > 0'),
    (['--batch-size', '0'], 'argument --batch_size: must be >= 1'),
    (['--end_epoch', '2', '--begin_epoch', '2'], '--end_epoch (2) must be greater than --begin_epoch (2)'),
    (['--lr-epochs', '14,8'], 'argument --lr_step: expected increasing epochs'),
    (['--wd', '-1'], 'argument --wd: must be a finite number >= 0'),
    (['--frequent', '0'], 'argument --frequent: must be >= 1'),
    (['--gpus', 'x'], 'argument --gpus: expected comma-separated integers'),
    (['--begin_epoch', '3'], '--begin_epoch 3: no checkpoint {tmp}/m/pnet-0003.params to resume from'),
    (['--samples', '{tmp}/none.txt'], '--samples: no such file: {tmp}/none.txt'),
    (['--prefix', '{tmp}/file/pnet'], '--prefix: {tmp}/file is not a folder'),
])
def test_train_arguments_are_checked_before_any_work(argv, message, tmp_path, capsys):
    (tmp_path / 'file').write_text('')
    (tmp_path / 'list.txt').write_text('')
    base = {'--samples': str(tmp_path / 'list.txt'), '--prefix': str(tmp_path / 'm' / 'pnet')}
    for flag in argv[::2]:
        base.pop(flag, None)
    argv = ['--net', 'pnet'] + [a for pair in base.items() for a in pair] + \
        [a.replace('{tmp}', str(tmp_path)) for a in argv]
    assert train(argv) == 2
    assert 'error: ' + message.replace('{tmp}', str(tmp_path)) in error_line(capsys.readouterr().err)
    assert sorted(os.listdir(tmp_path)) == ['file', 'list.txt']


def test_train_device_is_gpu_0_when_mxnet_sees_one_else_the_cpu(tmp_path, monkeypatch):
    (tmp_path / 'list.txt').write_text('')
    argv = ['--net', 'pnet', '--samples', str(tmp_path / 'list.txt'), '--prefix', str(tmp_path / 'pnet')]

    def gpus(extra):
        args = train_module.build_parser().parse_args(argv + extra)
        train_module.check_args(args)
        return args.gpus

    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 2)
    assert gpus([]) == [0] and gpus(['--gpus', '1']) == [1] and gpus(['--gpus', '']) == []
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 0)
    assert gpus([]) == []
    with pytest.raises(runtime.DeviceError):
        gpus(['--gpus', '0'])


@pytest.mark.slow
def test_an_interrupt_saves_where_training_stands_and_exits_130(tmp_path):
    tiny_sample_list(tmp_path, 12, count=16)
    prefix = str(tmp_path / 'pnet')
    command = [sys.executable, '-m', 'mtcnn.train', '--net', 'pnet', '--samples', str(tmp_path / 'train.txt'),
               '--prefix', prefix, '--batch_size', '8', '--end_epoch', '100000', '--frequent', '1']
    proc = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if 'Batch [' in line:
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    log = ''.join(lines) + rest
    assert proc.returncode == 130, log
    flags = re.search(r'interrupted (in epoch \d+|at the end of epoch \d+); resume with --begin_epoch (\d+)'
                      r'(?: --begin_batch (\d+))?', log)
    assert flags, log
    assert saved_positions(prefix)[-1] == Position(int(flags.group(2)), int(flags.group(3) or 0))
    assert 'Traceback' not in log


def test_a_new_run_refuses_a_prefix_holding_checkpoints_unless_overwrite(tmp_path, capsys):
    samples = tiny_sample_list(tmp_path, 12, count=16)
    prefix = str(tmp_path / 'model' / 'pnet')
    assert train_net('pnet', samples, prefix, end_epoch=1, batch_size=8) == 0
    argv = ['--net', 'pnet', '--samples', str(tmp_path / 'train.txt'), '--prefix', prefix, '--batch_size', '8',
            '--end_epoch', '1']
    before = open(params_path(prefix, 1), 'rb').read()
    files = folder_digests(tmp_path / 'model')
    assert train(argv) == 2
    assert '--prefix %s holds checkpoints this run would mix with: %s' % (prefix, params_path(prefix, 1)) in \
        error_line(capsys.readouterr().err)
    assert folder_digests(tmp_path / 'model') == files
    assert train(argv + ['--seed', '4', '--overwrite']) == 0
    assert open(params_path(prefix, 1), 'rb').read() != before and saved_positions(prefix) == [Position(1)]


def test_metrics_with_nothing_to_count_are_logged_n_a(tmp_path, caplog):
    """P-Net without landmarks: a batch of negatives only has no box rows (0/0)."""
    rng = np.random.default_rng(0)
    for i in range(8):
        cv2.imwrite(str(tmp_path / ('%d.png' % i)), rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
    (tmp_path / 'train.txt').write_text(''.join('%d.png 0\n' % i for i in range(8)))
    with caplog.at_level(logging.INFO):
        assert train_net('pnet', read_sample_list(str(tmp_path / 'train.txt')), str(tmp_path / 'pnet'), end_epoch=1,
                         batch_size=8, mirror=False) == 0
    assert 'Epoch[0] Train-BBoxMSE=n/a' in caplog.text
    assert re.search(r'Epoch\[0\] Train-LogLoss=\d+\.\d+', caplog.text)


def test_init_params_prelu_and_fc_scale():
    symbol = get_symbol('rnet', 'train', prelu='decomposed')
    params = init_params(symbol, {'data': (4, 3, 24, 24), 'label': (4,), 'bbox_target': (4, 4)})
    assert (params['prelu1_gamma'].asnumpy() == 0.25).all()
    assert not params['conv1_bias'].asnumpy().any()
    assert params['fc2_weight'].asnumpy().std() < params['conv1_weight'].asnumpy().std()
