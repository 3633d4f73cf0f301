"""``pip install`` of this project into fresh environments.

- The newest Python here (3.12 or later) with the newest NumPy 2.x, onnxruntime and OpenCV
  the registry serves, and no MXNet: ``retinaface-detect --onnx`` gives the golden faces of
  t4 / t6 (within 0.05 px and 1e-3 in score), the MTCNN cascade on ONNX nets gives the boxes
  and landmarks of the MXNet cascade here (within 0.05 px), and the Cython kernels give the
  results they give here, under NumPy 1.23.5, exactly.
- Python 3.11 with the ``mxnet`` extra: the MXNet side starts and detects.

Both build the project from a copy of this checkout's files (what a clone holds), with
network access to the package registry.
"""
import glob
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mtcnn.detector import MtcnnDetector
from mtcnn.export import export_mtcnn
from rcnn.export import export_retinaface
from support import REPO, assert_same_faces, convert_canonical, released_mnet, require_shared

GOLDEN = 'golden/retinaface_mnet25_single_scale.npz'
NETS = ('pnet', 'rnet', 'onet')
KERNELS = '''
import sys
import numpy as np
from facekit.boxes import nms
from facekit.cython.bbox import bbox_overlaps_cython
from facekit.cython.cpu_nms import cpu_nms
from rcnn.cython.anchors import anchors_cython
given = np.load(sys.argv[1])
np.savez(sys.argv[2], numpy=np.array(np.__version__),
         overlaps=bbox_overlaps_cython(given['boxes'], given['query']),
         cpu_nms=np.asarray(cpu_nms(given['dets'], 0.4)),
         greedy_union=nms(given['dets64'], 0.5, 'Union'), greedy_minimum=nms(given['dets64'], 0.5, 'Minimum'),
         anchors=anchors_cython(20, 30, 16, given['base']))
'''


def python_version(python):
    try:
        result = subprocess.run([python, '-c', 'import sys; print(*sys.version_info[:2])'], capture_output=True,
                                text=True, timeout=60)
    except OSError:
        return None
    return tuple(map(int, result.stdout.split())) if result.returncode == 0 else None


def newest_python():
    """The newest interpreter of 3.12 or later: $RETINAFACE_NEW_PYTHON, pyenv's versions, or on PATH."""
    candidates = [os.environ.get('RETINAFACE_NEW_PYTHON')]
    pyenv_root = os.environ.get('PYENV_ROOT', os.path.expanduser('~/.pyenv'))
    candidates += sorted(glob.glob(os.path.join(pyenv_root, 'versions', '3.*', 'bin', 'python3')))
    candidates += [shutil.which('python3.%d' % minor) for minor in range(12, 20)]
    versions = {python: python_version(python) for python in candidates if python}
    usable = [python for python, version in versions.items() if version and version >= (3, 12)]
    if not usable:
        pytest.skip('no Python 3.12 or later here (set RETINAFACE_NEW_PYTHON to one)')
    return max(usable, key=versions.get)


