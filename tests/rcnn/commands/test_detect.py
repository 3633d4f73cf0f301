"""detect.py (``rcnn.commands.detect``): annotated images and JSON for a file or a folder; arguments
checked before any work; never a write over a file it reads, nor over another without --overwrite."""
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from facekit.mx import runtime
from rcnn.commands import retinaface_detect
from rcnn.export import export_retinaface
from retinaface import RetinaFace
from detect_support import FakeRetinaFace, tree
from support import REPO, assert_same_faces, error_line, released_mnet, require_shared


def detect(argv):
    return retinaface_detect(argv, prog='detect.py')


@pytest.fixture(scope='module')
def prefix():
    return released_mnet()


def test_single_image_writes_drawing_and_json(prefix, tmp_path):
    image = str(require_shared('assets/images/t4.jpg'))
    out_json = tmp_path / 'faces.json'
    assert detect(['--prefix', prefix, '--epoch', '0', '--image', image, '--output', str(tmp_path / 'out'),
                   '--json', str(out_json), '--thresh', '0.8']) == 0
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


@pytest.mark.parametrize('bad, content, message', [
    ('broken.jpg', b'not an image', 'cannot decode image {path} (corrupt or not an image); skipped'),
    ('empty.jpg', b'', 'image {path} is empty (0 bytes); skipped'),
])
def test_a_folder_skips_an_unreadable_image_naming_it_and_goes_on(bad, content, message, prefix, tmp_path, caplog):
    folder = tmp_path / 'in'
    folder.mkdir()
    shutil.copy(require_shared('assets/images/t6.jpg'), folder / 'a.jpg')
    (folder / bad).write_bytes(content)
    shutil.copy(require_shared('assets/images/t4.jpg'), folder / 'z.jpg')
    (folder / 'notes.txt').write_text('ignored')
    with caplog.at_level('ERROR'):
        status = detect(['--prefix', prefix, '--epoch', '0', '--image', str(folder), '--output', str(tmp_path / 'out'),
                         '--json', str(tmp_path / 'r.json'), '--scales', '1.0', '0.5', '--flip'])
    assert status == 1
    assert message.format(path=folder / bad) in caplog.text
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['a.jpg', 'z.jpg']
    result = json.loads((tmp_path / 'r.json').read_text())
    assert [r['image'] for r in result['images']] == [str(folder / 'a.jpg'), str(folder / 'z.jpg')]
    assert result['skipped'] == [str(folder / bad)]
    assert result['scales'] == [1.0, 0.5] and result['flip'] is True


def test_missing_model_and_image_are_named(prefix, tmp_path, capsys):
    image = str(require_shared('assets/images/t4.jpg'))
    for args, message in (
            (['--prefix', str(tmp_path / 'none'), '--image', image],
             '%s-symbol.json does not exist' % (tmp_path / 'none')),
            (['--prefix', prefix, '--image', str(tmp_path / 'x.jpg')],
             'image %s does not exist' % (tmp_path / 'x.jpg')),
            (['--prefix', prefix, '--image', image, '--scales', '0'],
             'argument --scales: must be a finite number > 0')):
        assert detect(args + ['--epoch', '0', '--output', str(tmp_path / 'out')]) == 2
        assert message in error_line(capsys.readouterr().err)
    assert not (tmp_path / 'out').exists()


# ---------------------------------------------------------------- checks before any work (a stand-in detector)

