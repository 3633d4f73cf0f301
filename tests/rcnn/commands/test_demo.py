"""tools/demo.py (make demo) on tiny settings: every stage runs, a second run resumes, and an
interrupted or failed step is not reported as finished."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from support import REPO
from facekit.prefix import Position, saved_positions
from rcnn.commands import demo


def run_demo(tmp_path, epochs):
    args = ['--data', str(tmp_path / 'data'), '--prefix', str(tmp_path / 'model' / 'mnet'),
            '--output', str(tmp_path / 'out'), '--num_train', '6', '--num_val', '3', '--num_test', '1',
            '--epochs', str(epochs), '--batch_images', '2', '--num_pictures', '2', '--lr', '0.01', '--lr_step', '5',
            '--seed', '3']
    result = subprocess.run([sys.executable, 'tools/demo.py'] + args, cwd=REPO, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.mark.slow
def test_demo_runs_every_stage_and_resumes(tmp_path):
    first = run_demo(tmp_path, epochs=1)
    assert 'Demo finished' in first
    # The training step chooses its own CPU runtime and logs it: the naive engine on several OpenMP
    # threads (the CPUs other processes leave idle decide, facekit.mx.runtime; tests/test_runtime.py has
    # the one-thread rule).
    training = first.split('train.py --network')[1].split('test_widerface.py --mode')[0]
    chosen = re.search(r'MXNet CPU training runtime: engine (\S+)[^,]*, OpenMP threads (\d+)', training)
    assert chosen, first
    engine, threads = chosen.group(1), int(chosen.group(2))
    assert threads == 1 or engine == 'NaiveEngine', chosen.group(0)
    assert ('MXNet start using engine: NaiveEngine' in training) == (engine == 'NaiveEngine'), first
    assert ' --lr 0.01 --lr_step 5 ' in training and ' --seed 3 ' in training
    assert ' --seed 3 ' in first.split('rcnn.dataset.synthetic')[1].split('\n')[0]
    predictions = tmp_path / 'out' / 'predictions-0001'
    for name in ('widerface_eval.json', 'widerface_pr.png'):
        assert (predictions / name).is_file(), name
    pictures = sorted(os.listdir(tmp_path / 'out' / 'detections'))
    assert 'detections.json' in pictures and len([p for p in pictures if p.endswith('.jpg')]) == 2

    second = run_demo(tmp_path, epochs=2)
    assert 'data already in' in second
    assert 'resuming from %s-0001' % (tmp_path / 'model' / 'mnet') in second
    assert (tmp_path / 'out' / 'predictions-0002' / 'widerface_eval.json').is_file()

    third = run_demo(tmp_path, epochs=2)
    assert 'already trained' in third


@pytest.mark.parametrize('code, status', [('raise SystemExit(130)', 130),
                                          ('import os, signal; os.kill(os.getpid(), signal.SIGTERM)', 143)])
def test_an_interrupted_step_is_reported_with_its_status(code, status, caplog):
    with pytest.raises(SystemExit) as exit_:
        demo.run_step([sys.executable, '-c', code], 'training')
    assert exit_.value.code == status
    assert 'training was interrupted' in caplog.text and 'run the same command again' in caplog.text


def test_example_links_are_unique_and_follow_the_data(tmp_path):
    for root in ('old', 'new'):
        for event in ('1--a', '2--b'):
            (tmp_path / root / event).mkdir(parents=True)
            (tmp_path / root / event / 'x.jpg').write_bytes(b'')
    links = tmp_path / 'examples'
    demo.link_examples(str(tmp_path / 'old'), ['1--a/x.jpg', '2--b/x.jpg'], str(links))
    os.symlink(str(tmp_path / 'gone.jpg'), str(links / '3--c_y.jpg'))   # dangling
    os.symlink(str(tmp_path / 'old' / '1--a' / 'x.jpg'), str(links / 'x.jpg'))   # a name no longer used
    demo.link_examples(str(tmp_path / 'new'), ['2--b/x.jpg', '3--c/y.jpg', '1--a/x.jpg'], str(links))
    assert sorted(os.listdir(links)) == ['1--a_x.jpg', '2--b_x.jpg', '3--c_y.jpg']
    assert os.readlink(links / '2--b_x.jpg') == str(tmp_path / 'new' / '2--b' / 'x.jpg')
    assert os.readlink(links / '3--c_y.jpg') == str(tmp_path / 'new' / '3--c' / 'y.jpg')


def test_a_failed_step_is_an_error_naming_it():
    with pytest.raises(ChildProcessError, match=r'evaluation failed \(exit status 3\)'):
        demo.run_step([sys.executable, '-c', 'raise SystemExit(3)'], 'evaluation')


@pytest.mark.slow
def test_interrupted_training_saves_its_checkpoint_and_the_demo_exits_130(tmp_path):
    """Ctrl-C reaches the demo (the terminal's process group): it passes it on to the
    training step once, waits for its checkpoint and exits with its status. The demo logs
    every 10 batches, more than an epoch here: the signal comes after the first epoch."""
    args = ['--data', str(tmp_path / 'data'), '--prefix', str(tmp_path / 'model' / 'mnet'), '--output',
            str(tmp_path / 'out'), '--num_train', '2', '--num_val', '1', '--num_test', '0', '--epochs', '3',
            '--batch_images', '1']
    proc = subprocess.Popen([sys.executable, 'tools/demo.py'] + args, cwd=REPO, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.time() + 300
    for line in proc.stderr:
        lines.append(line)
        if 'Epoch[0] Time cost' in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=300)
    log = ''.join(lines) + rest
    assert proc.returncode == 130, log
    assert 'training was interrupted (SIGINT); run the same command again' in log
    # The signal comes in epoch 1, or as epoch 0 saves: the flags name the checkpoint saved where it stopped.
    flags = re.search(r'interrupted (in epoch 1|at the end of epoch 0); resume with --begin_epoch 1'
                      r'(?: --begin_batch (\d))?\n', log)
    assert flags, log
    stopped = Position(1, int(flags.group(2) or 0))
    assert saved_positions(str(tmp_path / 'model' / 'mnet'))[-1] == stopped
    assert not (tmp_path / 'out').exists()  # no later step ran