def checkout_copy(target):
    """The files of this checkout a clone would hold (tracked, and untracked ones git does not ignore)."""
    listed = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split('\0')
    for name in filter(None, listed):
        if os.path.isfile(REPO / name):
            os.makedirs(target / os.path.dirname(name), exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


def make_venv(python, folder, requirement):
    """A fresh venv at ``folder`` with ``requirement`` pip-installed; returns its bin folder."""
    subprocess.run([python, '-m', 'venv', str(folder)], check=True, timeout=300)
    pip = [str(folder / 'bin' / 'python'), '-m', 'pip', 'install', '-q', '--disable-pip-version-check']
    result = subprocess.run(pip + [requirement], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / 'bin'


def run(args, **kwargs):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def kernel_inputs(path):
    rng = np.random.RandomState(7)
    corners = rng.uniform(0, 600, (300, 2))
    boxes = np.hstack([corners, corners + rng.uniform(1, 120, (300, 2))])
    scores = rng.uniform(0, 1, (300, 1))
    np.savez(path, boxes=boxes, query=boxes[::7] + 3.5, dets=np.hstack([boxes, scores]).astype(np.float32),
             dets64=np.hstack([boxes, scores]), base=np.array([[-8, -8, 23, 23], [-24, -24, 39, 39]], np.float32))


@pytest.mark.slow
def test_the_onnx_side_installs_and_detects_on_the_newest_python_and_numpy(tmp_path):
    python = newest_python()
    source = checkout_copy(tmp_path / 'source')
    models = tmp_path / 'models'
    models.mkdir()
    export_retinaface(released_mnet(), 0, str(models / 'mnet.25.onnx'))
    canonical = convert_canonical(tmp_path / 'canonical')
    for net in NETS:
        export_mtcnn(net, canonical[net], str(models / ('%s.onnx' % net)))
    kernel_inputs(tmp_path / 'kernels_in.npz')
    (tmp_path / 'kernels.py').write_text(KERNELS)
    (tmp_path / 'cascade.py').write_text(
        'import sys, cv2, numpy as np\nfrom mtcnn.detector import MtcnnDetector\n'
        'boxes, landmarks = MtcnnDetector(*sys.argv[1:4]).detect(cv2.imread(sys.argv[4]))\n'
        'np.savez(sys.argv[5], boxes=boxes, landmarks=landmarks)\n')

    bin_dir = make_venv(python, tmp_path / 'venv', str(source))
    work = tmp_path / 'work'  # outside the checkout: the installed package, not the source, is imported
    work.mkdir()
    venv_python = bin_dir / 'python'
    assert 'No module named' in subprocess.run([venv_python, '-c', 'import mxnet'], capture_output=True,
                                               text=True, cwd=work).stderr
    numpy_version = run([venv_python, '-c', 'import numpy; print(numpy.__version__)'], cwd=work).stdout
    assert int(numpy_version.split('.')[0]) >= 2

    photos = work / 'photos'
    photos.mkdir()
    for name in ('t4', 't6'):
        shutil.copy(require_shared('assets/images/%s.jpg' % name), photos)
    run([bin_dir / 'retinaface-detect', '--onnx', models / 'mnet.25.onnx', '--image', photos, '--output',
         work / 'out', '--json', work / 'faces.json', '--thresh', '0.02'], cwd=work)
    golden = np.load(require_shared(GOLDEN))
    for entry in json.loads((work / 'faces.json').read_text())['images']:
        name = os.path.basename(entry['image'])[:-len('.jpg')]
        det = np.array([face['box'] + [face['score']] for face in entry['faces']]).reshape(-1, 5)
        landmarks = np.array([face['landmarks'] for face in entry['faces']]).reshape(-1, 5, 2)
        assert_same_faces(det, landmarks, golden['%s_single_det' % name], golden['%s_single_landmarks' % name])

    test01 = str(require_shared('assets/images/test01.jpg'))
    run([venv_python, tmp_path / 'cascade.py'] + [models / ('%s.onnx' % net) for net in NETS]
        + [test01, work / 'mtcnn.npz'], cwd=work)
    theirs = np.load(str(work / 'mtcnn.npz'))
    boxes, landmarks = MtcnnDetector(*[canonical[net] for net in NETS]).detect(cv2.imread(test01))
    assert len(boxes) > 0 and landmarks.shape == (len(boxes), 5, 2)
    assert_same_faces(theirs['boxes'], theirs['landmarks'], boxes, landmarks)

    run([venv_python, tmp_path / 'kernels.py', tmp_path / 'kernels_in.npz', work / 'kernels_new.npz'], cwd=work)
    run([sys.executable, tmp_path / 'kernels.py', tmp_path / 'kernels_in.npz', tmp_path / 'kernels_here.npz'],
        cwd=REPO)
    new, here = np.load(str(work / 'kernels_new.npz')), np.load(str(tmp_path / 'kernels_here.npz'))
    assert str(new['numpy']) != str(here['numpy'])
    for name in ('overlaps', 'cpu_nms', 'greedy_union', 'greedy_minimum', 'anchors'):
        assert new[name].dtype == here[name].dtype and np.array_equal(new[name], here[name]), name


@pytest.mark.slow
def test_the_mxnet_extra_installs_the_training_side(tmp_path):
    """``pip install '.[mxnet]'`` into a fresh venv of this Python: the MXNet commands start and
    the released model detects (t4's faces at threshold 0.8, as the golden run's)."""
    source = checkout_copy(tmp_path / 'source')
    bin_dir = make_venv(sys.executable, tmp_path / 'venv', '%s[mxnet]' % source)
    work = tmp_path / 'work'
    work.mkdir()
    for command in ('retinaface-train', 'retinaface-test', 'retinaface-export', 'mtcnn-train'):
        assert run([bin_dir / command, '--help'], cwd=work).stdout.startswith('usage: ' + command)
    run([bin_dir / 'retinaface-detect', '--prefix', released_mnet(), '--epoch', '0', '--image',
         require_shared('assets/images/t4.jpg'), '--output', work / 'out', '--json', work / 'faces.json',
         '--gpu', '-1'], cwd=work)
    faces = json.loads((work / 'faces.json').read_text())['images'][0]['faces']
    golden = np.load(require_shared(GOLDEN))
    kept = golden['t4_single_det'][:, 4] >= 0.8
    det = np.array([face['box'] + [face['score']] for face in faces]).reshape(-1, 5)
    landmarks = np.array([face['landmarks'] for face in faces]).reshape(-1, 5, 2)
    assert_same_faces(det, landmarks, golden['t4_single_det'][kept], golden['t4_single_landmarks'][kept])


@pytest.mark.slow
def test_every_console_script_starts():
    """The console scripts pyproject.toml declares exist in this environment (make venv installs the
    project) and print their usage under their own name."""
    import tomllib
    scripts = tomllib.loads((REPO / 'pyproject.toml').read_text())['project']['scripts']
    assert {'retinaface-detect', 'retinaface-train', 'retinaface-test', 'mtcnn-detect'} <= set(scripts)
    bin_dir = os.path.dirname(sys.executable)
    for name in scripts:
        result = subprocess.run([os.path.join(bin_dir, name), '--help'], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (name, result.stderr)
        assert result.stdout.startswith('usage: %s ' % name), result.stdout