def photos(folder, count=2, size=(16, 12)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        assert cv2.imwrite(str(folder / ('p%d.jpg' % i)), np.full((size[1], size[0], 3), 40 * i, np.uint8))
    return folder


def test_an_output_that_would_replace_a_file_it_reads_is_refused_whatever_the_flags(fake, tmp_path, capsys):
    """Same folder; a link in --output to an input; inputs that are links into --output; a hard
    link; --json over an image or over the model's weights: refused before the model is loaded,
    with --overwrite too, and nothing changes."""
    inputs = photos(tmp_path / 'photos')
    linked_out = tmp_path / 'linked_out'
    linked_out.mkdir()
    (linked_out / 'p0.jpg').symlink_to(inputs / 'p0.jpg')
    examples = tmp_path / 'examples'
    examples.mkdir()
    (examples / 'p1.jpg').symlink_to(inputs / 'p1.jpg')
    hard_out = tmp_path / 'hard_out'
    hard_out.mkdir()
    os.link(inputs / 'p1.jpg', hard_out / 'p1.jpg')
    cases = [
        ([str(inputs), '--output', str(inputs)], '--output %s would replace the input %s'
         % (inputs / 'p0.jpg', inputs / 'p0.jpg')),
        ([str(inputs), '--output', str(linked_out)], '--output %s would replace the input %s'
         % (linked_out / 'p0.jpg', inputs / 'p0.jpg')),
        ([str(examples), '--output', str(inputs)], 'would replace the input %s' % (examples / 'p1.jpg')),
        ([str(inputs / 'p1.jpg'), '--output', str(hard_out)], '--output %s would replace' % (hard_out / 'p1.jpg')),
        ([str(inputs), '--output', str(tmp_path / 'out'), '--json', str(inputs / 'p1.jpg')],
         '--json %s would replace the input %s' % (inputs / 'p1.jpg', inputs / 'p1.jpg')),
        ([str(inputs), '--output', str(tmp_path / 'out'), '--json', fake + '-0000.params'],
         '--json %s-0000.params would replace the input %s-0000.params' % (fake, fake)),
    ]
    before = tree(tmp_path)
    for args, message in cases:
        for overwrite in ([], ['--overwrite']):
            assert detect(['--prefix', fake, '--epoch', '0', '--image'] + args + overwrite) == 2
            assert message in error_line(capsys.readouterr().err)
    assert tree(tmp_path) == before and not FakeRetinaFace.instances


def test_existing_outputs_are_replaced_only_with_overwrite(fake, tmp_path, capsys):
    inputs = photos(tmp_path / 'photos', count=1)
    notes = tmp_path / 'notes.json'
    notes.write_text('my notes')
    out = tmp_path / 'out'
    args = ['--prefix', fake, '--epoch', '0', '--image', str(inputs), '--output', str(out)]
    assert detect(args + ['--json', str(notes)]) == 2
    assert '--json: %s exists (pass --overwrite to replace it)' % notes in error_line(capsys.readouterr().err)
    assert notes.read_text() == 'my notes'
    assert detect(args) == 0
    drawn = (out / 'p0.jpg').read_bytes()
    (out / 'p0.jpg').write_bytes(b'edited by the user')
    assert detect(args) == 2
    assert '--output: %s exists' % (out / 'p0.jpg') in error_line(capsys.readouterr().err)
    assert (out / 'p0.jpg').read_bytes() == b'edited by the user'
    assert detect(args + ['--json', str(notes), '--overwrite']) == 0
    assert (out / 'p0.jpg').read_bytes() == drawn and json.loads(notes.read_text())['images']


def test_links_to_inputs_elsewhere_are_read_not_replaced(fake, tmp_path, cpu_runtime_requests):
    """The demo's layout: --image is a folder of links to the val images, --output a fresh folder."""
    inputs = photos(tmp_path / 'val')
    examples = tmp_path / 'examples'
    examples.mkdir()
    for name in ('p0.jpg', 'p1.jpg'):
        (examples / name).symlink_to(inputs / name)
    before = tree(inputs)
    out = tmp_path / 'pictures'
    assert detect(['--prefix', fake, '--epoch', '0', '--image', str(examples), '--output', str(out),
                   '--json', str(out / 'detections.json'), '--gpu', '-1']) == 0
    assert sorted(p.name for p in out.iterdir()) == ['detections.json', 'p0.jpg', 'p1.jpg']
    assert tree(inputs) == before and all((examples / n).is_symlink() for n in ('p0.jpg', 'p1.jpg'))
    assert FakeRetinaFace.instances[0].kwargs['ctx_id'] == -1 and cpu_runtime_requests == ['cpu']


@pytest.mark.parametrize('extra, message', [
    (['--thresh', '1.5'], 'argument --thresh: must be a number in [0, 1]'),
    (['--scales', '1', 'nan'], 'argument --scales: must be a finite number > 0'),
    (['--scales', 'inf'], 'argument --scales: must be a finite number > 0'),
    (['--scales', '-0.5'], 'argument --scales: must be a finite number > 0'),
    (['--gpu', '-3'], 'argument --gpu: expected a GPU id'),
    (['--epoch', '-1'], 'argument --epoch: must be >= 0'),
    (['--epoch', '2'], '--prefix: model file {tmp}/m-0002.params does not exist'),
    (['--output', '{tmp}/photos/p0.jpg/sub'], '--output: {tmp}/photos/p0.jpg is not a folder'),
    (['--json', '{tmp}/photos'], '--json: {tmp}/photos is a folder'),
    (['--image', '{tmp}/empty'], '--image: no .jpg/.jpeg/.png/.bmp files in folder {tmp}/empty'),
    (['--max-megapixels', '0'], 'argument --max_megapixels: must be a finite number > 0'),
])
def test_arguments_are_checked_before_any_work(fake, tmp_path, capsys, extra, message):
    photos(tmp_path / 'photos')
    (tmp_path / 'empty').mkdir()
    args = ['--prefix', fake, '--epoch', '0', '--image', str(tmp_path / 'photos'), '--output', str(tmp_path / 'out')]
    assert detect(args + [a.format(tmp=tmp_path) for a in extra]) == 2
    assert message.format(tmp=tmp_path) in error_line(capsys.readouterr().err)
    assert not FakeRetinaFace.instances and not (tmp_path / 'out').exists()


def test_scaled_input_above_the_limit_is_refused_up_front(fake, tmp_path, capsys):
    """The original ran into the OOM killer with --scales 40 on a 1280 x 886 photo."""
    photo = tmp_path / 'big' / 'photo.jpg'
    photo.parent.mkdir()
    assert cv2.imwrite(str(photo), np.zeros((886, 1280, 3), np.uint8))
    base = ['--prefix', fake, '--epoch', '0', '--image', str(photo.parent), '--output', str(tmp_path / 'out')]
    assert detect(base + ['--scales', '1', '40']) == 2
    assert ('--scales: %s: scale 40 turns the 1280x886 image into a 51200x35440 network input (1814.5 megapixels), '
            'above the limit of 20 megapixels' % photo) in error_line(capsys.readouterr().err)
    assert detect(base + ['--max_megapixels', '1']) == 2  # 1.13 MP at scale 1
    assert 'above the limit of 1 megapixels' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()
    assert all(not instance.images for instance in FakeRetinaFace.instances)
    assert detect(base + ['--scales', '2', '--max_megapixels', '4.6']) == 0  # 2560 x 1772 = 4.54 MP
    assert FakeRetinaFace.instances[-1].kwargs['max_megapixels'] == 4.6


def test_default_device_and_a_missing_gpu(fake, tmp_path, capsys, caplog, cpu_runtime_requests, monkeypatch):
    photos(tmp_path / 'photos', count=1)
    args = ['--prefix', fake, '--epoch', '0', '--image', str(tmp_path / 'photos'), '--output', str(tmp_path / 'out'),
            '--overwrite']
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 0)
    with caplog.at_level('INFO', logger='facekit.mx.runtime'):
        assert detect(args) == 0
    assert FakeRetinaFace.instances[0].kwargs['ctx_id'] == -1 and cpu_runtime_requests == ['cpu']
    assert 'no GPU available to MXNet: running on the CPU' in caplog.text
    assert detect(args + ['--gpu', '0']) == 2
    assert '--gpu 0: this MXNet build has no CUDA support' in error_line(capsys.readouterr().err)
    monkeypatch.setattr(runtime, 'cuda_gpus', lambda: 2)
    assert detect(args + ['--gpu', '1']) == 0
    assert FakeRetinaFace.instances[-1].kwargs['ctx_id'] == 1 and cpu_runtime_requests == ['cpu']


