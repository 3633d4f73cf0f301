"""tools/demo.py (make demo) on tiny settings: every stage runs, and a second run resumes."""
import os
import subprocess
import sys

from conftest import REPO


def run_demo(tmp_path, epochs):
    args = ['--data', str(tmp_path / 'data'), '--prefix', str(tmp_path / 'model' / 'mnet'),
            '--output', str(tmp_path / 'out'), '--num-train', '6', '--num-val', '3', '--num-test', '1',
            '--epochs', str(epochs), '--batch_images', '2', '--num-pictures', '2', '--lr', '0.01']
    result = subprocess.run([sys.executable, 'tools/demo.py'] + args, cwd=REPO, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_demo_runs_every_stage_and_resumes(tmp_path):
    first = run_demo(tmp_path, epochs=1)
    assert 'Demo finished' in first
    # MXNet logs the engine when it is not the default; the training step runs the naive one
    training = first.split('train.py --network')[1].split('test_widerface.py --mode')[0]
    assert 'MXNet start using engine: NaiveEngine' in training, first
    predictions = tmp_path / 'out' / 'predictions-0001'
    for name in ('widerface_eval.json', 'widerface_pr.png'):
        assert (predictions / name).is_file(), name
    pictures = sorted(os.listdir(tmp_path / 'out' / 'detections'))
    assert 'detections.json' in pictures and len([p for p in pictures if p.endswith('.jpg')]) == 2

    second = run_demo(tmp_path, epochs=2)
    assert 'synthetic data already in' in second
    assert 'resuming from %s-0001' % (tmp_path / 'model' / 'mnet') in second
    assert (tmp_path / 'out' / 'predictions-0002' / 'widerface_eval.json').is_file()

    third = run_demo(tmp_path, epochs=2)
    assert 'already trained' in third
