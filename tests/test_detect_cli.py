"""detect.py: annotated images and JSON for a file or a folder; clear errors."""
import json
import shutil

import cv2
import numpy as np
import pytest
from conftest import require_shared

import detect
from retinaface import RetinaFace

MNET_PARAMS = 'assets/models/retinaface-mnet025/mnet.25-0000.params'


@pytest.fixture(scope='module')
def prefix():
    return str(require_shared(MNET_PARAMS))[:-len('-0000.params')]


def test_single_image_writes_drawing_and_json(prefix, tmp_path):
    image = str(require_shared('assets/images/t4.jpg'))
    out_json = tmp_path / 'faces.json'
    status = detect.main(['--prefix', prefix, '--epoch', '0', '--image', image, '--output', str(tmp_path / 'out'),
                          '--json', str(out_json), '--thresh', '0.8'])
    assert status == 0
    drawn = cv2.imread(str(tmp_path / 'out' / 't4.jpg'))
    original = cv2.imread(image)
    assert drawn.shape == original.shape
    assert np.abs(drawn.astype(int) - original).max() > 100  # boxes were drawn
    result = json.loads(out_json.read_text())
    det, landmarks = RetinaFace(prefix, 0, ctx_id=-1).detect(original, threshold=0.8)
    faces = result['images'][0]['faces']
    assert result['images'][0]['image'] == image and len(faces) == det.shape[0] > 0
    np.testing.assert_allclose([f['box'] for f in faces], det[:, :4])
    np.testing.assert_allclose([f['score'] for f in faces], det[:, 4])
    np.testing.assert_allclose([f['landmarks'] for f in faces], landmarks)


def test_folder_reports_unreadable_images_and_goes_on(prefix, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    shutil.copy(require_shared('assets/images/t6.jpg'), folder / 'a.jpg')
    (folder / 'broken.jpg').write_bytes(b'not an image')
    (folder / 'notes.txt').write_text('ignored')
    status = detect.main(['--prefix', prefix, '--epoch', '0', '--image', str(folder), '--output',
                          str(tmp_path / 'out'), '--json', str(tmp_path / 'r.json'), '--scales', '1.0', '0.5',
                          '--flip'])
    assert status == 1
    assert 'cannot read image %s' % (folder / 'broken.jpg') in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['a.jpg']
    result = json.loads((tmp_path / 'r.json').read_text())
    assert [r['image'] for r in result['images']] == [str(folder / 'a.jpg')]
    assert result['scales'] == [1.0, 0.5] and result['flip'] is True


def test_missing_model_and_image_are_named(prefix, tmp_path, capsys):
    image = str(require_shared('assets/images/t4.jpg'))
    status = detect.main(['--prefix', str(tmp_path / 'none'), '--epoch', '0', '--image', image,
                          '--output', str(tmp_path)])
    assert status == 2 and '%s-symbol.json does not exist' % (tmp_path / 'none') in capsys.readouterr().err
    status = detect.main(['--prefix', prefix, '--epoch', '0', '--image', str(tmp_path / 'x.jpg'),
                          '--output', str(tmp_path)])
    assert status == 2 and 'image %s does not exist' % (tmp_path / 'x.jpg') in capsys.readouterr().err
    with pytest.raises(SystemExit):
        detect.main(['--prefix', prefix, '--epoch', '0', '--image', image, '--output', str(tmp_path),
                     '--scales', '0'])
