"""The layout the architecture promises: packages import one way, MXNet loads only where MXNet graphs
are built or run (never before the runtime is prepared), and every file has one job."""
import pathlib
import subprocess
import sys

import pytest

import import_graph
from support import REPO

# Modules that may run without MXNet: everything but facekit.mx and the modules that build, train,
# export or run MXNet graphs (the ONNX detectors and the commands that use them).
FRAMEWORK_FREE = [
    'facekit.args', 'facekit.boxes', 'facekit.command', 'facekit.cpu', 'facekit.draw', 'facekit.faces',
    'facekit.files', 'facekit.image', 'facekit.labels', 'facekit.ort', 'facekit.prefix', 'facekit.video', 'retinaface',
    'rcnn.contract', 'rcnn.detector', 'rcnn.processing.bbox_transform', 'rcnn.processing.generate_anchor',
    'rcnn.io.augment', 'rcnn.io.rpn', 'rcnn.evaluation.widerface', 'rcnn.evaluation.modes', 'rcnn.dataset.synthetic',
    'rcnn.commands', 'rcnn.commands.detect', 'rcnn.commands.evaluate', 'rcnn.commands.synthetic',
    'rcnn.commands.demo', 'rcnn.commands.launch', 'mtcnn.boxes', 'mtcnn.defaults', 'mtcnn.detector',
    'mtcnn.evaluate', 'mtcnn.samples', 'mtcnn.torchfile', 'mtcnn.commands', 'mtcnn.commands.demo',
    'mtcnn.commands.evaluate', 'mtcnn.commands.prepare', 'mtcnn.commands.options',
]
# What a user runs: these files only hand a command module's name to facekit.command.main.
LAUNCHERS = ['train.py', 'test_widerface.py', 'detect.py', 'tools/demo.py', 'tools/export_onnx.py',
             'tools/launch.py', 'tools/make_synthetic_widerface.py', 'tools/quantize.py', 'mtcnn/train.py',
             'mtcnn/demo.py', 'mtcnn/prepare.py', 'mtcnn/evaluate.py', 'mtcnn/convert.py',
             'rcnn/evaluation/widerface.py', 'rcnn/dataset/synthetic/__main__.py']
MAX_LINES = 500


def test_packages_import_one_way():
    edges = import_graph.package_edges()
    assert not import_graph.cycles(edges)
    assert ('rcnn', 'mtcnn') not in edges and ('mtcnn', 'rcnn') not in edges
    assert not [edge for edge in edges if edge[0] == 'facekit']  # the shared package imports neither detector


def test_mxnet_is_not_needed_to_import_the_framework_free_modules():
    code = ("import sys\nsys.modules['mxnet'] = None  # importing it fails\n"
            "import importlib\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n")
    result = subprocess.run([sys.executable, '-c', code] + FRAMEWORK_FREE, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize('launcher', LAUNCHERS)
def test_a_launcher_loads_no_mxnet_before_the_runtime_is_prepared(launcher):
    code = ('import runpy, sys\nsys.path.insert(0, %r)\nrunpy.run_path(%r, run_name="not_main")\n'
            'assert "mxnet" not in sys.modules, "loaded by %s"\n' % (str(REPO), launcher, launcher))
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def project_sources():
    ignored = ('.venv', 'build', 'data', 'model', 'demo_out')
    return [p for p in REPO.rglob('*.py') if not set(p.relative_to(REPO).parts[:1]) & set(ignored)]


def test_no_import_waits_for_the_runtime_and_every_file_has_one_job():
    """No import is held back with '# noqa: E402' for the runtime's sake; no file above 500 lines."""
    sources = [p for p in project_sources() if p != pathlib.Path(__file__)]
    assert len(sources) > 100
    assert not [str(p) for p in sources if 'noqa: E402' in p.read_text()]
    long = {str(p.relative_to(REPO)): n for p in sources for n in [len(p.read_text().splitlines())] if n > MAX_LINES}
    assert not long


def test_the_import_graph_script_prints_no_cycle():
    result = subprocess.run([sys.executable, 'tests/import_graph.py'], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and 'cycles: none' in result.stdout, result.stdout
    assert 'rcnn       -> facekit' in result.stdout and 'mtcnn      -> facekit' in result.stdout
