"""facekit.mx.runtime and facekit.cpu: the CPU runtime takes effect, yields to the user's environment
and to other processes' load, and leaves detections bit-identical.

The engine and OpenMP's settings are chosen once per process, so every case runs in a
child process.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from facekit import cpu
from facekit.mx import runtime
from support import REPO, require_shared

CPUS = len(os.sched_getaffinity(0))
# What the runtime and MXNet's own thread count read: cleared for every child unless the case sets it.
RUNTIME_ENV = ('MXNET_ENGINE_TYPE', 'OMP_NUM_THREADS', 'OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'MXNET_OMP_MAX_THREADS',
               cpu.RUNTIME_VARIABLE)

# argv: function ('inference' or 'training'), parts, busy loops to run meanwhile, single_context.
REPORT = """
import ctypes, json, logging, os, subprocess, sys, time
from facekit import cpu
logging.basicConfig(level=logging.INFO)
busy = [subprocess.Popen([sys.executable, '-c', 'import time\\nend = time.time() + 20\\nwhile time.time() < end: pass'])
        for _ in range(int(sys.argv[3]))]
try:
    load = cpu.prepare_openmp()
    import mxnet as mx
    from facekit.mx import runtime
    time.sleep(0.5 if busy else 0.0)
    if sys.argv[1] == 'inference':
        engine, threads = runtime.configure_cpu_inference(int(sys.argv[2]), load if busy else None)
    else:
        engine, threads = runtime.configure_cpu_training(load, single_context=sys.argv[4] == '1')
finally:
    for process in busy:
        process.kill()
mx.nd.ones((2, 2)).asnumpy()
print(json.dumps({'engine': engine, 'threads': threads,
                  'omp_max_threads': ctypes.CDLL('libgomp.so.1').omp_get_max_threads(),
                  'engine_variable': os.environ.get('MXNET_ENGINE_TYPE'),
                  'spin_count': os.environ.get('GOMP_SPINCOUNT')}))
"""

# The OpenMP threads of MXNet's engine workers, as facekit.mx.runtime reads them.
WORKERS = """
from facekit.mx import runtime
print(runtime._engine_worker_threads())
"""

DETECT = """
import sys
import cv2, numpy as np
from facekit import cpu
if sys.argv[2] == 'ours':
    cpu.prepare_openmp()
    from facekit.mx import runtime
    runtime.configure_cpu_inference()
from mtcnn.detector import MtcnnDetector
from retinaface import RetinaFace
shared = sys.argv[3]
mtcnn = MtcnnDetector(*['%s/assets/models/mtcnn-mxnet/%s-0016.params' % (shared, n) for n in ('pnet', 'rnet', 'onet')])
retina = RetinaFace(shared + '/assets/models/retinaface-mnet025/mnet.25', 0, -1, 'net3')
out = {}
for name in ('test01', 't4', 't6'):
    img = cv2.imread('%s/assets/images/%s.jpg' % (shared, name))
    out['mtcnn_' + name] = mtcnn.detect(img)[0]
    out['retina_' + name], out['retina_landmarks_' + name] = retina.detect(img, 0.02)
np.savez(sys.argv[1], **out)
"""


def run_child(code, *args, **env_changes):
    env = {k: v for k, v in os.environ.items() if k not in RUNTIME_ENV}
    env.update(env_changes)
    env['PYTHONPATH'] = str(REPO)
    result = subprocess.run([sys.executable, '-c', code] + [str(a) for a in args], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def report(function='inference', parts=1, busy=0, single_context=True, **env):
    result = run_child(REPORT, function, parts, busy, int(single_context), **env)
    return json.loads(result.stdout), result.stderr


def worker_threads(**env):
    return int(run_child(WORKERS, **env).stdout)


def one_thread_engine(**env):
    """The engine chosen for one thread: MXNet's (None) where its engine workers run one thread too."""
    return None if worker_threads(**env) == 1 else 'NaiveEngine'


@pytest.mark.skipif(CPUS < 2, reason="one CPU: one thread, whose engine follows MXNet's workers")
def test_detection_runtime_is_the_naive_engine_on_every_cpu_and_a_short_spin():
    got, log = report()
    assert got == {'engine': 'NaiveEngine', 'threads': CPUS, 'omp_max_threads': CPUS, 'engine_variable': None,
                   'spin_count': cpu.SPIN_COUNT}
    assert 'MXNet start using engine: NaiveEngine' in log


