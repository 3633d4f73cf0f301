"""The benchmark scripts under bench/ start: their imports resolve and their options parse.

They are run by hand (their figures go in the README), so nothing else would notice
a benchmark broken by a refactoring until someone needs its numbers.
"""
import subprocess
import sys

import pytest

from conftest import REPO, require_shared

BENCHES = sorted(p.name for p in (REPO / 'bench').glob('*.py'))


def test_every_benchmark_is_listed():
    assert {'core.py', 'detect.py', 'evaluate.py', 'loader.py', 'mtcnn.py', 'onnx.py', 'synthetic.py',
            'train.py'} <= set(BENCHES)


@pytest.mark.parametrize('script', BENCHES)
def test_benchmark_help(script):
    result = subprocess.run([sys.executable, 'bench/' + script, '--help'], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('usage: '), result.stdout


def test_mtcnn_benchmark_prints_its_table():
    shared = require_shared('assets/models/mtcnn-mxnet/pnet-0016.params').parents[3]
    result = subprocess.run([sys.executable, 'bench/mtcnn.py', '--repeat', '1', '--shared', str(shared)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    images = ('test01', 't4', 't6')
    rows = [row for row in map(str.split, result.stdout.splitlines()) if row and row[0] in images]
    # one row per image and runtime, then the two comparisons (ratios) of each image
    assert [(row[0], row[2]) for row in rows[:9]] == [(image, runtime) for image in images
                                                      for runtime in ('default', 'configured', 'naive-env')]
    assert [row[0] for row in rows[9:]] == list(images) * 2, result.stdout
    assert all(row[-1].endswith('x') for row in rows), result.stdout


def test_onnx_benchmark_prints_its_table():
    shared = require_shared('assets/models/retinaface-mnet025/mnet.25-symbol.json').parents[3]
    command = [sys.executable, 'bench/onnx.py', '--repeat', '1', '--rounds', '1', '--shared', str(shared)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [row.split() for row in result.stdout.splitlines()[3:]]
    assert [' '.join(row[:2]) for row in rows] == ['mnet.25 t4', 'mnet.25 t6', 'mnet.25 t1', 'pnet test01',
                                                   'rnet 128', 'onet 32'], result.stdout
    assert all(row[-1].endswith('x') and float(row[-1][:-1]) > 0 for row in rows), result.stdout
