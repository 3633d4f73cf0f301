"""Fixtures of the command tests. train.py: the dataset (4 images and their mirrors: 8 batches of
one image per epoch) and a first epoch trained on it. detect.py: its stand-in detector."""
import pytest

from rcnn.commands import detect as detect_module
from rcnn.dataset.synthetic import generate_widerface
from detect_support import FakeRetinaFace
from train_support import run_train


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic') / 'retinaface'
    generate_widerface(str(root), num_train=4, num_val=2, num_test=1, seed=3, workers=1)
    return str(root)


@pytest.fixture(scope='module')
def first_epoch(dataset, tmp_path_factory):
    """PREFIX-0001 of a whole first epoch, with its optimizer state."""
    prefix = str(tmp_path_factory.mktemp('first') / 'first')
    result = run_train('--dataset_path', dataset, '--prefix', prefix, '--end_epoch', '1')
    assert result.returncode == 0, result.stderr
    return prefix


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """The stand-in detector in detect.py, and an (empty) checkpoint prefix to point it at."""
    FakeRetinaFace.instances = []
    monkeypatch.setattr(detect_module, 'RetinaFace', FakeRetinaFace)
    for name in ('m-symbol.json', 'm-0000.params'):
        (tmp_path / name).write_text(name)
    return str(tmp_path / 'm')