@pytest.mark.slow
@pytest.mark.skipif(CPUS < 2, reason='one CPU: there is nothing to share out')
def test_parts_share_the_cpus_and_one_thread_keeps_mxnets_engine():
    got, _ = report(parts=2)
    assert got['threads'] == got['omp_max_threads'] == CPUS // 2
    assert (got['engine'] == 'NaiveEngine') == (CPUS // 2 > 1)
    # One thread keeps MXNet's threaded engine where its workers run one thread too (on 2 CPUs), ...
    got, log = report(parts=CPUS + 1)
    assert got == {'engine': one_thread_engine(), 'threads': 1, 'omp_max_threads': 1, 'engine_variable': None,
                   'spin_count': cpu.SPIN_COUNT}
    assert ('MXNet start using engine: NaiveEngine' in log) == (got['engine'] is not None)
    # ... as MXNET_OMP_MAX_THREADS=1 makes them anywhere; where they would run more (2 here), the naive
    # engine runs the one thread chosen.
    for cap, engine in (('1', None), ('2', 'NaiveEngine')):
        assert one_thread_engine(MXNET_OMP_MAX_THREADS=cap) == engine, cap
        got, _ = report(parts=CPUS + 1, MXNET_OMP_MAX_THREADS=cap)
        assert got['engine'] == engine and got['threads'] == got['omp_max_threads'] == 1, cap


@pytest.mark.slow
@pytest.mark.skipif(CPUS < 2, reason='one CPU: one thread either way')
def test_threads_yield_to_busy_processes():
    """With a busy loop on every CPU, a runtime measuring the load (MTCNN, training) takes one thread,
    on MXNet's threaded engine where its workers run one thread too."""
    engine = one_thread_engine()
    for function in ('inference', 'training'):
        got, log = report(function, busy=CPUS)
        assert got == {'engine': engine, 'threads': 1, 'omp_max_threads': 1, 'engine_variable': None,
                       'spin_count': cpu.SPIN_COUNT}
        assert 'engine %s, OpenMP threads 1,' % (engine or "%s (MXNet's default)" % runtime.DEFAULT_ENGINE) in log


@pytest.mark.slow
def test_training_runtime():
    # Several threads (here pinned) run on the naive engine ...
    got, _ = report('training', OMP_NUM_THREADS='2')
    assert got['engine'] == 'NaiveEngine' and got['threads'] is None
    # ... unless there are several contexts: the threaded engine overlaps them.
    got, log = report('training', single_context=False, OMP_NUM_THREADS='2')
    assert got['engine'] is None and 'NaiveEngine' not in log


@pytest.mark.slow
def test_leaves_the_users_settings_alone():
    got, log = report(MXNET_ENGINE_TYPE=runtime.DEFAULT_ENGINE, OMP_NUM_THREADS='2', GOMP_SPINCOUNT='5')
    assert got == {'engine': None, 'threads': None, 'omp_max_threads': 2,
                   'engine_variable': runtime.DEFAULT_ENGINE, 'spin_count': '5'}
    assert 'NaiveEngine' not in log
    assert 'engine %s (MXNET_ENGINE_TYPE), OpenMP threads 2 (OMP_NUM_THREADS)' % runtime.DEFAULT_ENGINE in log
    # A wait policy of the user's own: no spin count is added.
    assert report(OMP_WAIT_POLICY='PASSIVE')[0]['spin_count'] is None


@pytest.mark.slow
def test_the_users_thread_count_chooses_the_engine():
    """The user's OMP_NUM_THREADS stands; the engine follows it: naive on several threads, MXNet's on one."""
    for variable, engine in (('1', None), ('2', 'NaiveEngine')):
        got, log = report(OMP_NUM_THREADS=variable)
        assert got['engine'] == engine and got['threads'] is None, variable
        assert got['omp_max_threads'] == int(variable), variable
        assert ('MXNet start using engine: NaiveEngine' in log) == (engine is not None), variable


def test_runtime_variable_keeps_mxnet_defaults():
    got, log = report(**{cpu.RUNTIME_VARIABLE: 'mxnet'})
    assert got['engine'] is None and got['threads'] is None and got['spin_count'] is None
    assert 'NaiveEngine' not in log and 'MXNet defaults (RETINAFACE_CPU_RUNTIME=mxnet)' in log


@pytest.mark.slow
def test_engine_worker_threads_follow_mxnets_rule():
    """MXNet's engine workers run its own count, the user's OMP_NUM_THREADS over MXNET_OMP_MAX_THREADS."""
    assert worker_threads(MXNET_OMP_MAX_THREADS='1') == 1
    assert worker_threads(OMP_NUM_THREADS='3', MXNET_OMP_MAX_THREADS='1') == 3


def test_without_gnu_openmp_no_worker_count_is_read(monkeypatch):
    def missing(name):
        raise OSError('%s: cannot open shared object file' % name)
    monkeypatch.setattr(runtime.ctypes, 'CDLL', missing)
    assert runtime._engine_worker_threads() is None


@pytest.mark.slow
@pytest.mark.skipif(CPUS < 2, reason='one CPU: both runtimes would use one thread')
def test_detections_are_identical_in_both_runtimes(tmp_path):
    """MTCNN and RetinaFace (mnet.25, threshold 0.02) on three photos: our runtime returns exactly
    the boxes, scores and landmarks of MXNet's defaults."""
    shared = require_shared('assets/models/mtcnn-mxnet/pnet-0016.params').parents[3]
    require_shared('assets/models/retinaface-mnet025/mnet.25-0000.params')
    for name in ('default', 'ours'):
        run_child(DETECT, tmp_path / (name + '.npz'), name, shared)
    default, ours = np.load(tmp_path / 'default.npz'), np.load(tmp_path / 'ours.npz')
    assert sorted(default.files) == sorted(ours.files)
    for key in default.files:
        assert len(default[key]), key
        np.testing.assert_array_equal(ours[key], default[key], err_msg=key)


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


@pytest.mark.skipif(CPUS < 2, reason="one CPU: the runtime keeps MXNet's engine")
def test_device_choice_comes_before_the_cpu_runtime_takes_effect():
    """Asking MXNet for its GPUs (the default --gpu) does not fix the engine: the CPU inference
    runtime that inference_context then requests still takes effect (child process)."""
    code = ('import mxnet as mx\n'
            'from facekit.mx import runtime\n'
            'assert runtime.inference_context(None) == mx.cpu()\n'
            'mx.nd.ones((2, 2)).asnumpy()\n')
    assert 'MXNet start using engine: NaiveEngine' in run_child(code).stderr
