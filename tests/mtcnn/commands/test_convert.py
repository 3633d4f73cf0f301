"""python -m mtcnn.convert (``mtcnn.commands.convert``): the canonical weights from a folder or a wheel,
all three nets or none, never over a file it reads; and the demo drawing their landmarks."""
import os
import re

import cv2
import mxnet as mx
import numpy as np
import pytest

from facekit.draw import LANDMARK_COLORS
from mtcnn.commands import mtcnn_convert as convert
from mtcnn.commands import mtcnn_detect
from mtcnn.detector import MtcnnDetector
from mtcnn.predictor import load_predictor
from support import canonical_dir, convert_canonical, error_line, make_wheel, require_shared

NETS = ('pnet', 'rnet', 'onet')


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    return convert_canonical(tmp_path_factory.mktemp('canonical'))


def test_convert_reads_a_wheel_and_writes_the_same_files(tmp_path, converted, capsys):
    wheel = make_wheel(tmp_path / 'facenet_pytorch-2.6.0-py3-none-any.whl', canonical_dir())
    assert convert(['--facenet', str(wheel), '--output', str(tmp_path / 'out')]) == 0
    assert 'onet-0000.params' in capsys.readouterr().out
    for net in NETS:
        assert (tmp_path / 'out' / ('%s-0000.params' % net)).read_bytes() == open(converted[net], 'rb').read()


def test_convert_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'rnet-0000.params').write_bytes(b'mine')
    assert convert(['--facenet', str(canonical_dir()), '--output', str(out)]) == 2
    assert '--output: %s exists (pass --overwrite' % (out / 'rnet-0000.params') in error_line(capsys.readouterr().err)
    assert (out / 'rnet-0000.params').read_bytes() == b'mine'
    assert not (out / 'pnet-0000.params').exists()
    assert convert(['--facenet', str(canonical_dir()), '--output', str(out), '--overwrite']) == 0
    assert load_predictor('rnet', str(out / 'rnet-0000.params'))


@pytest.mark.parametrize('make, message, status', [
    (lambda p: p / 'nowhere', 'error: --facenet: .*nowhere does not exist', 2),
    (lambda p: p.joinpath('x.txt').write_text('x') and p / 'x.txt', 'error: --facenet: .*neither a folder nor', 2),
    (lambda p: p, 'error: pnet.pt not found in ', 1),
    (lambda p: p.joinpath('pnet.pt').write_bytes(b'\x80\x02') and p, 'error: .*pnet.pt', 1),
])
def test_convert_names_a_bad_source(tmp_path, capsys, make, message, status):
    assert convert(['--facenet', str(make(tmp_path)), '--output', str(tmp_path / 'out')]) == status
    assert re.search(message, error_line(capsys.readouterr().err))
    assert not (tmp_path / 'out').exists()


def test_convert_writes_all_three_nets_or_none(tmp_path, monkeypatch, capsys):
    """A failure while writing the third net (a full disk, say) leaves no new file."""
    out = tmp_path / 'out'
    calls = []

    def save(path, arrays):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, 'No space left on device', path)
        original(path, arrays)

    original = mx.nd.save
    monkeypatch.setattr(mx.nd, 'save', save)
    assert convert(['--facenet', str(canonical_dir()), '--output', str(out)]) == 1
    assert 'No space left on device' in error_line(capsys.readouterr().err)
    assert len(calls) == 3 and os.listdir(out) == []


def test_convert_checks_the_output_folder_before_reading(tmp_path, capsys, monkeypatch):
    import mtcnn.facenet
    monkeypatch.setattr(mtcnn.facenet, 'read_facenet', lambda source: pytest.fail('read before the check'))
    (tmp_path / 'file').write_text('x')
    assert convert(['--facenet', str(canonical_dir()), '--output', str(tmp_path / 'file' / 'out')]) == 2
    assert '--output: %s is not a folder' % (tmp_path / 'file') in error_line(capsys.readouterr().err)


def test_convert_refuses_a_read_only_folder_before_reading(tmp_path, capsys, monkeypatch):
    import mtcnn.facenet
    monkeypatch.setattr(mtcnn.facenet, 'read_facenet', lambda source: pytest.fail('read before the check'))
    folder = tmp_path / 'locked'
    folder.mkdir(mode=0o500)
    access = os.access
    # root may write into a read-only folder: report it read-only to this check as it is to other users
    monkeypatch.setattr(os, 'access', lambda path, mode: access(path, mode) and not (
        os.fspath(path) == str(folder) and mode & os.W_OK))
    assert convert(['--facenet', str(canonical_dir()), '--output', str(folder)]) == 2
    assert '--output' in error_line(capsys.readouterr().err)
    assert os.listdir(folder) == []


def test_demo_draws_the_canonical_landmarks(tmp_path, converted, capsys):
    out = tmp_path / 'out.png'   # lossless: the dots keep their colour
    image = str(require_shared('assets/images/test01.jpg'))
    assert mtcnn_detect(['--image', image, '--out', str(out), '--pnet', converted['pnet'], '--rnet',
                         converted['rnet'], '--onet', converted['onet']]) == 0
    assert '9 faces' in capsys.readouterr().out
    drawn = cv2.imread(str(out))
    _, landmarks = MtcnnDetector(converted['pnet'], converted['rnet'], converted['onet']).detect(cv2.imread(image))
    for points in np.round(landmarks).astype(int):
        for (x, y), colour in zip(points, LANDMARK_COLORS):
            if 0 <= x < drawn.shape[1] and 0 <= y < drawn.shape[0]:
                assert tuple(drawn[y, x]) == colour
