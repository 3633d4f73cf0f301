"""rcnn.runtime: the CPU inference runtime takes effect, yields to the user's
environment and leaves detections bit-identical.

The engine is chosen once per process, so every case runs in a child process.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, require_shared

REPORT = """
import ctypes, json, os
from rcnn.runtime import configure_cpu_inference
engine, threads = configure_cpu_inference()
import mxnet as mx
mx.nd.ones((2, 2)).asnumpy()
print(json.dumps({'engine': engine, 'threads': threads,
                  'omp_max_threads': ctypes.CDLL('libgomp.so.1').omp_get_max_threads(),
                  'engine_variable': os.environ.get('MXNET_ENGINE_TYPE')}))
"""

DETECT = """
import sys
import cv2, numpy as np
if sys.argv[2] == 'inference':
    from rcnn.runtime import configure_cpu_inference
    configure_cpu_inference()
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
    env = {k: v for k, v in os.environ.items() if k not in ('MXNET_ENGINE_TYPE', 'OMP_NUM_THREADS')}
    env.update(env_changes)
    env['PYTHONPATH'] = str(REPO)
    result = subprocess.run([sys.executable, '-c', code] + [str(a) for a in args], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def test_selects_the_naive_engine_and_all_cpus():
    result = run_child(REPORT)
    report = json.loads(result.stdout)
    cpus = len(os.sched_getaffinity(0))
    assert report == {'engine': 'NaiveEngine', 'threads': cpus, 'omp_max_threads': cpus, 'engine_variable': None}
    assert 'MXNet start using engine: NaiveEngine' in result.stderr


def test_leaves_the_users_settings_alone():
    result = run_child(REPORT, MXNET_ENGINE_TYPE='ThreadedEnginePerDevice', OMP_NUM_THREADS='1')
    report = json.loads(result.stdout)
    assert report == {'engine': None, 'threads': None, 'omp_max_threads': 1,
                      'engine_variable': 'ThreadedEnginePerDevice'}
    assert 'NaiveEngine' not in result.stderr


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason='one CPU: both runtimes would use one thread')
def test_detections_are_identical_in_both_runtimes(tmp_path):
    """MTCNN and RetinaFace (mnet.25, threshold 0.02) on three photos: the inference
    runtime returns exactly the boxes, scores and landmarks of MXNet's defaults."""
    shared = require_shared('assets/models/mtcnn-mxnet/pnet-0016.params').parents[3]
    require_shared('assets/models/retinaface-mnet025/mnet.25-0000.params')
    for runtime in ('default', 'inference'):
        run_child(DETECT, tmp_path / (runtime + '.npz'), runtime, shared)
    default, inference = np.load(tmp_path / 'default.npz'), np.load(tmp_path / 'inference.npz')
    assert sorted(default.files) == sorted(inference.files)
    for key in default.files:
        assert len(default[key]), key
        np.testing.assert_array_equal(inference[key], default[key], err_msg=key)
