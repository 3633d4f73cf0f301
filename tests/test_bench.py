"""The benchmark scripts under bench/ start as ``python -m bench.NAME``: their imports resolve and
their options parse.

They are run by hand (their figures go in the README), so nothing else would notice
a benchmark broken by a refactoring until someone needs its numbers.
"""
import os
import subprocess
import sys

import pytest

from support import REPO, require_shared

BENCHES = sorted(p.stem for p in (REPO / 'bench').glob('*.py') if p.name != '__init__.py')


def run_bench(name, *args, **kwargs):
    """``python -m bench.NAME ARGS`` from the repository root."""
    return subprocess.run([sys.executable, '-m', 'bench.' + name, *args], cwd=REPO, capture_output=True, text=True,
                          **kwargs)


def test_every_benchmark_is_listed():
    assert (REPO / 'bench' / '__init__.py').is_file()
    assert {'core', 'deploy', 'detect', 'evaluate', 'loader', 'mtcnn', 'runtime', 'synthetic', 'train',
            'video'} <= set(BENCHES)
    # Run as modules of the package bench: the project's packages import from the repository root.
    assert not [name for name in BENCHES if 'sys.path' in (REPO / 'bench' / (name + '.py')).read_text()]


@pytest.mark.slow
@pytest.mark.parametrize('name', BENCHES)
def test_benchmark_help(name):
    result = run_bench(name, '--help')
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('usage: python -m bench.%s ' % name), result.stdout


FAKE_FACENET = {
    'facenet_pytorch/__init__.py': """
import numpy as np


class MTCNN:
    def __init__(self, **settings):
        assert settings == dict(min_face_size=24, thresholds=[0.6, 0.7, 0.7], factor=0.709, keep_all=True)

    def detect(self, rgb, landmarks=False):
        assert rgb.dtype == np.uint8 and rgb.shape[2] == 3 and landmarks
        return np.array([[0.0, 0.0, 40.0, 40.0]]), np.array([0.99]), np.full((1, 5, 2), 20.0)
""",
    'facenet_pytorch-2.6.0.dist-info/METADATA': 'Metadata-Version: 2.1\nName: facenet-pytorch\nVersion: 2.6.0\n',
    'torch/__init__.py': """
__version__ = 'stand-in'
_threads = [1]


def set_num_threads(n):
    _threads[0] = n


def get_num_threads():
    return _threads[0]
""",
}


@pytest.mark.slow
def test_mtcnn_benchmark_prints_its_table(tmp_path):
    """The tables of both cascades in three runtimes, then the canonical weights beside
    facenet-pytorch, here a stand-in package run by --facenet-python (one fixed face)."""
    shared = require_shared('assets/models/mtcnn-mxnet/pnet-0016.params').parents[3]
    require_shared('assets/models/mtcnn-canonical/onet.pt')
    for name, text in FAKE_FACENET.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = run_bench('mtcnn', '--repeat', '1', '--shared', str(shared), '--facenet-python', sys.executable, env=env)
    assert result.returncode == 0, result.stderr
    images = ('test01', 't4', 't6')
    rows = [row for row in map(str.split, result.stdout.splitlines()) if row and row[0] in images + ('t1',)]
    # one row per image and runtime, then the two comparisons (ratios) of each image
    assert [(row[0], row[2]) for row in rows[:9]] == [(image, runtime) for image in images
                                                      for runtime in ('default', 'configured', 'naive-env')]
    assert [row[0] for row in rows[9:15]] == list(images) * 2, result.stdout
    assert all(row[-1].endswith('x') for row in rows[:15]), result.stdout
    # the canonical weights: ours (faces, detect, forward), facenet's faces, time, ratio, agreement
    assert 'facenet: facenet-pytorch 2.6.0, torch stand-in, %d threads' % len(os.sched_getaffinity(0)) in result.stdout
    canonical = rows[15:]
    assert [row[0] for row in canonical] == ['test01', 't4', 't6', 't1'], result.stdout
    assert canonical[0][1] == '9'
    assert all(len(row) == 10 and row[4] == '1' and row[6].endswith('x') for row in canonical), result.stdout


@pytest.mark.slow
def test_deploy_benchmark_prints_its_tables():
    """The forward table (one row per case, ratios), then the cold-start processes (ONNX, MXNet, ratio)."""
    shared = require_shared('assets/models/retinaface-mnet025/mnet.25-symbol.json').parents[3]
    result = run_bench('deploy', '--repeat', '1', '--rounds', '1', '--processes', '1', '--shared', str(shared))
    assert result.returncode == 0, result.stderr
    forwards, processes = result.stdout.split('\n\n')
    rows = [row.split() for row in forwards.splitlines()[3:]]
    assert [' '.join(row[:2]) for row in rows] == ['mnet.25 t4', 'mnet.25 t6', 'mnet.25 t1', 'pnet test01',
                                                   'rnet 128', 'onet 32'], result.stdout
    assert all(row[-1].endswith('x') and float(row[-1][:-1]) > 0 for row in rows), result.stdout
    lines = processes.splitlines()[2:]
    assert [line.rsplit(None, 2)[0] for line in lines] == ['retinaface-detect --onnx', 'detect.py --prefix',
                                                           'onnx / mxnet'], result.stdout
    assert all(float(value.rstrip('x')) > 0 for line in lines for value in line.split()[-2:]), result.stdout


@pytest.mark.slow
@pytest.mark.parametrize('int8', [False, True])
def test_video_benchmark_prints_its_table(int8):
    """A row per detector, frames/s of batch 1 and 3 with their ratios; the int8 row only with
    --int8-prefix (here given the FP32 checkpoint, which the row runs as it would an INT8 one)."""
    shared = require_shared('assets/models/retinaface-mnet025/mnet.25-symbol.json').parents[3]
    extra = ['--int8-prefix', str(shared / 'assets/models/retinaface-mnet025/mnet.25')] if int8 else []
    result = run_bench('video', '--frames', '6', '--batches', '3', '--repeat', '1', '--shared', str(shared), *extra)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith('6 frames of 640x384')
    assert lines[1].split() == ['detector', 'faces', 'batch', '1', 'batch', '3', 'runtime']
    rows = [line.split() for line in lines[2:]]
    assert [row[0] for row in rows] == ['mxnet'] + ['int8'] * int8 + ['onnx', 'mtcnn'], result.stdout
    assert all(int(row[1]) > 0 and row[3] == '(1.00x)' and row[5].endswith('x)') for row in rows), result.stdout


@pytest.mark.slow
def test_quantize_benchmark_prints_its_tables():
    """detect() per photo and the test_widerface process, FP32 against INT8, with ratios."""
    shared = require_shared('assets/models/retinaface-mnet025/mnet.25-symbol.json').parents[3]
    result = run_bench('quantize', '--repeat', '1', '--processes', '1', '--shared', str(shared))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    detect = [line.split() for line in lines[3:6]]
    assert [row[0] for row in detect] == ['t1', 't4', 't6'], result.stdout
    mode1 = lines[-1].split()
    assert all(row[-1].endswith('x') and float(row[-1][:-1]) > 0 for row in detect + [mode1]), result.stdout