@pytest.mark.slow
def test_corrupt_model_files_are_one_line_errors(prefix, tmp_path):
    """The launcher on a truncated .params and a truncated -symbol.json: exit status 1, one line
    naming the file, no traceback."""
    model = tmp_path / 'model'
    model.mkdir()
    symbol = open(prefix + '-symbol.json', 'rb').read()
    params = open(prefix + '-0000.params', 'rb').read()
    (model / 'p-symbol.json').write_bytes(symbol)
    (model / 'p-0000.params').write_bytes(params[:len(params) // 3])
    (model / 's-symbol.json').write_bytes(symbol[:len(symbol) // 3])
    (model / 's-0000.params').write_bytes(params)
    image = str(require_shared('assets/images/t6.jpg'))
    for name, bad in (('p', 'p-0000.params'), ('s', 's-symbol.json')):
        proc = subprocess.run([sys.executable, str(REPO / 'detect.py'), '--prefix', str(model / name), '--epoch', '0',
                               '--image', image, '--output', str(tmp_path / 'out'), '--gpu', '-1'],
                              capture_output=True, text=True)
        last = error_line(proc.stderr)
        assert proc.returncode == 1 and last.startswith('detect.py: error: ') and str(model / bad) in last, \
            proc.stderr
        assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'out').exists()


# ---------------------------------------------------------------- ONNX models

@pytest.fixture(scope='module')
def mnet_onnx(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('onnx') / 'mnet.25.onnx')
    export_retinaface(released_mnet(), 0, path)
    return path


def test_an_onnx_model_detects_as_the_checkpoint_does(mnet_onnx, tmp_path, capsys):
    image = str(require_shared('assets/images/t4.jpg'))
    out = tmp_path / 'out'
    assert detect(['--onnx', mnet_onnx, '--image', image, '--output', str(out), '--json', str(out / 'faces.json')]) == 0
    faces = json.loads((out / 'faces.json').read_text())
    assert faces['onnx'] == mnet_onnx and 'prefix' not in faces
    det, _ = RetinaFace(released_mnet(), 0, ctx_id=-1).detect(cv2.imread(image), threshold=0.8)
    got = np.array([face['box'] + [face['score']] for face in faces['images'][0]['faces']])
    assert_same_faces(got, None, det, None)
    for extra, message in ((['--epoch', '0'], '--epoch goes with --prefix'),
                           (['--gpu', '0'], 'an ONNX model runs on the CPU')):
        assert detect(['--onnx', mnet_onnx, '--image', image, '--output', str(tmp_path / 'other')] + extra) == 2
        assert message in error_line(capsys.readouterr().err)


@pytest.mark.parametrize('content', [b'', b'\x08\x07 not a model', None])
def test_a_file_that_is_not_an_onnx_model_is_one_line(content, mnet_onnx, tmp_path, capsys):
    model = tmp_path / 'model.onnx'
    model.write_bytes(content if content is not None else open(mnet_onnx, 'rb').read()[:20000])
    image = str(require_shared('assets/images/t4.jpg'))
    assert detect(['--onnx', str(model), '--image', image, '--output', str(tmp_path / 'out')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('detect.py: error: %s: not an ONNX model onnxruntime can load' % model), err
    assert 'Traceback' not in '\n'.join(err) and not (tmp_path / 'out').exists()


def test_a_static_export_refuses_other_image_sizes_before_any_work(tmp_path, capsys):
    path = str(tmp_path / 'static.onnx')
    export_retinaface(released_mnet(), 0, path, static_shape=(360, 640))
    folder = tmp_path / 'photos'
    folder.mkdir()
    for name in ('t4', 't6'):  # 640 x 360 and 596 x 334
        shutil.copy(require_shared('assets/images/%s.jpg' % name), folder / ('%s.jpg' % name))
    assert detect(['--onnx', path, '--image', str(folder), '--output', str(tmp_path / 'out')]) == 2
    assert ('--scales: %s: scale 1 turns the 596x334 image into a 596x334 network input, but %s takes only 640x360'
            % (folder / 't6.jpg', path)) in error_line(capsys.readouterr().err)
    assert not (tmp_path / 'out').exists()
    assert detect(['--onnx', path, '--image', str(folder / 't4.jpg'), '--output', str(tmp_path / 'out')]) == 0
