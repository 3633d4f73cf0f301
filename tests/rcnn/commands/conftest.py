"""Fixtures of the train.py tests: the dataset (4 images and their mirrors: 8 batches of one
image per epoch) and a first epoch trained on it."""
import pytest

from rcnn.dataset.synthetic import generate_widerface
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
